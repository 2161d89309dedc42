"""What each target's provider started (versions, addresses, logs), for the verdict and terminal.

The process that starts a stack (an xdist worker, or the only process) is not always the one that
reports, so the facts travel on the first test report after they are known, as a plain dict
attribute: pytest-xdist ships such attributes to the controller with the rest of the report.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from pytest_tria_deploy.redact import redact_tree

ATTRIBUTE = "tria_provided"
_STARTED = pytest.StashKey[dict[str, dict[str, str]]]()


def record(config: pytest.Config, target: str, facts: Mapping[str, str]) -> None:
    """Called where a provider started: its ``describe()`` once it runs, redacted."""
    config.stash.setdefault(_STARTED, {})[target] = redact_tree(dict(facts))


class ProvidedFacts:
    """Sends facts on reports where providers run; collects them where the verdict is built."""

    def __init__(self) -> None:
        self.by_target: dict[str, dict[str, str]] = {}
        self._sent: set[str] = set()

    def attach(self, config: pytest.Config, report: pytest.TestReport) -> None:
        started = config.stash.get(_STARTED, {})
        fresh = {target: facts for target, facts in started.items() if target not in self._sent}
        if fresh:
            setattr(report, ATTRIBUTE, fresh)
            self._sent.update(fresh)

    def collect(self, report: pytest.TestReport) -> None:
        self.by_target.update(getattr(report, ATTRIBUTE, None) or {})
