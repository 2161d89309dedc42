"""The per-stage progress of ``tria-deploy verify``: plain lines in a log, a live display on a
terminal, with a stage that fails and the stages it blocks. The suite is a small staged one (no
stack is started), run through the real console script."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import CLI, clean_env, tria_deploy
from tests.plugin.conftest import STAGE_MODULES

FAILING_DATABASE = "def test_db_connects():\n    pass\n\ndef test_db_schema():\n    assert False\n"


@pytest.fixture
def failing_suite(tmp_path: Path) -> Path:
    """One module per stage; the database stage fails one of its two tests."""
    suites = tmp_path / "suites"
    suites.mkdir()
    for name, body in STAGE_MODULES.items():
        text = FAILING_DATABASE if name == "test_03_database" else body
        (suites / f"{name}.py").write_text(text)
    return tmp_path


def _in_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``tria-deploy ARGS`` with a pseudo-terminal as stdout and stderr; all it wrote."""
    primary, secondary = pty.openpty()
    env = clean_env({"COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"})
    process = subprocess.Popen([CLI, *args], cwd=cwd, env=env, stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return process.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_plain_lines_show_the_failed_stage_and_the_blocked_ones(failing_suite: Path) -> None:
    result = tria_deploy("verify", cwd=failing_suite, timeout=120)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "stage preflight: 1/1 done (1 passed) in " in out
    assert "stage database: 2/2 done (1 passed, 1 failed) in " in out
    assert "stage redis: 1/1 done (1 passed) in " in out  # redis does not need the database
    assert "stage components: 1/1 done (1 blocked) in " in out
    assert "stage smoke: 1/1 done (1 blocked) in " in out
    assert "VERDICT: FAIL" in out
    assert "test_db_schema" in out.split("stage smoke:")[1]  # pytest's failure report follows


def test_under_xdist_each_stage_is_counted_without_a_total(failing_suite: Path) -> None:
    result = tria_deploy("verify", "-n", "2", cwd=failing_suite, timeout=120)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "stage database: 2 done (1 passed, 1 failed) in " in out  # the controller collects
    assert "stage components: 1 done (1 blocked) in " in out  # nothing: no per-stage totals
    assert out.index("stage preflight:") < out.index("stage smoke:")


def test_with_several_targets_each_line_names_its_target(failing_suite: Path) -> None:
    (failing_suite / "tria.toml").write_text('[targets.second]\nprovider = "local"\n')
    result = tria_deploy("verify", "--target", "local", "--target", "second", cwd=failing_suite)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    for target in ("local", "second"):
        assert f"stage database ({target}): 2/2 done (1 passed, 1 failed) in " in out
        assert f"stage smoke ({target}): 1/1 done (1 blocked) in " in out


def test_on_a_terminal_the_progress_is_live_and_gives_way_to_the_summary(
    failing_suite: Path,
) -> None:
    code, shown = _in_a_terminal(["verify"], failing_suite)
    assert code == 1, shown
    assert "\x1b[" in shown  # drawn, not printed line by line
    assert "all stages" in shown
    assert "1 failed" in shown
    assert "stage database: 2/2 done" not in shown  # no plain lines besides the live display
    assert shown.rindex("VERDICT: FAIL") > shown.rindex("all stages")  # the summary comes last
