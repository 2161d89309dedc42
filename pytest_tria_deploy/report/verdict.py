"""The verdict: one status per stage and per target, the overall answer, and verdict.json.

PASS: every selected check ran and passed. WARN: a non-critical stage failed, a test recorded a
warning, or nothing was verified (every staged test skipped). FAIL: a critical stage failed.
BLOCKED: the target could not be verified at all (its provider did not start, the suite did not
collect, or the run was interrupted before its stages finished).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pytest_tria_deploy.outcomes import TestOutcome, cap
from pytest_tria_deploy.redact import redact_tree
from pytest_tria_deploy.report.writing import write_atomic
from pytest_tria_deploy.settings import GateMode, TriaSettings
from pytest_tria_deploy.stages import Stage


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    WARN = "WARN"
    FAIL = "FAIL"
    BLOCKED = "BLOCKED"
    SKIPPED = "SKIPPED"
    NOT_RUN = "NOT RUN"


VERDICT_FILE = "verdict.json"
_SEVERITY = [Status.PASS, Status.WARN, Status.BLOCKED, Status.FAIL]


@dataclass
class StageResult:
    stage: Stage
    critical: bool
    tests: list[TestOutcome] = field(default_factory=list)
    status: Status = Status.NOT_RUN
    reason: str = ""

    def count(self, *outcomes: str) -> int:
        return sum(t.outcome in outcomes for t in self.tests)

    @property
    def duration(self) -> float:
        return sum(t.duration for t in self.tests)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.stage.name,
            "critical": self.critical,
            "status": self.status.value,
            "reason": self.reason,
            "passed": self.count("passed"),
            "failed": self.count("failed", "error"),
            "skipped": self.count("skipped"),
            "blocked": self.count("blocked"),
            "duration": round(self.duration, 6),
            "tests": [t.as_dict() for t in self.tests],
        }


@dataclass
class TargetVerdict:
    name: str
    provider: str
    protected: bool
    stages: list[StageResult]
    verdict: Status = Status.PASS
    reason: str = ""
    provided: dict[str, str] = field(default_factory=dict)  # the provider's describe() once up

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "provider": self.provider,
            "protected": self.protected,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "provided": self.provided,
            "stages": [s.as_dict() for s in self.stages],
        }


@dataclass
class Verdict:
    targets: list[TargetVerdict]
    gate: GateMode
    started: datetime
    finished: datetime
    verdict: Status = Status.PASS
    reason: str = ""
    git_sha: str | None = None
    exit_code: int | None = None  # the process's exit code, set once the run has decided it

    @property
    def verdict_exit_code(self) -> int:
        """1 for FAIL and BLOCKED (and WARN under strict), else 0."""
        if self.verdict in (Status.FAIL, Status.BLOCKED):
            return 1
        return int(self.verdict is Status.WARN and self.gate is GateMode.STRICT)

    def as_dict(self) -> dict[str, Any]:
        data = {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "exit_code": self.verdict_exit_code if self.exit_code is None else self.exit_code,
            "gate": self.gate.value,
            "target": ",".join(t.name for t in self.targets),
            "provider": ",".join(dict.fromkeys(t.provider for t in self.targets)),
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "tool": {"name": "tria-deploy", "version": tool_version()},
            "suites_git_sha": self.git_sha,
            "targets": [t.as_dict() for t in self.targets],
        }
        redacted: dict[str, Any] = redact_tree(data)
        return redacted


def build_verdict(
    settings: TriaSettings,
    outcomes: Iterable[TestOutcome],
    *,
    started: datetime,
    interrupted: bool,
    collection_errors: Sequence[str] = (),
    provided: Mapping[str, Mapping[str, str]] | None = None,
    suites_dir: Path | None,
) -> Verdict:
    """Fold outcomes into stage, target and overall verdicts."""
    by_key: dict[tuple[str, str], list[TestOutcome]] = {}
    for outcome in outcomes:
        by_key.setdefault((outcome.target, outcome.stage), []).append(outcome)
    broken = f"suite did not collect: {collection_errors[0]}" if collection_errors else ""
    targets = []
    for target in settings.targets:
        stages = [
            _stage_result(
                stage,
                settings.is_critical(target.name, stage.name),
                by_key.get((target.name, stage.name), []),
                settings.gate,
            )
            for stage in settings.graph.stages
            if stage.name in settings.run_stages
        ]
        facts = dict((provided or {}).get(target.name, {}))
        tv = TargetVerdict(target.name, target.provider, target.protected, stages, provided=facts)
        tv.verdict, tv.reason = _target_status(stages, interrupted, broken)
        tv.reason = cap(tv.reason)
        targets.append(tv)
    worst = max(targets, key=lambda t: _SEVERITY.index(t.verdict))
    reason = worst.reason
    if len(targets) > 1 and reason:
        reason = f"{worst.name}: {reason}"
    return Verdict(
        targets=targets,
        gate=settings.gate,
        started=started,
        finished=datetime.now(UTC),
        verdict=worst.verdict,
        reason=reason,
        git_sha=git_sha(suites_dir) if suites_dir else None,
    )


def _stage_result(
    stage: Stage, critical: bool, tests: list[TestOutcome], gate: GateMode
) -> StageResult:
    result = StageResult(stage, critical, tests)
    failure = next((t for t in tests if t.failed), None)
    warning = next((t for t in tests if t.warnings), None)
    blocked = next((t for t in tests if t.outcome == "blocked"), None)
    if failure is not None and failure.provision:
        # Not the stage's failure: the target never came up (the reason names it and why).
        result.status, result.reason = Status.BLOCKED, failure.reason
    elif failure is not None:
        result.status = Status.FAIL if critical else Status.WARN
        result.reason = f"{stage.name} failed: {failure.nodeid}: {failure.reason}"
    elif blocked is not None:
        result.status, result.reason = Status.BLOCKED, blocked.reason
    elif warning is not None:
        strict = gate is GateMode.STRICT and critical
        result.status = Status.FAIL if strict else Status.WARN
        result.reason = f"{stage.name} warned: {warning.nodeid}: {warning.warnings[0]}"
    elif any(t.outcome == "passed" for t in tests):
        result.status = Status.PASS
    elif tests:
        result.status = Status.SKIPPED
    return result


def _target_status(
    stages: Sequence[StageResult], interrupted: bool, broken: str
) -> tuple[Status, str]:
    if broken:
        return Status.BLOCKED, broken
    first_fail = next((s for s in stages if s.status is Status.FAIL), None)
    if first_fail is not None:
        return Status.FAIL, first_fail.reason
    first_blocked = next((s for s in stages if s.status is Status.BLOCKED), None)
    if first_blocked is not None:
        return Status.BLOCKED, first_blocked.reason
    if interrupted:
        return Status.BLOCKED, "the run was interrupted before every stage finished"
    first_warn = next((s for s in stages if s.status is Status.WARN), None)
    if first_warn is not None:
        return Status.WARN, first_warn.reason
    if not any(t.outcome == "passed" for s in stages for t in s.tests):
        return Status.WARN, "nothing was verified: every staged test was skipped"
    return Status.PASS, ""


def write_verdict(verdict: Verdict, report_dir: Path) -> Path:
    """Write verdict.json (every string already redacted), whole or not at all like every report
    file, and return its path."""
    return write_atomic(report_dir / VERDICT_FILE, json.dumps(verdict.as_dict(), indent=2) + "\n")


def tool_version() -> str:
    try:
        return version("tria-deploy")
    except PackageNotFoundError:
        return "unknown"


def git_sha(directory: Path) -> str | None:
    """The commit the suites were taken from, when they live in a git work tree."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha else None
