"""Hooks other plugins and conftest.py files may implement to extend tria-deploy."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_tria_deploy.stages import Stage


@pytest.hookspec
def pytest_tria_stages(config: pytest.Config) -> list[Stage]:  # type: ignore[empty-body]
    """Return extra stages (name, after, critical) to add to the stage graph.

    Called once at configure time, from every implementation; stages from all of them are added.
    Anything but a list (or tuple) of Stage is a usage error naming this hook.
    """


@pytest.hookspec
def pytest_tria_verdict(config: pytest.Config, verdict: dict[str, Any]) -> None:
    """Called with the redacted verdict (as written to verdict.json) once a run has one."""
