"""Readiness cost: the service's HealthMonitor against a check-per-request readiness, side by side.

Both answer GET /api/v1/health/readiness over real HTTP, each in its own uvicorn process, against
the same throwaway PostgreSQL, Redis, Chroma and OpenAI stand-in:
- monitor: the service itself (python -m tria_service), readiness served from the monitor's cache,
  refreshed by one background loop per dependency;
- naive: a small FastAPI app (benchmarks/_apps.py) that runs asyncpg SELECT 1, Redis PING, the
  Chroma heartbeat and the stand-in's models list on every request, as most health libraries do.

Each is loaded twice, back to back: at --low-rate requests/s, then by --concurrency clients as
fast as they can go (the monitor's two runs first). Throughput and p50/p99 latency come from the
full-speed runs. Dependency operations are counted at each dependency, not assumed: PostgreSQL
transactions (pg_stat_database), Redis commands (INFO total_commands_processed), Chroma HTTP
requests (its request log) and the stand-in's /v1/models requests (/_admin/stats). The goals: at
least 5x the naive throughput, and the monitor's dependency load not growing with the request rate.

PostgreSQL publishes a connection's counts at most once a second while it works, and up to 10 s
late once it is idle; so the runs start --settle seconds after startup (its migrations and
knowledge ingestion must not land in the monitor's counts), and the naive PostgreSQL figures are
approximate (each run misses up to a second of its pool's work and gets the tail of the one before).

Run: python -m benchmarks.readiness_cost [--seconds 8] [--concurrency 64] [--low-rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from benchmarks._common import (
    LoadResult,
    Row,
    console,
    http_load,
    local_dependencies,
    report,
    standin_url,
    start_app,
)
from pytest_tria_deploy.helpers import asyncpg_dsn
from pytest_tria_deploy.provision.processes import start_service
from pytest_tria_deploy.provision.stack import DependencyEndpoints, LocalStack

READINESS = "/api/v1/health/readiness"
THROUGHPUT_GOAL = 5.0
# The monitor's dependency load at full speed against at the low rate must not grow with the
# request rate: at most this ratio, the noise of a few probes per second counted over seconds.
# (It may fall: a saturated event loop runs the refresh loops late.)
FLAT_MAX = 1.5
# Chroma logs one line per request it starts processing at this level (tower-http's trace layer).
CHROMA_REQUEST_LOG = ("RUST_LOG", "warn,tower_http=debug")
CHROMA_REQUEST_LINE = "started processing request"
DEPENDENCIES = ("postgresql", "redis", "chroma", "openai")
UNITS = {
    "postgresql": "transactions",
    "redis": "commands",
    "chroma": "HTTP requests",
    "openai": "/v1/models requests",
}
# Operations the counting itself adds to each dependency per window (one read at each end,
# of which the first lands inside the window).
OWN_OPERATIONS = {"postgresql": 1, "redis": 1, "chroma": 0, "openai": 0}


class DependencyCounters:
    """Each dependency's own count of the work it was asked to do."""

    def __init__(self, deps: DependencyEndpoints, chroma_log: Path, standin: str) -> None:
        self._deps = deps
        self._chroma_log = chroma_log
        self._standin = standin

    async def read(self) -> dict[str, int]:
        conn = await asyncpg.connect(asyncpg_dsn(self._deps.database_url))
        redis = Redis.from_url(self._deps.redis_url)
        try:
            transactions = await conn.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            commands = (await redis.info("stats"))["total_commands_processed"]
            async with httpx.AsyncClient(timeout=5) as client:
                stats = (await client.get(f"{self._standin}/_admin/stats")).json()
        finally:
            await redis.aclose()
            await conn.close()
        chroma_requests = self._chroma_log.read_text(errors="replace").count(CHROMA_REQUEST_LINE)
        return {
            "postgresql": int(transactions),
            "redis": int(commands),
            "chroma": chroma_requests,
            "openai": int(stats["models"]),
        }


@dataclass(frozen=True)
class Run:
    design: str
    load: str
    result: LoadResult
    operations_per_s: dict[str, float]

    @property
    def total_per_s(self) -> float:
        return sum(self.operations_per_s.values())


async def measure(
    counters: DependencyCounters,
    design: str,
    url: str,
    seconds: float,
    concurrency: int,
    rate: float | None,
) -> Run:
    """One load run, with the dependencies' counts read before and after it."""
    before = await counters.read()
    started = time.perf_counter()
    result = await http_load(url, seconds, concurrency, rate)
    elapsed = time.perf_counter() - started
    after = await counters.read()
    per_s = {
        dep: max(0, after[dep] - before[dep] - OWN_OPERATIONS[dep]) / elapsed
        for dep in DEPENDENCIES
    }
    load = f"{concurrency} clients, full speed" if rate is None else f"{rate:g} req/s"
    return Run(design, load, result, per_s)


