"""What the health model costs, side by side, on throwaway local dependencies.

1. Liveness against readiness throughput over real HTTP under concurrency: readiness is served
   from the monitor's cache, so it should stay close to liveness (goal: >= 0.8x).
2. Dependency probes per second, the monitor's readiness against a naive check-per-request
   readiness (written here, on the same Probes): the monitor's rate does not grow with traffic.
3. Startup time with one dependency 1 s slow (the stand-in's latency fault) against that
   latency alone: the checks run concurrently, so startup costs about the slowest (goal: <= 1.3x).

Run: python -m benchmarks.health_overhead [--seconds 5] [--concurrency 50] [--warmup 1]
[--startup-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from rich.console import Console
from tria_service.clients import Clients
from tria_service.config import Dependency, Settings, load_settings
from tria_service.production.health_monitor import HealthMonitor
from tria_service.production.probes import Probes
from tria_service.production.startup_orchestrator import StartupOrchestrator

from benchmarks._common import (
    Row,
    console,
    hammer,
    http_load,
    local_dependencies,
    quiet_logs,
    report,
    set_latency,
    standin_url,
    time_startup,
)
from pytest_tria_deploy.provision.processes import start_service

SLOW_DEPENDENCY_LATENCY_S = 1.0


async def http_throughput(url: str, seconds: float, concurrency: int, warmup: float) -> float:
    """Requests per second over keep-alive connections (after ``warmup`` seconds of load)."""
    return (await http_load(url, seconds, concurrency, warmup=warmup)).throughput


async def probe_rates(settings: Settings, seconds: float, concurrency: int) -> dict[str, float]:
    """Readiness calls and probes per second: the monitor against check-per-request."""
    clients = Clients(settings)
    probes = Probes(settings, clients)
    try:
        monitor = HealthMonitor()
        await monitor.start(probes, settings)
        await monitor.readiness()  # first fill of the cache
        before = sum(monitor.probe_counts().values())
        calls = len((await hammer(monitor.readiness, seconds, concurrency)).latencies)
        probed = sum(monitor.probe_counts().values()) - before
        await monitor.stop()

        async def naive_readiness() -> bool:
            results = await asyncio.gather(*(probes.probe(d) for d in Dependency))
            return all(r.ok for r in results)

        naive_calls = len((await hammer(naive_readiness, seconds, concurrency)).latencies)
    finally:
        await clients.close()
    return {
        "monitor_calls": calls / seconds,
        "monitor_probes": probed / seconds,
        "naive_calls": naive_calls / seconds,
        "naive_probes": naive_calls * len(Dependency) / seconds,
    }


async def startup_seconds(settings: Settings, runs: int) -> float:
    """Median wall time of the orchestrator's startup (dependency checks and migrations)."""
    timings = [await time_startup(StartupOrchestrator(settings)) for _ in range(runs)]
    return statistics.median(timings)


def run(args: argparse.Namespace, out: Console) -> list[Row]:
    seconds, concurrency, warmup = args.seconds, args.concurrency, args.warmup
    with local_dependencies(out) as (stack, _, env):
        service = start_service(stack.workdir, env)
        try:
            out.print(f"HTTP throughput, {concurrency} concurrent clients, {seconds:g}s each")
            live = asyncio.run(
                http_throughput(f"{service.url}/health", seconds, concurrency, warmup)
            )
            ready = asyncio.run(
                http_throughput(
                    f"{service.url}/api/v1/health/readiness", seconds, concurrency, warmup
                )
            )
        finally:
            service.stop()
        settings = load_settings(**env)
        out.print("probe rates in-process: the monitor, then check-per-request")
        rates = asyncio.run(probe_rates(settings, seconds, concurrency))
        out.print(f"startup, {args.startup_runs} runs each: healthy, then OpenAI 1 s slow")
        healthy_start = asyncio.run(startup_seconds(settings, args.startup_runs))
        standin = standin_url(stack)
        set_latency(standin, int(SLOW_DEPENDENCY_LATENCY_S * 1000))
        try:
            slow_start = asyncio.run(startup_seconds(settings, args.startup_runs))
        finally:
            set_latency(standin, None)

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
            None,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load run")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent clients")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of load before each HTTP run"
    )
    parser.add_argument(
        "--startup-runs", type=int, default=3, help="startups timed per condition (median)"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1 or args.warmup < 0 or args.startup_runs < 1:
        parser.error(
            "--seconds must be positive, --concurrency and --startup-runs at least 1, --warmup >= 0"
        )
    quiet_logs()
    out = console()
    rows = run(args, out)
    return report(out, "Tria health overhead", rows)


if __name__ == "__main__":
    raise SystemExit(main())
