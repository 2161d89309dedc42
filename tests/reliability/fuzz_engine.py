"""Run schemathesis' own engine (what `st run` runs) against a live service and collect findings.

The pytest integration for a schema known only at run time (``schemathesis.pytest.from_fixture``)
fails under pytest 9.2 (schemathesis 4.32.5 reads ``request.node._nodeid``, which pytest 9.2's
``Function`` no longer has), so the tests drive the engine directly: the same phases, checks and
seed handling as ``st run``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import schemathesis
from schemathesis import engine
from schemathesis.engine import events
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.schemas import BaseSchema

SEED = 82024
MAX_EXAMPLES = 50
# A bound on a whole run (schemathesis' own max-time means "keep fuzzing until then" instead):
# reaching it stops the run early, and the tests fail on that.
MAX_SECONDS = 120
# Enough of a response body to see why it failed (the service never echoes a request back).
BODY_SHOWN = 240


@dataclass(frozen=True)
class Finding:
    """One failed check: which operation, which check, what it saw and how to reproduce it."""

    operation: str
    check: str
    title: str
    status: int | None
    body: str
    curl: str

    def __str__(self) -> str:
        return (
            f"{self.operation}: {self.check}: {self.title}\n"
            f"    answered HTTP {self.status}: {self.body}\n    {self.curl}"
        )


@dataclass
class FuzzRun:
    """What one engine run did and found."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    stop_reason: str = ""

    def report(self) -> str:
        """Every finding and error, one block each, distinct ones only."""
        lines = [str(f) for f in dict.fromkeys(self.findings)] + self.errors
        return "\n".join(lines)


def load_schema(base_url: str, security: Mapping[str, str], paths: str) -> BaseSchema:
    """The service's schema as it serves it, with the operations under ``paths`` and bearer tokens
    for the named security schemes; generation derandomized with a fixed seed, bounded."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
            "auth": {"openapi": {name: {"bearer": token} for name, token in security.items()}},
            "request-timeout": 30,
            "continue-on-failure": True,
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config, timeout=30)
    return schema.include(path_regex=paths)


def run(schema: BaseSchema) -> FuzzRun:
    """Every phase and every check of the engine over ``schema``; never raises for a finding."""
    result = FuzzRun()
    stream = engine.from_schema(schema).execute()
    deadline = time.monotonic() + MAX_SECONDS
    for event in stream:
        if time.monotonic() > deadline:
            stream.stop()
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            _record(event.recorder, result)
        elif isinstance(event, events.NonFatalError):
            result.errors.append(f"{event.label}: error: {event.value!r}")
        elif isinstance(event, events.FatalError):
            result.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            result.stop_reason = event.stop_reason.value  # "interrupted" after stop()
            result.findings += [
                Finding(f.operation or "run", "after_run", f.title, None, "", "")
                for f in event.failures
            ]
    return result


def _record(recorder: ScenarioRecorder, result: FuzzRun) -> None:
    result.cases[recorder.label] += len(recorder.cases)
    for interaction in recorder.interactions.values():
        if interaction.response is not None:
            result.statuses[interaction.response.status_code] += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            info = check.failure_info
            if info is None:
                continue
            response = recorder.find_response(case_id=case_id)
            result.findings.append(
                Finding(
                    operation=recorder.label,
                    check=check.name,
                    title=info.failure.title,
                    status=response.status_code if response is not None else None,
                    body=response.text[:BODY_SHOWN] if response is not None else "",
                    curl=info.code_sample,
                )
            )
