"""Startup: the StartupOrchestrator (dependency checks at once) against the same checks in a row.

The sequential orchestrator is the service's own with one change: it awaits the database step
(connect, migrate, verify), the Redis baseline, the OpenAI models check and the Chroma collection
check one after another instead of concurrently. Both start in this process against the same
throwaway dependencies, in alternation, --runs times each (medians), in three conditions:
- all healthy (for reference);
- OpenAI --latency seconds slow (the stand-in's latency fault on every /v1 request): the goal is
  at most 1.3x that latency (1.3 s for 1 s);
- every dependency --latency seconds slow to reach: PostgreSQL, Redis and Chroma behind TCP
  proxies that hold each new connection that long before connecting it, OpenAI as above. The
  goal: still at most 1.3x the latency, where the sequential one takes more than the latency
  times the number of checks.

Run: python -m benchmarks.startup [--latency 1] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from rich.console import Console
from tria_service.config import Dependency, Settings, load_settings
from tria_service.production.probes import ProbeResult, Probes
from tria_service.production.startup_orchestrator import StartupOrchestrator

from benchmarks._common import (
    Row,
    console,
    local_dependencies,
    quiet_logs,
    report,
    set_latency,
    standin_url,
    time_startup,
)
from pytest_tria_deploy.provision.managed import free_port
from pytest_tria_deploy.provision.server import HOST
from pytest_tria_deploy.provision.stack import DependencyEndpoints

GOAL_FACTOR = 1.3
CHECKS = len(Dependency)


class SequentialOrchestrator(StartupOrchestrator):
    """The service's orchestrator with its dependency steps awaited one after another."""

    async def _check_dependencies(
        self, settings: Settings, probes: Probes
    ) -> dict[str, ProbeResult]:
        return {
            Dependency.DATABASE.value: await self._database_step(settings, probes),
            Dependency.REDIS.value: await probes.redis_baseline(),
            Dependency.OPENAI.value: await probes.openai(),
            Dependency.CHROMA.value: await probes.chroma_prepare(),
        }


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def slow_connect_proxy(port: int, delay: float) -> AsyncIterator[int]:
    """A TCP proxy on a free 127.0.0.1 port to ``port``; each new connection waits ``delay``."""

    handlers: set[asyncio.Task[object]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
        writers.add(client_w)
        await asyncio.sleep(delay)
        try:
            server_r, server_w = await asyncio.open_connection(HOST, port)
        except OSError:
            client_w.close()
            return
        writers.add(server_w)
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    own_port = free_port()
    server = await asyncio.start_server(handle, HOST, own_port)
    try:
        yield own_port
    finally:
        server.close()
        for writer in writers:  # each pipe then reads its end of file and returns
            writer.close()
        await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), delay + 5)
        await server.wait_closed()


def proxied_env(env: dict[str, str], ports: dict[str, tuple[int, int]]) -> dict[str, str]:
    """``env`` with each proxied URL's address swapped for its proxy's."""
    swapped = dict(env)
    for name, (port, proxy) in ports.items():
        swapped[name] = env[name].replace(f"{HOST}:{port}", f"{HOST}:{proxy}", 1)
    return swapped


async def compare(settings: Settings, runs: int) -> tuple[float, float]:
    """Median startup seconds: concurrent, sequential (alternating, one warm-up each)."""
    timings: dict[type[StartupOrchestrator], list[float]] = {
        StartupOrchestrator: [],
        SequentialOrchestrator: [],
    }
    for design in timings:
        await time_startup(design(settings))  # first connections, migrations on a fresh database
    for _ in range(runs):
        for design, seconds in timings.items():
            seconds.append(await time_startup(design(settings)))
    return tuple(statistics.median(t) for t in timings.values())  # type: ignore[return-value]


async def all_slow(
    env: dict[str, str], deps: DependencyEndpoints, latency: float, runs: int
) -> tuple[float, float]:
    pg, redis, chroma = deps.servers.postgres, deps.servers.redis, deps.servers.chroma
    if pg is None or redis is None or chroma is None:
        raise RuntimeError("the stack is missing PostgreSQL, Redis or Chroma")
    targets = {"DATABASE_URL": pg.port, "REDIS_URL": redis.port, "CHROMA_URL": chroma.port}
    async with AsyncExitStack() as proxies:
        ports = {
            name: (port, await proxies.enter_async_context(slow_connect_proxy(port, latency)))
            for name, port in targets.items()
        }
        return await compare(load_settings(**proxied_env(env, ports)), runs)


def run(args: argparse.Namespace, out: Console) -> dict[str, tuple[float, float]]:
    latency_ms = int(args.latency * 1000)
    with local_dependencies(out) as (stack, deps, env):
        settings = load_settings(**env)
        standin = standin_url(stack)
        out.print(f"{args.runs} startups of each design per condition")
        found = {"healthy": asyncio.run(compare(settings, args.runs))}
        set_latency(standin, latency_ms)
        try:
            found["openai"] = asyncio.run(compare(settings, args.runs))
            found["all"] = asyncio.run(all_slow(env, deps, args.latency, args.runs))
        finally:
            set_latency(standin, None)
    return found


def comparisons(found: dict[str, tuple[float, float]], latency: float) -> list[Row]:
    limit = GOAL_FACTOR * latency
    floor = latency * CHECKS
    rows = []
    for key, condition in (
        ("healthy", "all healthy"),
        ("openai", f"OpenAI +{latency:g}s"),
        ("all", f"every dependency +{latency:g}s"),
    ):
        ours, theirs = found[key]
        goal, met = "-", None
        if key == "openai":
            goal, met = f"ours <= {limit:.2g}s", ours <= limit
        if key == "all":
            goal = f"ours <= {limit:.2g}s, baseline > {floor:g}s"
            met = ours <= limit and theirs > floor
        rows.append(
            Row(
                f"startup s, {condition}: concurrent vs sequential",
                f"{ours:.3f}",
                f"{theirs:.3f}",
                ours / theirs,
                goal,
                met,
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds added to a dependency")
    parser.add_argument("--runs", type=int, default=3, help="startups per design and condition")
    args = parser.parse_args()
    if args.latency <= 0 or args.runs < 1:
        parser.error("--latency must be positive and --runs at least 1")
    quiet_logs()
    out = console()
    found = run(args, out)
    return report(
        out, "Startup: concurrent orchestrator vs sequential", comparisons(found, args.latency)
    )


if __name__ == "__main__":
    raise SystemExit(main())
