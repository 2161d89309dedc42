"""Blocking: once a critical stage fails, every stage that builds on it is skipped, per target."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_tria_deploy.outcomes import TestOutcome
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.settings import GateMode
from pytest_tria_deploy.stages import StageGraph


@dataclass(frozen=True)
class Failure:
    """The first failure seen in one stage of one target."""

    nodeid: str
    reason: str


class Gate:
    """Remembers the first failure of each critical stage and answers "may this stage run?"."""

    def __init__(self, graph: StageGraph, mode: GateMode) -> None:
        self._graph = graph
        self._mode = mode
        self._failures: dict[tuple[str, str], Failure] = {}

    def observe(self, outcome: TestOutcome) -> None:
        """Record a finished test; only failures of critical stages (or strict warnings) count."""
        if outcome.stage not in self._graph or not self._graph[outcome.stage].critical:
            return
        key = (outcome.target, outcome.stage)
        if key in self._failures:
            return
        if outcome.failed:
            self._failures[key] = Failure(outcome.nodeid, outcome.reason)
        elif self._mode is GateMode.STRICT and outcome.warnings:
            self._failures[key] = Failure(outcome.nodeid, f"warning: {outcome.warnings[0]}")

    def blocked_reason(self, target: str, stage: str) -> str | None:
        """Why ``stage`` may not run on ``target``, or None when it may."""
        if self._mode is GateMode.OFF:
            return None
        for parent in self._graph.ancestors(stage):
            failure = self._failures.get((target, parent))
            if failure is not None:
                detail = f": {failure.reason}" if failure.reason else ""
                return redact(f"blocked: {parent} failed: {failure.nodeid}{detail}")
        return None
