"""The fault matrix as data: each dependency × each fault is one cell, one parametrised test.

A cell says what is broken and how; ``faults_inject.faulted`` brings it about with real means
(a free port, a stopped or frozen process, a latency proxy, the stand-in's fault mode, a wrong
secret) and ``faults_service`` asserts what the service must do. The gate column (what the
deployment suites must report) is a second mapping beside ``faults_service.SERVICE_CHECKS``, run
inside the same ``faulted()`` block. A cell that cannot exist carries the reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pytest

from pytest_tria_deploy.provision.stack import Component


class Fault(StrEnum):
    DOWN_AT_STARTUP = "down-at-startup"
    DIES = "dies"
    COMES_BACK = "comes-back"
    HANGS = "hangs"
    SLOW = "slow"
    WRONG_CREDENTIALS = "wrong-credentials"


@dataclass(frozen=True)
class Dependency:
    """One dependency as the service names it, and where its faults are applied."""

    name: str  # in the service's messages and diagnostics: "database: connection refused ..."
    component: Component  # the server fresh_deps starts for it
    check: str  # its key in the health bodies' "checks"
    url_var: str  # the variable that says where it is
    credential_var: str | None  # the variable holding its secret; None when it has none


POSTGRES = Dependency(
    "database", "postgres", "postgresql:responseTime", "DATABASE_URL", "DATABASE_URL"
)
REDIS = Dependency("redis", "redis", "redis:responseTime", "REDIS_URL", "REDIS_URL")
CHROMA = Dependency("chroma", "chroma", "chroma:responseTime", "CHROMA_URL", None)
OPENAI = Dependency("openai", "openai", "openai:responseTime", "OPENAI_BASE_URL", "OPENAI_API_KEY")
DEPENDENCIES = (POSTGRES, REDIS, CHROMA, OPENAI)

NOT_APPLICABLE: dict[tuple[str, Fault], str] = {
    (CHROMA.name, Fault.WRONG_CREDENTIALS): (
        "not applicable: the service talks to Chroma without credentials (no CHROMA_* secret "
        "exists) and the local Chroma runs without authentication, so there is no wrong one"
    ),
}


@dataclass(frozen=True)
class Cell:
    dependency: Dependency
    fault: Fault

    @property
    def id(self) -> str:
        return f"{self.dependency.component}-{self.fault.value}"

    @property
    def not_applicable(self) -> str | None:
        return NOT_APPLICABLE.get((self.dependency.name, self.fault))


CELLS = [Cell(dep, fault) for fault in Fault for dep in DEPENDENCIES]


def matrix_params() -> list[pytest.ParameterSet]:
    """Every cell as a pytest param; a cell that cannot exist is skipped with its reason."""
    return [
        pytest.param(
            cell,
            id=cell.id,
            marks=[pytest.mark.skip(reason=cell.not_applicable)] if cell.not_applicable else [],
        )
        for cell in CELLS
    ]
