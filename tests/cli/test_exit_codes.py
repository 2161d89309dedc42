"""Every command exits 4 on a command-line mistake (click would exit 2), while a command's own
exit code 2 (``serve``: a bad configuration) stays 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.cli.conftest import tria_deploy

COMMANDS = ["verify", "report", "targets", "up", "down", "serve"]


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unknown_option_exits_4(tmp_path: Path, name: str) -> None:
    result = tria_deploy(name, "--no-such-option", cwd=tmp_path, timeout=60)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "No such option" in result.stderr


def test_an_unknown_command_exits_4(tmp_path: Path) -> None:
    result = tria_deploy("verfy", cwd=tmp_path, timeout=60)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "verify" in result.stderr  # typer suggests the command meant


def test_serve_s_own_exit_2_is_not_taken_for_a_usage_error(tmp_path: Path) -> None:
    """No DATABASE_URL and the rest: the service refuses its configuration with exit 2."""
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    result = tria_deploy("serve", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "DATABASE_URL" in result.stderr  # the service's own answer
    assert "No such option" not in result.stderr
