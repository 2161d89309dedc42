"""Per-run state, kept in the pytest config's stash (one run never sees another's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from pytest_tria_deploy.gate import Gate
from pytest_tria_deploy.outcomes import OutcomeCollector, TestOutcome
from pytest_tria_deploy.redact import SecretScope
from pytest_tria_deploy.report.verdict import Verdict
from pytest_tria_deploy.settings import TriaSettings


@dataclass
class TriaRun:
    """What one run accumulates: the gate's memory, the outcomes, the verdict's inputs."""

    settings: TriaSettings
    gate: Gate
    secrets: SecretScope
    collector: OutcomeCollector = field(default_factory=OutcomeCollector)
    outcomes: list[TestOutcome] = field(default_factory=list)
    collection_errors: list[str] = field(default_factory=list)
    usage_errors: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    verdict: Verdict | None = None
    verdict_path: str | None = None

    def record(self, outcome: TestOutcome) -> None:
        self.outcomes.append(outcome)
        self.gate.observe(outcome)


RUN = pytest.StashKey[TriaRun]()
WARNINGS = pytest.StashKey[list[str]]()
BLOCKED = pytest.StashKey[bool]()
PROBLEM = pytest.StashKey[str]()


def settings_of(config: pytest.Config) -> TriaSettings:
    """The run's settings; the fixtures that call this are registered only on active runs."""
    return config.stash[RUN].settings
