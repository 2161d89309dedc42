"""What the benchmark scripts share: load loops, a stack, served apps, tables.

Every server binds 127.0.0.1 and every loop ends by its deadline, so a benchmark is bounded in
time whatever the machine does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import structlog
from rich.console import Console
from rich.table import Table
from tria_service.production.startup_orchestrator import StartupOrchestrator

from pytest_tria_deploy.helpers import percentile
from pytest_tria_deploy.provision.http_apps import python_env, secrets_in_env
from pytest_tria_deploy.provision.managed import Launch, claim_port
from pytest_tria_deploy.provision.readiness import PROBE_TIMEOUT
from pytest_tria_deploy.provision.server import HttpServer
from pytest_tria_deploy.provision.stack import DependencyEndpoints, LocalStack

REPO_ROOT = Path(__file__).resolve().parents[1]
CONSOLE_WIDTH = 130  # full tables even when piped to a file


@dataclass(frozen=True)
class LoadResult:
    """Latencies of the calls completed within one load run, and the run's wall time."""

    latencies: list[float]
    seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, q: int) -> float:
        if not self.latencies:
            raise ValueError("no samples: the load run completed no call")
        return percentile(self.latencies, q) * 1000.0


async def hammer(
    call: Callable[[], Awaitable[object]],
    seconds: float,
    concurrency: int,
    rate: float | None = None,
) -> LoadResult:
    """``concurrency`` workers calling in a loop for ``seconds``; at most ``rate`` calls/s if set.

    With a rate, calls start on a fixed schedule shared by the workers (fewer when the callee
    is slower than the schedule: then the rate is what the workers could get).
    """
    started = time.perf_counter()
    deadline = started + seconds
    latencies: list[float] = []
    scheduled = 0

    async def worker() -> None:
        nonlocal scheduled
        while True:
            now = time.perf_counter()
            if rate is not None:
                slot = started + scheduled / rate
                scheduled += 1
                if slot >= deadline:
                    return
                await asyncio.sleep(max(0.0, slot - now))
            elif now >= deadline:
                return
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(0)  # a call that never suspends must still let the others run

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(latencies, time.perf_counter() - started)


async def http_load(
    url: str,
    seconds: float,
    concurrency: int,
    rate: float | None = None,
    warmup: float = 0.5,
) -> LoadResult:
    """GET ``url`` over keep-alive connections; any answer but 200 stops the benchmark.

    aiohttp drives the load: httpx's async pool slows down sharply at this concurrency, which
    would measure the client instead of the server.
    """
    async with http_session(concurrency) as session:
        call = getter(session, url)
        await hammer(call, warmup, concurrency, rate)  # open the connections
        return await hammer(call, seconds, concurrency, rate)


def http_session(concurrency: int) -> aiohttp.ClientSession:
    """A client session keeping up to ``concurrency`` connections alive."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))


def getter(session: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[None]]:
    """One GET of ``url`` per call; any answer but 200 stops the benchmark."""

    async def call() -> None:
        async with session.get(url) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}")

    return call


def set_latency(standin_url: str, latency_ms: int | None) -> None:
    """The stand-in's latency fault on every /v1 request, or no fault."""
    body = {"mode": "latency", "latency_ms": latency_ms} if latency_ms else {"mode": "none"}
    httpx.post(f"{standin_url}/_admin/fault", json=body, timeout=5).raise_for_status()


async def time_startup(orchestrator: StartupOrchestrator) -> float:
    """Seconds the orchestrator's startup takes (its clients are closed again afterwards)."""
    started = time.perf_counter()
    try:
        await orchestrator.startup()
        return time.perf_counter() - started
    finally:
        await orchestrator.close()


def standin_url(stack: LocalStack) -> str:
    standin = stack.servers.openai
    if standin is None:
        raise RuntimeError("the stack has no OpenAI stand-in running")
    return standin.url


def quiet_logs() -> None:
    """Warnings only from in-process service code: a benchmark prints its own table."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


@contextmanager
def local_dependencies(
    console: Console,
) -> Iterator[tuple[LocalStack, DependencyEndpoints, dict[str, str]]]:
    """Throwaway PostgreSQL, Redis, Chroma and stand-in, and the service's env for them.

    The env logs at warning level: access logs would cost every served app the same per request
    and say nothing about the designs compared.
    """
    with (
        tempfile.TemporaryDirectory(prefix="tria-bench-") as workdir,
        LocalStack(Path(workdir)) as stack,
    ):
        console.print("starting PostgreSQL, Redis, Chroma and the OpenAI stand-in ...")
        deps = stack.start_dependencies()
        yield stack, deps, {**stack.service_env(deps), "TRIA_LOG_LEVEL": "warning"}


class AppServer(HttpServer):
    """One of the apps in ``_apps.py``, served by uvicorn in its own process."""

    def probe(self, timeout: float = PROBE_TIMEOUT) -> None:
        """GET /health answers 200."""
        httpx.get(f"{self.url}/health", timeout=timeout).raise_for_status()

    def version(self) -> str:
        return f"benchmark app {self._launch.name}"


def start_app(workdir: Path, app: str, env: dict[str, str], timeout: float = 60.0) -> AppServer:
    """``python -m benchmarks._apps APP --port N`` with ``env``; ready when /health answers."""
    port = claim_port(app, None)
    launch = Launch(
        name=app,
        argv=[sys.executable, "-m", "benchmarks._apps", app, "--port", str(port)],
        log_path=workdir / f"bench-{app}-{port}.log",
        env=python_env({**env, "PYTHONPATH": str(REPO_ROOT)}),
        cwd=workdir,
        secrets=secrets_in_env(env),
    )
    server = AppServer(launch, port=port, timeout=timeout)
    server.wait_ready()
    return server


@dataclass(frozen=True)
class Row:
    """One comparison: our figure against the baseline's, their ratio, and the goal if any."""

    measure: str
    ours: str
    baseline: str
    ratio: float | None
    goal: str = "-"
    met: bool | None = None


def render(title: str, rows: list[Row]) -> Table:
    table = Table(title=title)
    for column in ("measure", "ours", "baseline", "ratio", "goal", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        ratio = "-" if row.ratio is None else f"{row.ratio:.3g}x"
        table.add_row(row.measure, row.ours, row.baseline, ratio, row.goal, met)
    return table


def report(console: Console, title: str, rows: list[Row]) -> int:
    """Print the table; the exit code says whether every goal was met (0) or not (1)."""
    console.print(render(title, rows))
    return 0 if all(row.met is not False for row in rows) else 1


def console() -> Console:
    return Console(width=CONSOLE_WIDTH)
