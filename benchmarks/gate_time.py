"""Time to verdict: the shipped suites against a local stack that is already running.

The stack (PostgreSQL, Redis, Chroma, the OpenAI stand-in and the service) starts once; then
every run is ``python -m pytest suites ...`` from the repository root against it as an external
target: a temporary tria.toml whose target reads each endpoint from a ``${GATE_*}`` variable, the
report dir (verdict.json, baselines.json) in the same temporary directory. The runs:

- ``pytest suites``: the whole gate; goal under 15 s;
- ``pytest suites --tria-no-default-reports``: the same without Allure results and JUnit XML,
  what writing those two costs a run;
- ``pytest suites -m smoke``: goal under 3 s;
- ``pytest suites -n 2``: the same gate with xdist;
- ``pytest suites --co -q``: start-up and collection only, no test run;
- ``pytest --co -q`` in an empty directory: pytest with the same plugins installed, the tria
  plugin dormant and nothing to collect, the floor under every run above;
- ``pytest suites -m smoke`` without the hypothesis and schemathesis plugins: the dev extras
  install both, and their pytest plugins load on every run, where a user's
  ``pip install tria-deploy`` has neither;
- ``pytest suites -m smoke`` with ``PYTHONDONTWRITEBYTECODE=1`` and no bytecode cache of its own,
  as on a machine that sets it: Python compiles every module that has no .pyc, and pytest parses
  and assertion-rewrites, on every run, each module it imports from a distribution that has a
  pytest plugin (tria-deploy itself, hypothesis, schemathesis, anyio, pytest-asyncio...).

Every other run has a bytecode cache (``PYTHONPYCACHEPREFIX`` in the temporary directory), as an
installed package has; one unmeasured run of the whole suite fills it first (and the Redis
baseline the redis stage compares with); with --no-warm-up the first measured run pays for both
(for a quick check that every figure is printed, not for figures to compare). Each kind runs
--runs times, the kinds interleaved so load on the machine falls on all of them alike. Reported
per kind: the median and minimum wall time of the subprocess, pytest's own duration (from its
summary line: pytest's clock starts after the interpreter, the plugins and the configuration
have loaded), and the difference. A goal is met when the median wall time is under it and every
run of that kind passed (exit 0).

The service allows 100,000 chat turns per client and window: every run comes from one address,
and the default 120 a minute would turn later runs' chat turns into 429s.

Run: python -m benchmarks.gate_time [--runs 3] [--timeout 120] [--no-warm-up]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks._common import REPO_ROOT, Row, console, local_dependencies, report
from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.processes import start_service
from pytest_tria_deploy.provision.stack import external_target_env, external_target_toml
from pytest_tria_deploy.redact import redact, register_secrets

TARGET = "gate"
ENV_PREFIX = "GATE_"
NOT_THE_GATES = ("-p", "no:hypothesispytest", "-p", "no:schemathesis")
# pytest's last line: "=== 40 passed, 2 skipped in 9.81s ===" or "42 tests collected in 0.61s".
SUMMARY = re.compile(r"^=* ?(?P<outcome>[^=\s].*?) in (?P<seconds>\d+(?:\.\d+)?)s\b", re.MULTILINE)
VERDICT = re.compile(r"VERDICT: (?P<verdict>[A-Z]+)(?: - (?P<reason>.+))?")
TAIL_CHARS = 3000
PYCACHE = "PYTHONPYCACHEPREFIX"
NOTHING_COLLECTED = 5  # pytest's exit code for a run that collected no test
TARGET_TOML = external_target_toml(
    TARGET,
    ENV_PREFIX,
    settings={"provider": "external", "description": "the local stack gate_time started"},
)


@dataclass(frozen=True)
class Kind:
    """One way of running pytest; ``bytecode=False`` runs it without a bytecode cache."""

    label: str
    args: tuple[str, ...]
    bytecode: bool = True
    gate: bool = True  # False: in an empty directory, with no tria option
    exit_code: int = 0  # what a normal end of this run exits with


WHOLE = Kind("whole suite", ("suites",))
WHOLE_BARE = Kind("whole suite, --tria-no-default-reports", ("suites", "--tria-no-default-reports"))
SMOKE = Kind("-m smoke", ("suites", "-m", "smoke"))
XDIST = Kind("-n 2", ("suites", "-n", "2"))
COLLECT = Kind("--co -q", ("suites", "--co", "-q"))
SMOKE_BARE = Kind("-m smoke, no hypothesis/schemathesis", (*SMOKE.args, *NOT_THE_GATES))
SMOKE_UNCACHED = Kind("-m smoke, PYTHONDONTWRITEBYTECODE=1", SMOKE.args, bytecode=False)
PYTEST_ALONE = Kind(
    "pytest alone: --co -q, empty dir", ("--co", "-q"), gate=False, exit_code=NOTHING_COLLECTED
)
KINDS = (WHOLE, WHOLE_BARE, SMOKE, XDIST, COLLECT, SMOKE_BARE, SMOKE_UNCACHED, PYTEST_ALONE)
GOALS_S = {WHOLE: 15.0, SMOKE: 3.0}


@dataclass(frozen=True)
class Timing:
    """One pytest run: wall time, pytest's own duration, and how it ended."""

    wall: float
    reported: float | None
    outcome: str
    returncode: int | None  # None: killed at the timeout
    output: str
    reason: str = ""  # why the verdict is not PASS, as the plugin says it

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def run_pytest(
    args: Sequence[str], env: Mapping[str, str], timeout: float, cwd: Path = REPO_ROOT
) -> Timing:
    """``python -m pytest ARGS`` in ``cwd``, in its own process group so that a timeout also ends
    its xdist workers."""
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as child:
        try:
            output, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            output, _ = child.communicate()
            return Timing(timeout, None, f"timed out after {timeout:g} s", None, output)
    wall = time.perf_counter() - started
    found = list(SUMMARY.finditer(output))
    reported = float(found[-1]["seconds"]) if found else None
    outcome = found[-1]["outcome"] if found else f"no summary line (exit {child.returncode})"
    verdict = VERDICT.search(output)
    reason = ""
    if verdict:
        outcome = f"{verdict['verdict']}: {outcome}"
        reason = verdict["reason"] or ""
    return Timing(wall, reported, outcome, child.returncode, output, reason)


