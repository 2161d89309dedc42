"""An environment with none of the service's variables, shared by the config and startup tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tria_service.config import Settings


def clear_service_env(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Unset every variable Settings reads (and TRIA_ENV_FILE), and work in `directory`.

    The directory should hold no `.env`, so nothing from the developer's machine leaks in.
    """
    known = {name.upper() for name in Settings.model_fields} | {"TRIA_ENV_FILE"}
    for name in list(os.environ):
        if name.upper() in known:
            monkeypatch.delenv(name)
    monkeypatch.chdir(directory)
