"""Cold start to ready of the local stack: each component alone, and the whole stack at once.

Every start is a fresh process on a free port with empty data, timed until its readiness check
answers (PostgreSQL: SELECT 1; Redis: PING; Chroma: heartbeat; stand-in: /v1/models; service:
readiness 200), then stopped. The service alone is timed against dependencies already running.
"dependencies at once" and "whole stack" are LocalStack.start_dependencies() and LocalStack.start():
the four dependencies concurrently, then the service.

PostgreSQL copies a cluster initialised once per binary set and cached in RAM; "postgres, first
start on a machine" pays for that initdb (a fresh cache each run). One unmeasured warm-up run
comes first, so every other figure is a start on a machine that has run the stack before.

The comparisons show what starting at once buys on this machine: the whole stack against the sum
of its parts (the same work one after another), the four dependencies together against the
slowest alone, and the whole stack against the issue's goal, well under 10 s (met: under half).
The service can only start once its dependencies answer (it checks them at startup and exits if
one is missing), so it is the long pole whatever runs concurrently.

Run: python benchmarks/local_stack.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pytest_tria_deploy.provision.managed import RUNTIME_DIR_ENV
from pytest_tria_deploy.provision.processes import (
    Server,
    start_chroma,
    start_openai_standin,
    start_postgres,
    start_redis,
    start_service,
)
from pytest_tria_deploy.provision.stack import LocalStack

GOAL_S = 10.0
DEPENDENCIES = ("postgres", "redis", "chroma", "openai stand-in")


@dataclass(frozen=True)
class Row:
    measure: str
    ours: float
    baseline: float
    goal: str
    met: bool | None

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


class Bench:
    """Starts things in fresh dirs under one root and keeps every timing by name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.timings: dict[str, list[float]] = {}
        self._dirs = 0

    def fresh_dir(self) -> Path:
        self._dirs += 1
        path = self.root / f"run-{self._dirs}"
        path.mkdir()
        return path

    def time(self, name: str, start: Callable[[], object]) -> object:
        began = time.perf_counter()
        started = start()
        self.timings.setdefault(name, []).append(time.perf_counter() - began)
        return started

    def server(self, name: str, start: Callable[[Path], Server]) -> None:
        workdir = self.fresh_dir()
        server = self.time(name, lambda: start(workdir))
        assert isinstance(server, Server)
        server.stop()

    def median(self, name: str) -> float:
        return statistics.median(self.timings[name])


def first_postgres(bench: Bench) -> None:
    """A start with an empty cluster cache, as on a machine that never ran one: initdb included.

    The cache is chosen by $TRIA_RUNTIME_DIR, so it is pointed at an empty dir for this start
    and set back as it was (a runtime dir of the caller's own included) afterwards.
    """
    cache = Path(tempfile.mkdtemp(prefix="tria-bench-runtime-"))
    cache.chmod(0o755)  # PostgreSQL runs as nobody when we are root
    before = os.environ.get(RUNTIME_DIR_ENV)
    os.environ[RUNTIME_DIR_ENV] = str(cache)
    try:
        bench.server("postgres, first start on a machine", start_postgres)
    finally:
        if before is None:
            del os.environ[RUNTIME_DIR_ENV]
        else:
            os.environ[RUNTIME_DIR_ENV] = before
        shutil.rmtree(cache, ignore_errors=True)


def service_alone(bench: Bench) -> None:
    with LocalStack(bench.fresh_dir()) as stack:
        env = stack.service_env(stack.start_dependencies())
        workdir = bench.fresh_dir()
        service = bench.time("service (dependencies running)", lambda: start_service(workdir, env))
        assert isinstance(service, Server)
        service.stop()


def one_run(bench: Bench) -> None:
    bench.server("postgres", start_postgres)
    bench.server("redis", start_redis)
    bench.server("chroma", start_chroma)
    bench.server("openai stand-in", start_openai_standin)
    service_alone(bench)
    first_postgres(bench)
    with LocalStack(bench.fresh_dir()) as stack:
        bench.time("dependencies at once", stack.start_dependencies)
    with LocalStack(bench.fresh_dir()) as stack:
        bench.time("whole stack", stack.start)


def comparisons(bench: Bench) -> list[Row]:
    whole = bench.median("whole stack")
    together = bench.median("dependencies at once")
    service = bench.median("service (dependencies running)")
    parts = sum(bench.median(name) for name in DEPENDENCIES) + service
    slowest = max(bench.median(name) for name in DEPENDENCIES)
    return [
        Row("whole stack vs its parts one after another", whole, parts, "-", None),
        Row("4 dependencies at once vs the slowest alone", together, slowest, "-", None),
        Row("whole stack vs deps at once + service", whole, together + service, "~1x", None),
        Row("whole stack vs the 10 s goal", whole, GOAL_S, "well under 1x", whole < GOAL_S / 2),
    ]


def render_timings(bench: Bench) -> Table:
    table = Table(title=f"Cold start to ready, seconds ({len(bench.timings['whole stack'])} runs)")
    for column in ("start", "median", "min", "max"):
        table.add_column(column, justify="left" if column == "start" else "right")
    for name, values in bench.timings.items():
        table.add_row(name, *(f"{f(values):.3f}" for f in (statistics.median, min, max)))
    return table


def render_comparisons(rows: list[Row]) -> Table:
    table = Table(title="Starting at once, side by side (medians)")
    for column in ("measure", "ours s", "baseline s", "ratio", "goal", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        figures = (f"{row.ours:.3f}", f"{row.baseline:.3f}", f"{row.ratio:.2f}x")
        table.add_row(row.measure, *figures, row.goal, met)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="repetitions of every measurement")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    console = Console(width=110)  # full tables even when piped to a file
    with tempfile.TemporaryDirectory(prefix="tria-bench-") as root:
        bench = Bench(Path(root))
        one_run(bench)  # warm-up: the cluster cache, the OS page cache, Python's bytecode
        bench.timings.clear()
        for run in range(1, args.runs + 1):
            console.print(f"run {run}/{args.runs} ...")
            one_run(bench)
    rows = comparisons(bench)
    console.print(render_timings(bench))
    console.print(render_comparisons(rows))
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