def gate_env(endpoints: Endpoints) -> dict[str, str]:
    """This process's environment plus the target's endpoints as the ``${GATE_*}`` variables."""
    return {**os.environ, **external_target_env(ENV_PREFIX, endpoints)}


def bytecode_env(env: Mapping[str, str], kind: Kind, cache: Path) -> dict[str, str]:
    """``env`` with a bytecode cache in ``cache``, or with none at all."""
    changed = {k: v for k, v in env.items() if k not in ("PYTHONDONTWRITEBYTECODE", PYCACHE)}
    if kind.bytecode:
        return {**changed, PYCACHE: str(cache)}
    return {**changed, "PYTHONDONTWRITEBYTECODE": "1"}


def measure(
    workdir: Path, env: Mapping[str, str], args: argparse.Namespace, out: Console
) -> dict[Kind, list[Timing]]:
    """Every kind ``--runs`` times, interleaved, after one unmeasured warm-up unless
    ``--no-warm-up``."""
    config = workdir / "tria.toml"
    config.write_text(TARGET_TOML, encoding="utf-8")
    gate = (
        f"--tria-config={config}",
        f"--tria-target={TARGET}",
        f"--tria-report-dir={workdir / 'reports'}",
    )
    cache, empty = workdir / "pycache", workdir / "empty"
    empty.mkdir()

    def run(kind: Kind) -> Timing:
        pytest_args = [*kind.args, *(gate if kind.gate else ()), "-p", "no:cacheprovider"]
        cwd = REPO_ROOT if kind.gate else empty
        return run_pytest(pytest_args, bytecode_env(env, kind, cache), args.timeout, cwd)

    if args.warm_up:
        show(out, f"warm-up (not measured): {WHOLE.label}", WHOLE, run(WHOLE))
    found: dict[Kind, list[Timing]] = {kind: [] for kind in KINDS}
    for repetition in range(1, args.runs + 1):
        for kind in KINDS:
            timing = run(kind)
            show(out, f"run {repetition}/{args.runs}: {kind.label}", kind, timing)
            found[kind].append(timing)
    return found


