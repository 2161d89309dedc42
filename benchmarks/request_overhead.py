"""Overhead on the request path: a trivial endpoint in the service's app against a bare FastAPI app.

- service: the app exactly as tria_service.app.create_app builds it (orchestrator, health monitor
  refreshing in the background, chat components, lifecycle manager, the drain gate and body limit
  middleware, exception handlers, every router) with GET /bench/ping added;
- bare: FastAPI with the service's routers and the same GET /bench/ping after them, and nothing
  else: no lifespan, monitor or middleware. The same routing table on both sides, so the ratio is
  the cost of what the service runs, not of FastAPI matching a request past more routes.

Both run in their own uvicorn process at the same time, against the same throwaway dependencies
(the service needs them to start). They are measured in interleaved rounds (service, bare, bare,
service, ...) by --concurrency clients each, so noise from other work on the machine falls on both
alike. The goal: a p50 latency ratio of at most 1.05.

Run: python -m benchmarks.request_overhead [--rounds 20] [--round-seconds 1] [--concurrency 1]
[--warmup 1]
"""

from __future__ import annotations

import argparse
import asyncio
from itertools import chain

from rich.console import Console

from benchmarks._apps import PING_PATH
from benchmarks._common import (
    LoadResult,
    Row,
    console,
    getter,
    hammer,
    http_session,
    local_dependencies,
    report,
    start_app,
)

LATENCY_GOAL = 1.05


async def interleaved(
    urls: dict[str, str], rounds: int, seconds: float, concurrency: int, warmup: float
) -> dict[str, LoadResult]:
    """``warmup`` seconds of unmeasured load on each app, then rounds of load on each in turn,
    the order flipped every round; the runs merged."""
    results: dict[str, list[LoadResult]] = {name: [] for name in urls}
    async with http_session(concurrency) as first, http_session(concurrency) as second:
        calls = {
            name: getter(session, url)
            for (name, url), session in zip(urls.items(), (first, second), strict=True)
        }
        for call in calls.values():
            await hammer(call, warmup, concurrency)
        order = list(calls)
        for _ in range(rounds):
            for name in order:
                results[name].append(await hammer(calls[name], seconds, concurrency))
            order.reverse()
    return {
        name: LoadResult(
            list(chain.from_iterable(r.latencies for r in runs)), sum(r.seconds for r in runs)
        )
        for name, runs in results.items()
    }


def run(args: argparse.Namespace, out: Console) -> dict[str, LoadResult]:
    with local_dependencies(out) as (stack, _, env):
        out.print("starting the service's app and the bare app, each with GET /bench/ping ...")
        service = start_app(stack.workdir, "service-ping", env)
        bare = start_app(stack.workdir, "bare-routes", env)
        try:
            urls = {"service": service.url + PING_PATH, "bare": bare.url + PING_PATH}
            out.print(
                f"{args.rounds} interleaved rounds of {args.round_seconds:g}s, "
                f"{args.concurrency} client(s)"
            )
            return asyncio.run(
                interleaved(urls, args.rounds, args.round_seconds, args.concurrency, args.warmup)
            )
        finally:
            bare.stop()
            service.stop()


def comparisons(results: dict[str, LoadResult]) -> list[Row]:
    service, bare = results["service"], results["bare"]
    rows = []
    for q in (50, 99):
        ours, theirs = service.percentile_ms(q), bare.percentile_ms(q)
        ratio = ours / theirs
        goal = f"<= {LATENCY_GOAL:g}x" if q == 50 else "-"
        met = ratio <= LATENCY_GOAL if q == 50 else None
        rows.append(
            Row(
                f"p{q} latency ms: service vs bare",
                f"{ours:.3f}",
                f"{theirs:.3f}",
                ratio,
                goal,
                met,
            )
        )
    rows.append(
        Row(
            "req/s: service vs bare",
            f"{service.throughput:,.0f}",
            f"{bare.throughput:,.0f}",
            service.throughput / bare.throughput,
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="rounds per app")
    parser.add_argument("--round-seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent clients")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of unmeasured load on each app first"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.round_seconds <= 0 or args.concurrency < 1 or args.warmup < 0:
        parser.error(
            "--rounds and --concurrency must be at least 1, --round-seconds positive, --warmup >= 0"
        )
    out = console()
    results = run(args, out)
    return report(out, "Request path: service app vs bare FastAPI", comparisons(results))


if __name__ == "__main__":
    raise SystemExit(main())
