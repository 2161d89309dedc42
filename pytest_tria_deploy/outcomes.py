"""One test's result as the gate and the verdict see it, rebuilt from pytest's reports.

Stage, target and the gate's own decisions travel on each report as a plain ``tria`` dict, so
they survive pytest-xdist's serialisation and the controller sees exactly what the worker saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_tria_deploy.redact import redact

RESERVED_PROPERTIES = frozenset({"tria_stage", "tria_target", "tria_warning"})
MAX_REASON = 200  # a reason is one readable line in the table, VERDICT line and verdict.json


@dataclass(frozen=True)
class ItemInfo:
    """What the plugin knows about a staged item; kept in the item's stash."""

    stage: str
    target: str
    nodeid: str


@dataclass
class TestOutcome:
    """The final outcome of one staged test (all phases folded together)."""

    __test__ = False

    nodeid: str
    target: str
    stage: str
    outcome: str = "passed"
    duration: float = 0.0
    reason: str = ""
    provision: bool = False
    warnings: list[str] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "duration": round(self.duration, 6),
            "reason": self.reason,
        }
        if self.warnings:
            data["warnings"] = self.warnings
        if self.properties:
            data["properties"] = self.properties
        return data


def cap(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The first line of a report's error or skip reason, redacted and capped."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        text = str(longrepr[2]).removeprefix("Skipped: ")
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = str(getattr(crash, "message", "") or "") or report.longreprtext
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return cap(redact(lines[0])) if lines else ""


def annotate(
    report: pytest.TestReport,
    info: ItemInfo,
    *,
    blocked: bool,
    provision: bool,
    warnings: list[str],
) -> None:
    """Attach the plugin's view of an item to its report (plain data only)."""
    report.tria = {  # type: ignore[attr-defined]
        "stage": info.stage,
        "target": info.target,
        "nodeid": info.nodeid,
        "blocked": blocked,
        "provision": provision,
        "reason": first_line(report) if report.outcome != "passed" else "",
        "warnings": [redact(w) for w in warnings],
    }


class OutcomeCollector:
    """Folds setup/call/teardown reports into one TestOutcome per staged test."""

    def __init__(self) -> None:
        self._pending: dict[str, TestOutcome] = {}
        self.unstaged_failures = 0

    def add(self, report: pytest.TestReport) -> TestOutcome | None:
        """Feed one report; returns the outcome when the test's last phase has been seen."""
        data: dict[str, Any] | None = getattr(report, "tria", None)
        if data is None:
            if report.failed:
                self.unstaged_failures += 1
            return None
        outcome = self._pending.setdefault(
            report.nodeid, TestOutcome(data["nodeid"], data["target"], data["stage"])
        )
        outcome.duration += report.duration
        outcome.warnings = list(data["warnings"])
        _fold(outcome, report, data)
        if report.when != "teardown":
            return None
        outcome.properties = {
            str(k): _plain(v) for k, v in report.user_properties if k not in RESERVED_PROPERTIES
        }
        return self._pending.pop(report.nodeid)

    def unfinished(self, interrupted: bool) -> Iterator[TestOutcome]:
        """Tests whose teardown never arrived: cut off by an interrupt (blocked), or by a crashed
        xdist worker (an error)."""
        for outcome in self._pending.values():
            if interrupted and not outcome.failed:
                outcome.outcome = "blocked"
                outcome.reason = f"the run was interrupted before {outcome.nodeid} finished"
            elif not outcome.failed:
                outcome.outcome = "error"
                outcome.reason = outcome.reason or "the test did not finish (worker crashed?)"
            yield outcome
        self._pending.clear()


def _fold(outcome: TestOutcome, report: pytest.TestReport, data: dict[str, Any]) -> None:
    if report.failed and not outcome.failed:
        outcome.outcome = "failed" if report.when == "call" else "error"
        outcome.reason = data["reason"]
        outcome.provision = bool(data["provision"])
    elif report.skipped and outcome.outcome == "passed":
        outcome.outcome = "blocked" if data["blocked"] else "skipped"
        outcome.reason = data["reason"]


def _plain(value: object) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))