def show(out: Console, name: str, kind: Kind, timing: Timing) -> None:
    """One line per run; the redacted end of its output when it did not end normally."""
    line = f"{name}: {timing.wall:.2f} s, {timing.outcome}"
    if timing.reason:
        line += f" ({timing.reason})"
    out.print(redact(line), markup=False, highlight=False)
    if timing.returncode != kind.exit_code:
        out.print(redact(timing.output[-TAIL_CHARS:]), markup=False, highlight=False)


def start_and_measure(args: argparse.Namespace, out: Console) -> dict[Kind, list[Timing]]:
    with local_dependencies(out) as (stack, deps, env):
        out.print("starting the service ...")
        service = start_service(stack.workdir, {**env, "TRIA_RATE_LIMIT_PER_CLIENT": "100000"})
        try:
            endpoints = deps.endpoints(
                service.url,
                diagnostics_token=stack.diagnostics_token,
                secret_key=stack.secret_key,
            )
            register_secrets(endpoints.secrets())
            return measure(stack.workdir, gate_env(endpoints), args, out)
        finally:
            service.stop()


def seconds(values: Sequence[float | None]) -> tuple[float, float] | None:
    """Median and minimum, or None when a run gave no figure."""
    if any(value is None for value in values) or not values:
        return None
    known = [value for value in values if value is not None]
    return statistics.median(known), min(known)


def figure(pair: tuple[float, float] | None, which: int) -> str:
    return "-" if pair is None else f"{pair[which]:.2f}"


def timings_table(found: Mapping[Kind, list[Timing]]) -> Table:
    table = Table(title="python -m pytest <run> against the running stack: seconds")
    table.add_column("run", no_wrap=True)
    for column in ("wall med", "wall min", "pytest med", "pytest min", "outside pytest"):
        table.add_column(column, justify="right")
    table.add_column("outcome")
    for kind, timings in found.items():
        wall = seconds([t.wall for t in timings])
        reported = seconds([t.reported for t in timings])
        outside = seconds([None if t.reported is None else t.wall - t.reported for t in timings])
        outcomes = sorted({t.outcome for t in timings})
        table.add_row(
            kind.label,
            figure(wall, 0),
            figure(wall, 1),
            figure(reported, 0),
            figure(reported, 1),
            figure(outside, 0),
            "; ".join(outcomes),
        )
    return table


def median_wall(timings: Sequence[Timing]) -> float:
    return statistics.median(t.wall for t in timings)


def comparisons(found: Mapping[Kind, list[Timing]]) -> list[Row]:
    rows = []
    for kind, goal in GOALS_S.items():
        ours = median_wall(found[kind])
        rows.append(
            Row(
                f"{kind.label}: wall s vs goal",
                f"{ours:.2f}",
                f"{goal:g}",
                ours / goal,
                f"< {goal:g} s, passing",
                ours < goal and all(t.passed for t in found[kind]),
            )
        )
    for ours_kind, base_kind, measure_name in (
        (XDIST, WHOLE, "whole suite wall s: -n 2 vs serial"),
        (WHOLE, WHOLE_BARE, "whole suite wall s: with vs without Allure results and JUnit XML"),
        (SMOKE, SMOKE_BARE, "-m smoke wall s: with vs without hypothesis/schemathesis"),
        (SMOKE_UNCACHED, SMOKE, "-m smoke wall s: without vs with a bytecode cache"),
        (COLLECT, SMOKE, "wall s: --co -q vs -m smoke"),
        (PYTEST_ALONE, SMOKE, "wall s: pytest alone vs -m smoke"),
    ):
        ours, base = median_wall(found[ours_kind]), median_wall(found[base_kind])
        rows.append(Row(measure_name, f"{ours:.2f}", f"{base:.2f}", ours / base))
    return rows


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per pytest run")
    parser.add_argument(
        "--warm-up",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one unmeasured whole-suite run first (fills the bytecode cache and Redis baseline)",
    )
    args = parser.parse_args()
    if args.runs < 1 or args.timeout <= 0:
        parser.error("--runs must be at least 1 and --timeout positive")
    out = console()
    out.print(f"before: {load_average()}")
    found = start_and_measure(args, out)
    out.print(f"after: {load_average()}")
    out.print(timings_table(found))
    out.print("outside pytest: wall time less pytest's own duration (start-up before its clock)")
    return report(out, "Time to verdict against a running local stack", comparisons(found))


if __name__ == "__main__":
    raise SystemExit(main())
