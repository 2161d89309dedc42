"""What the health model costs, side by side, on throwaway local dependencies.

1. Liveness against readiness throughput over real HTTP under concurrency: readiness is served
   from the monitor's cache, so it should stay close to liveness (goal: >= 0.8x).
2. Dependency probes per second, the monitor's readiness against a naive check-per-request
   readiness (written here, on the same Probes): the monitor's rate does not grow with traffic.
3. Startup time with one dependency 1 s slow (the stand-in's latency fault) against that
   latency alone: the checks run concurrently, so startup costs about the slowest (goal: <= 1.3x).

Run: python benchmarks/health_overhead.py [--seconds 5] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import structlog
from rich.console import Console
from rich.table import Table
from tria_service.clients import Clients
from tria_service.config import Dependency, Settings, load_settings
from tria_service.production.health_monitor import HealthMonitor
from tria_service.production.probes import Probes
from tria_service.production.startup_orchestrator import StartupOrchestrator

from pytest_tria_deploy.provision.processes import start_service
from pytest_tria_deploy.provision.stack import LocalStack

SLOW_DEPENDENCY_LATENCY_S = 1.0
STARTUP_RUNS = 3


@dataclass(frozen=True)
class Row:
    measure: str
    ours: str
    baseline: str
    ratio: float
    goal: str
    met: bool | None


async def hammer(call: Callable[[], Awaitable[object]], seconds: float, concurrency: int) -> int:
    """Completed calls of ``concurrency`` workers looping for ``seconds``."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1
            await asyncio.sleep(0)  # a fresh readiness never suspends: let the others run

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def http_throughput(url: str, seconds: float, concurrency: int) -> float:
    """Requests per second over keep-alive connections.

    aiohttp drives the load: httpx's async pool slows down sharply at this concurrency, which
    would measure the client instead of the service.
    """
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")

        await hammer(call, 1.0, concurrency)  # warm up connections
        return await hammer(call, seconds, concurrency) / seconds


async def probe_rates(settings: Settings, seconds: float, concurrency: int) -> dict[str, float]:
    """Readiness calls and probes per second: the monitor against check-per-request."""
    clients = Clients(settings)
    probes = Probes(settings, clients)
    try:
        monitor = HealthMonitor()
        await monitor.start(probes, settings)
        await monitor.readiness()  # first fill of the cache
        before = sum(monitor.probe_counts().values())
        calls = await hammer(monitor.readiness, seconds, concurrency)
        probed = sum(monitor.probe_counts().values()) - before
        await monitor.stop()

        async def naive_readiness() -> bool:
            results = await asyncio.gather(*(probes.probe(d) for d in Dependency))
            return all(r.ok for r in results)

        naive_calls = await hammer(naive_readiness, seconds, concurrency)
    finally:
        await clients.close()
    return {
        "monitor_calls": calls / seconds,
        "monitor_probes": probed / seconds,
        "naive_calls": naive_calls / seconds,
        "naive_probes": naive_calls * len(Dependency) / seconds,
    }


async def startup_seconds(settings: Settings) -> float:
    """Median wall time of the orchestrator's startup (dependency checks and migrations)."""
    timings = []
    for _ in range(STARTUP_RUNS):
        orchestrator = StartupOrchestrator(settings)
        started = time.perf_counter()
        await orchestrator.startup()
        timings.append(time.perf_counter() - started)
        await orchestrator.close()
    return statistics.median(timings)


def set_latency(standin_url: str, latency_ms: int | None) -> None:
    body = {"mode": "latency", "latency_ms": latency_ms} if latency_ms else {"mode": "none"}
    httpx.post(f"{standin_url}/_admin/fault", json=body, timeout=5).raise_for_status()


def run(workdir: Path, seconds: float, concurrency: int, console: Console) -> list[Row]:
    with LocalStack(workdir) as stack:
        console.print("starting PostgreSQL, Redis, Chroma and the OpenAI stand-in ...")
        deps = stack.start_dependencies()
        env = {**stack.service_env(deps), "TRIA_SHUTDOWN_DRAIN_DELAY": "0"}  # stop at once
        standin = stack.servers.openai if stack.servers else None
        assert standin is not None
        service = start_service(workdir, env)
        try:
            console.print(f"HTTP throughput, {concurrency} concurrent clients, {seconds:g}s each")
            live = asyncio.run(http_throughput(f"{service.url}/health", seconds, concurrency))
            ready = asyncio.run(
                http_throughput(f"{service.url}/api/v1/health/readiness", seconds, concurrency)
            )
        finally:
            service.stop()
        settings = load_settings(**env)
        console.print("probe rates in-process: the monitor, then check-per-request")
        rates = asyncio.run(probe_rates(settings, seconds, concurrency))
        console.print(f"startup, {STARTUP_RUNS} runs each: healthy, then OpenAI 1 s slow")
        healthy_start = asyncio.run(startup_seconds(settings))
        set_latency(standin.url, int(SLOW_DEPENDENCY_LATENCY_S * 1000))
        try:
            slow_start = asyncio.run(startup_seconds(settings))
        finally:
            set_latency(standin.url, None)

    startup_ratio = slow_start / SLOW_DEPENDENCY_LATENCY_S
    return [
        Row(
            "HTTP req/s: readiness vs liveness",
            f"{ready:,.0f}",
            f"{live:,.0f}",
            ready / live,
            ">= 0.8x",
            ready / live >= 0.8,
        ),
        Row(
            "readiness calls/s: monitor vs naive",
            f"{rates['monitor_calls']:,.0f}",
            f"{rates['naive_calls']:,.0f}",
            rates["monitor_calls"] / rates["naive_calls"],
            "higher",
            None,
        ),
        Row(
            "dependency probes/s: monitor vs naive",
            f"{rates['monitor_probes']:,.1f}",
            f"{rates['naive_probes']:,.1f}",
            rates["monitor_probes"] / rates["naive_probes"],
            f"~{len(Dependency) / settings.tria_health_refresh_interval:g}/s, any load",
            None,
        ),
        Row(
            "startup s: one dep 1 s slow vs 1 s alone",
            f"{slow_start:.3f}",
            f"{SLOW_DEPENDENCY_LATENCY_S:.3f}",
            startup_ratio,
            "<= 1.3x",
            startup_ratio <= 1.3,
        ),
        Row(
            "startup s: all healthy (for reference)",
            f"{healthy_start:.3f}",
            "-",
            float("nan"),
            "-",
            None,
        ),
    ]


def render(rows: list[Row]) -> Table:
    table = Table(title="Tria health overhead")
    for column in ("measure", "ours", "baseline", "ratio", "goal", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        ratio = "-" if row.ratio != row.ratio else f"{row.ratio:.3g}x"
        table.add_row(row.measure, row.ours, row.baseline, ratio, row.goal, met)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load run")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent clients")
    args = parser.parse_args()
    console = Console(width=110)  # a full table even when piped to a file
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="tria-bench-") as workdir:
        rows = run(Path(workdir), args.seconds, args.concurrency, console)
    console.print(render(rows))
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
