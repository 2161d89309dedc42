"""What the gate must do in each cell of the fault matrix: the matrix's gate column.

The shipped suites (``suites/`` as it is) run in-process against an ``external`` target whose
tria.toml points at the cell's servers and service, as a user runs the gate against a deployment;
each check reads the run's ``reports/verdict.json`` for the stages' outcomes. Only the stages a
cell needs run (``-m``): the faulted dependency's stage, and the stages that show what it does to
the others (blocked dependents, independent siblings that still run, health once it is back).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Imported here, once for the session: pytester drops the modules a run imports first. openai's
# httpx2 imports httpcore2 on its first request and keeps a map of its exception classes (as
# httpx does with httpcore, see tests/conftest.py): a later run would meet raw httpcore2 errors
# instead of openai's. The others would only be imported again by each run (openai alone takes
# most of a second).
import allure  # noqa: F401
import asyncpg  # noqa: F401
import dotenv  # noqa: F401
import httpcore2  # noqa: F401
import openai  # noqa: F401
import prometheus_client.parser  # noqa: F401
import psutil  # noqa: F401
import pytest
import pytest_asyncio  # noqa: F401
import redis.asyncio  # noqa: F401

from pytest_tria_deploy.provision.processes import free_port
from pytest_tria_deploy.provision.stack import TARGET_KEYS, external_target_toml
from tests.reliability.faults_inject import Faulted
from tests.reliability.faults_matrix import Fault
from tests.reliability.faults_service import Measured
from tests.reliability.secrets_canaries import assert_no_secret
from tests.suites.helpers import copy_suites, stages

TARGET = "cell"
ENV_PREFIX = "CELL_"
SERVICE_URL = "TRIA_SERVICE_URL"

# Each dependency's stage, and how the suites name it in a failure.
STAGE = {"postgres": "database", "redis": "redis", "chroma": "external", "openai": "external"}
NAMED = {"postgres": "PostgreSQL", "redis": "Redis", "chroma": "Chroma", "openai": "OpenAI"}
DEPENDENCY_STAGES = ("database", "redis", "external")
DEPENDENTS = ("components", "health", "smoke")
# Every latency budget, set far above what a loaded machine takes: only the slow cells' own
# budgets (below) may turn a stage to WARN.
GENEROUS_MS = 30_000.0
LATENCY_BUDGETS = (
    "readiness_ms",
    "liveness_ms",
    "redis_p99_ms",
    "database_p99_ms",
    "database_connect_ms",
    "openai_ms",
    "chroma_ms",
)
# slow: the budgets of the slow dependency, the added latency while the gate runs, and a budget
# below it. The suites measure up to 100 round trips per check; at the service column's 0.5 s
# each, one stage would run into the measuring helper's 10 s deadline.
SLOW_BUDGETS = {
    "postgres": ("database_connect_ms", "database_p99_ms"),
    "redis": ("redis_p99_ms",),
    "chroma": ("chroma_ms",),
    "openai": ("openai_ms",),
}
GATE_LATENCY_S = 0.01
SLOW_BUDGET_MS = 5.0
# hangs: how long the suites' clients wait (the budgets connect_timeout_s, request_timeout_s).
GATE_TIMEOUT_S = 1.0
# What one check may take beyond its one timeout on a loaded 2-core machine.
SLACK_S = 2.0
BUDGET_WARNING = re.compile(r"budget (?P<budget>[\d.]+) ms, measured (?P<measured>[\d.]+) ms")


@dataclass(frozen=True)
class GateRun:
    """One gate run: its exit code, verdict.json, everything it printed or wrote, its duration."""

    exit_code: int
    verdict: dict[str, Any]
    output: str
    seconds: float

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return stages(self.verdict)

    def describe(self) -> str:
        """The stages' statuses and reasons, for an assertion message."""
        return "; ".join(f"{n}: {s['status']} {s['reason']}" for n, s in self.stages.items())


