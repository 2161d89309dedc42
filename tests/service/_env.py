"""An environment with none of the service's variables, shared by the config and startup tests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from tria_service.config import Settings

# The variables named when the four required ones are missing or bad and REDIS_PORT is 0: one
# problem each, in the order of Settings' fields.
REQUIRED_AND_REDIS_PORT = [
    "DATABASE_URL",
    "REDIS_PORT",
    "OPENAI_API_KEY",
    "SECRET_KEY",
    "TRIA_DIAGNOSTICS_TOKEN",
]


def named(problems: Sequence[str]) -> list[str]:
    """The variable each problem line is about ("VAR: what is wrong — how to fix")."""
    return [problem.split(":", 1)[0] for problem in problems]


def clear_service_env(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Unset every variable Settings reads (and TRIA_ENV_FILE), and work in `directory`.

    The directory should hold no `.env`, so nothing from the developer's machine leaks in.
    """
    known = {name.upper() for name in Settings.model_fields} | {"TRIA_ENV_FILE"}
    for name in list(os.environ):
        if name.upper() in known:
            monkeypatch.delenv(name)
    monkeypatch.chdir(directory)