async def all_runs(
    counters: DependencyCounters, urls: dict[str, str], args: argparse.Namespace
) -> list[Run]:
    runs = []
    for design, url in urls.items():
        for rate in (args.low_rate, None):
            runs.append(await measure(counters, design, url, args.seconds, args.concurrency, rate))
    return runs


def run(args: argparse.Namespace, out: Console) -> list[Run]:
    os.environ[CHROMA_REQUEST_LOG[0]] = CHROMA_REQUEST_LOG[1]
    with local_dependencies(out) as (stack, deps, env):
        counters = counters_for(stack, deps)
        out.print("starting the service (monitor) and the naive readiness app ...")
        service = start_service(stack.workdir, env)
        naive = start_app(stack.workdir, "naive-readiness", env)
        try:
            urls = {"monitor": service.url + READINESS, "naive": naive.url + READINESS}
            out.print(f"letting PostgreSQL publish the startup's counts ({args.settle:g}s) ...")
            time.sleep(args.settle)
            out.print(
                f"loading each: {args.concurrency} clients at full speed, then "
                f"{args.low_rate:g} req/s, {args.seconds:g}s each"
            )
            return asyncio.run(all_runs(counters, urls, args))
        finally:
            naive.stop()
            service.stop()


def counters_for(stack: LocalStack, deps: DependencyEndpoints) -> DependencyCounters:
    chroma = stack.servers.chroma
    if chroma is None:
        raise RuntimeError("the stack has no Chroma running")
    return DependencyCounters(deps, chroma.process.log_path, standin_url(stack))


def operations_table(runs: list[Run]) -> Table:
    table = Table(title="Dependency operations per second, counted at each dependency")
    table.add_column("design")
    table.add_column("load")
    table.add_column("req/s", justify="right")
    for dep in DEPENDENCIES:
        table.add_column(f"{dep}\n{UNITS[dep]}", justify="right")
    table.add_column("total", justify="right")
    for r in runs:
        figures = [f"{r.operations_per_s[dep]:,.1f}" for dep in DEPENDENCIES]
        total = f"{r.total_per_s:,.1f}"
        table.add_row(r.design, r.load, f"{r.result.throughput:,.0f}", *figures, total)
    return table


def comparisons(runs: list[Run], concurrency: int) -> list[Row]:
    found = {(r.design, r.load.endswith("full speed")): r for r in runs}
    monitor, naive = found["monitor", True], found["naive", True]
    monitor_low, naive_low = found["monitor", False], found["naive", False]
    throughput = monitor.result.throughput / naive.result.throughput
    flat = monitor.total_per_s / monitor_low.total_per_s
    rows = [
        Row(
            f"readiness req/s, {concurrency} clients: monitor vs naive",
            f"{monitor.result.throughput:,.0f}",
            f"{naive.result.throughput:,.0f}",
            throughput,
            f">= {THROUGHPUT_GOAL:g}x",
            throughput >= THROUGHPUT_GOAL,
        )
    ]
    for q in (50, 99):
        ours, theirs = monitor.result.percentile_ms(q), naive.result.percentile_ms(q)
        rows.append(
            Row(f"p{q} latency ms: monitor vs naive", f"{ours:.2f}", f"{theirs:.2f}", ours / theirs)
        )
    rows += [
        Row(
            "dependency ops/s at full speed: monitor vs naive",
            f"{monitor.total_per_s:,.1f}",
            f"{naive.total_per_s:,.1f}",
            monitor.total_per_s / naive.total_per_s,
        ),
        Row(
            "monitor req/s: full speed vs low rate",
            f"{monitor.result.throughput:,.0f}",
            f"{monitor_low.result.throughput:,.0f}",
            monitor.result.throughput / monitor_low.result.throughput,
        ),
        Row(
            "monitor dependency ops/s: full speed vs low rate",
            f"{monitor.total_per_s:,.1f}",
            f"{monitor_low.total_per_s:,.1f}",
            flat,
            f"does not grow: <= {FLAT_MAX:g}x",
            flat <= FLAT_MAX,
        ),
        Row(
            "naive dependency ops/s: full speed vs low rate",
            f"{naive.total_per_s:,.1f}",
            f"{naive_low.total_per_s:,.1f}",
            naive.total_per_s / naive_low.total_per_s,
            "grows with req/s",
        ),
    ]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each load run")
    parser.add_argument("--concurrency", type=int, default=64, help="clients at full speed")
    parser.add_argument("--low-rate", type=float, default=50.0, help="requests/s of the slow run")
    parser.add_argument(
        "--settle",
        type=float,
        default=11.0,
        help="idle seconds before the runs: PostgreSQL publishes an idle connection's counts "
        "within 10 s",
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1 or args.low_rate <= 0 or args.settle < 0:
        parser.error(
            "--seconds and --low-rate must be positive, --concurrency at least 1, --settle >= 0"
        )
    out = console()
    runs = run(args, out)
    out.print(operations_table(runs))
    return report(
        out,
        "Readiness cost: HealthMonitor vs check-per-request",
        comparisons(runs, args.concurrency),
    )


if __name__ == "__main__":
    raise SystemExit(main())