class Gate:
    """Runs the shipped suites in-process against a cell's servers."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = copy_suites(pytester, "")  # each run writes its own tria.toml

    def run(
        self,
        state: Faulted,
        stages: Sequence[str],
        budgets: Mapping[str, float] | None = None,
    ) -> GateRun:
        """The gate on ``stages`` only, with the target's budgets (generous unless given)."""
        table = {name: GENEROUS_MS for name in LATENCY_BUDGETS} | dict(budgets or {})
        tria_toml = external_target_toml(TARGET, ENV_PREFIX, tables={"budgets": table})
        self.pytester.makefile(".toml", tria=tria_toml)
        reports = self.pytester.path / "reports"
        shutil.rmtree(reports, ignore_errors=True)
        with pytest.MonkeyPatch.context() as env:
            for name, value in _target_env(state).items():
                env.setenv(f"{ENV_PREFIX}{name}", value)
            started = time.monotonic()
            result = self.pytester.runpytest(
                "suites",
                "-p",
                "no:cacheprovider",
                f"--tria-target={TARGET}",
                "--junitxml=reports/junit.xml",
                "-o",
                "junit_family=xunit1",  # the one that keeps record_property's values
                "-m",
                " or ".join(stages),
            )
            seconds = time.monotonic() - started
        written = [p.read_text("utf-8", "replace") for p in reports.rglob("*") if p.is_file()]
        verdict = _read_verdict(reports, result)
        output = "\n".join([result.stdout.str(), result.stderr.str(), *written])
        return GateRun(int(result.ret), verdict, output, seconds)


def _target_env(state: Faulted) -> dict[str, str]:
    """The target's variables: the cell's service and what it was (or would be) started with
    (the target reads each under the name the service does). A service that never started
    still has a URL, where nothing answers."""
    url = state.service.url if state.service else f"http://127.0.0.1:{free_port()}"
    return {SERVICE_URL: url} | {
        name: state.env[name] for name in TARGET_KEYS if name != SERVICE_URL
    }


def _read_verdict(reports: Path, result: pytest.RunResult) -> dict[str, Any]:
    path = reports / "verdict.json"
    assert path.is_file(), f"the gate wrote no verdict:\n{result.stdout.str()[-3000:]}"
    verdict: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return verdict


def check_gate_down_at_startup(state: Faulted, gate: Gate) -> Measured:
    """The dependency's stage fails naming it and where it was looked for; its dependents are
    blocked; the independent dependency stages still run and pass; FAIL, exit 1."""
    component = state.dependency.component
    stage = STAGE[component]
    independent = [s for s in DEPENDENCY_STAGES if s != stage]
    run = gate.run(state, [stage, *independent, *DEPENDENTS])
    _assert_failed(run, stage)
    reason = run.stages[stage]["reason"]
    assert NAMED[component] in reason, reason
    assert f"127.0.0.1:{state.dead_port}" in reason, reason
    for name in independent:
        assert run.stages[name]["status"] == "PASS", run.describe()
        assert run.stages[name]["passed"] > 0, run.describe()
    _assert_blocked(run, stage, DEPENDENTS)
    return {"gate_s": run.seconds}


def check_gate_dies(state: Faulted, gate: Gate) -> Measured:
    """The dependency's stage fails naming it, and blocks what builds on it."""
    component = state.dependency.component
    stage = STAGE[component]
    run = gate.run(state, [stage, "components"])
    _assert_failed(run, stage)
    assert NAMED[component] in run.stages[stage]["reason"], run.describe()
    _assert_blocked(run, stage, ["components"])
    return {"gate_s": run.seconds}


def check_gate_comes_back(state: Faulted, gate: Gate) -> Measured:
    """With the dependency back (and the service's readiness too), its stage and health pass."""
    stage = STAGE[state.dependency.component]
    run = gate.run(state, [stage, "health"])
    assert (run.verdict["verdict"], run.exit_code) == ("PASS", 0), run.describe()
    for name in (stage, "health"):
        assert run.stages[name]["status"] == "PASS", run.describe()
        assert run.stages[name]["failed"] == 0, run.describe()
    return {"gate_s": run.seconds}


