"""Fixtures for the provisioning tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_tria_deploy.provision.processes import STATE_DIR_ENV


@pytest.fixture
def isolated_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state dir (pid files, PostgreSQL clusters) so reaping never sees other runs.

    It lives directly under /tmp, world-traversable, because PostgreSQL runs as ``nobody`` as root.
    """
    path = Path(tempfile.mkdtemp(prefix="tria-state-test-"))
    path.chmod(0o755)
    monkeypatch.setenv(STATE_DIR_ENV, str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)
