"""Blocking: once a critical stage fails, every stage that builds on it is skipped, per target."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_tria_deploy.outcomes import TestOutcome
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.settings import GateMode, TriaSettings


@dataclass(frozen=True)
class Failure:
    """The first failure seen in one stage of one target."""

    nodeid: str
    reason: str


class Gate:
    """The run's memory of failed critical stages, asked before each staged test starts.

    It lives in the process that runs a target's staged tests (the one worker of the target's
    xdist group, or the only process), because blocking must be decided before the next test
    starts, not when the controller hears about it.
    """

    def __init__(self, settings: TriaSettings) -> None:
        self._settings = settings
        self._failures: dict[tuple[str, str], Failure] = {}

    def observe(self, outcome: TestOutcome) -> None:
        """Record a finished test; only failures of critical stages (or strict warnings) count."""
        settings = self._settings
        if outcome.stage not in settings.graph or not settings.is_critical(
            outcome.target, outcome.stage
        ):
            return
        key = (outcome.target, outcome.stage)
        if key in self._failures:
            return
        if outcome.failed:
            self._failures[key] = Failure(outcome.nodeid, outcome.reason)
        elif settings.gate is GateMode.STRICT and outcome.warnings:
            self._failures[key] = Failure(outcome.nodeid, f"warning: {outcome.warnings[0]}")

    def blocked_reason(self, target: str, stage: str) -> str | None:
        """Why ``stage`` may not run on ``target``, or None when it may."""
        if self._settings.gate is GateMode.OFF:
            return None
        for parent in self._settings.graph.ancestors(stage):
            failure = self._failures.get((target, parent))
            if failure is not None:
                detail = f": {failure.reason}" if failure.reason else ""
                return redact(f"blocked: {parent} failed: {failure.nodeid}{detail}")
        return None