def check_gate_hangs(state: Faulted, gate: Gate) -> Measured:
    """The stage fails with "timed out after Xs" (X the target's timeout); no check waits longer
    than one timeout (plus slack); what builds on the stage is blocked."""
    component = state.dependency.component
    stage = STAGE[component]
    timeouts = {"connect_timeout_s": GATE_TIMEOUT_S, "request_timeout_s": GATE_TIMEOUT_S}
    run = gate.run(state, [stage, "components"], timeouts)
    _assert_failed(run, stage)
    said = f"timed out after {GATE_TIMEOUT_S:g}s"
    reason = run.stages[stage]["reason"]
    assert NAMED[component] in reason, reason
    assert said in reason, reason
    tests = run.stages[stage]["tests"]
    failed = [t for t in tests if t["outcome"] in ("failed", "error")]
    assert failed, run.describe()
    assert any(NAMED[component] in t["reason"] for t in failed), run.describe()
    for test in failed:  # every check that failed says why in the same words
        assert said in test["reason"], test
    slowest = max(t["duration"] for t in tests)
    assert slowest <= GATE_TIMEOUT_S + SLACK_S, [(t["nodeid"], t["duration"]) for t in tests]
    _assert_blocked(run, stage, ["components"])
    return {"gate_s": run.seconds, "gate_slowest_check_s": slowest}


def check_gate_slow(state: Faulted, gate: Gate) -> Measured:
    """Over its budgets but working: the stage and the verdict are WARN (exit 0), each warning
    naming the budget and the measured value, which is at least the added latency."""
    component = state.dependency.component
    stage = STAGE[component]
    assert state.set_latency is not None
    state.set_latency(GATE_LATENCY_S)
    budgets = {name: SLOW_BUDGET_MS for name in SLOW_BUDGETS[component]}
    run = gate.run(state, [stage], budgets)
    assert (run.verdict["verdict"], run.exit_code) == ("WARN", 0), run.describe()
    assert run.stages[stage]["status"] == "WARN", run.describe()
    assert run.stages[stage]["failed"] == 0, run.describe()
    warnings = [w for t in run.stages[stage]["tests"] for w in t.get("warnings", [])]
    over = [(w, m) for w in warnings if (m := BUDGET_WARNING.search(w))]
    named = {name for w, _ in over for name in budgets if name in w}
    assert named == set(budgets), warnings
    measured = []
    for warning, match in over:
        assert NAMED[component] in warning, warning
        assert float(match["budget"]) == SLOW_BUDGET_MS, warning
        measured.append(float(match["measured"]))
        assert measured[-1] >= GATE_LATENCY_S * 1000, warning
    return {"gate_s": run.seconds, "gate_slow_measured_ms": min(measured)}


def check_gate_wrong_credentials(state: Faulted, gate: Gate) -> Measured:
    """The environment or the dependency's stage fails, saying the credentials were refused, and
    the wrong secret appears nowhere in what the gate printed or wrote."""
    component = state.dependency.component
    stage = STAGE[component]
    assert state.planted is not None
    run = gate.run(state, ["environment", stage, "components"])
    failed = [n for n, s in run.stages.items() if s["status"] == "FAIL"]
    assert (run.verdict["verdict"], run.exit_code) == ("FAIL", 1), run.describe()
    assert failed, run.describe()
    assert set(failed) <= {"environment", stage}, run.describe()
    reason = run.stages[failed[0]]["reason"]
    assert NAMED[component] in reason or failed[0] == "environment", reason
    assert "refused the credentials" in reason or "answered 401" in reason, reason
    _assert_blocked(run, failed[0], ["components"])
    assert_no_secret({"the gate's output": run.output}, {"the wrong secret": state.planted})
    return {"gate_s": run.seconds}


GATE_CHECKS: dict[Fault, Callable[[Faulted, Gate], Measured]] = {
    Fault.DOWN_AT_STARTUP: check_gate_down_at_startup,
    Fault.DIES: check_gate_dies,
    Fault.COMES_BACK: check_gate_comes_back,
    Fault.HANGS: check_gate_hangs,
    Fault.SLOW: check_gate_slow,
    Fault.WRONG_CREDENTIALS: check_gate_wrong_credentials,
}


def _assert_failed(run: GateRun, stage: str) -> None:
    assert (run.verdict["verdict"], run.verdict["exit_code"], run.exit_code) == ("FAIL", 1, 1), (
        run.describe()
    )
    assert run.stages[stage]["status"] == "FAIL", run.describe()


def _assert_blocked(run: GateRun, failed: str, dependents: Sequence[str]) -> None:
    """Each dependent stage was blocked by ``failed``: none of its tests ran."""
    for name in dependents:
        entry = run.stages[name]
        assert entry["status"] == "BLOCKED", run.describe()
        assert entry["blocked"] > 0, entry
        assert entry["passed"] == entry["failed"] == 0, entry
        assert f"blocked: {failed} failed" in entry["reason"], entry["reason"]
