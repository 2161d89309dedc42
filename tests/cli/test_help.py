"""Every command's ``--help`` names every option it has and its exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from pytest_tria_deploy.cli import app
from pytest_tria_deploy.cli.group import TriaGroup
from tests.cli.conftest import clean_env, tria_deploy

GROUP = typer.main.get_command(app)
assert isinstance(GROUP, TriaGroup)
COMMANDS = dict(GROUP.commands)
WIDE = clean_env({"COLUMNS": "200"})


def _tokens(text: str) -> set[str]:
    """The words of a help text as the shell would split them, without the table's borders."""
    return set(re.split(r"[\s│,]+", text))


def test_the_commands_are_all_there() -> None:
    assert list(COMMANDS) == ["verify", "report", "targets", "up", "down", "serve"]


def test_top_level_help_lists_every_command_in_one_line(tmp_path: Path) -> None:
    result = tria_deploy("--help", cwd=tmp_path, env=WIDE)
    assert result.returncode == 0
    for name, command in COMMANDS.items():
        line = next((row for row in result.stdout.splitlines() if f"│ {name} " in row), "")
        assert line, name
        summary = command.get_short_help_str(limit=1000).rstrip(".")
        assert summary.split(";")[0] in line  # its one-line summary, on its own row


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_names_every_option_and_the_exit_codes(tmp_path: Path, name: str) -> None:
    result = tria_deploy(name, "--help", cwd=tmp_path, env=WIDE)
    assert result.returncode == 0, result.stderr
    options = [opt for param in COMMANDS[name].params for opt in param.opts if opt.startswith("-")]
    shown = _tokens(result.stdout)
    assert [opt for opt in options if opt not in shown] == []  # -n is no part of --no-deps
    assert "Exit status" in result.stdout
    assert re.search(r"\b4[\s│]+usage[\s│]+error", result.stdout)  # every command exits 4 so


def test_python_m_runs_the_same_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_tria_deploy.cli", "--help"],
        cwd=tmp_path,
        env=WIDE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: tria-deploy" in result.stdout
    assert "│ verify " in result.stdout
