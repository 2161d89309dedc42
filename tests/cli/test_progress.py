"""The per-stage progress of ``tria-deploy verify``: plain lines in a log, a live display on a
terminal, with a stage that fails and the stages it blocks. The suite is a small staged one (no
stack is started), run through the real console script."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

from tests.cli.conftest import CLI, clean_env, tria_deploy

HEADER = "tria-deploy: target local (provider local"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _screen_lines(shown: str) -> list[str]:
    """What a terminal showed, line by line, without colours and cursor moves."""
    return [line for line in re.split(r"[\r\n]+", ANSI.sub("", shown)) if line.strip()]


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
    rows = _screen_lines(shown)
    # The display's own rows: the run's (9 tests, 1 failed) and the database stage's.
    assert [row for row in rows if re.search(r"all stages.*\b9/9\b.*\b1 failed\b", row)]
    assert [row for row in rows if re.search(r"database.*\b2/2\b.*1 passed, 1 failed", row)]
    assert "stage database: 2/2 done" not in shown  # no plain lines besides the live display
    assert not [row for row in rows if re.fullmatch(r"suites/\S+\.py\s*", row)]  # nor file names
    assert shown.count(HEADER) == 1
    assert shown.rindex("VERDICT: FAIL") > shown.rindex("all stages")  # the summary comes last


def test_with_v_pytest_shows_a_line_per_test_and_its_header_once(failing_suite: Path) -> None:
    result = tria_deploy("verify", "--", "-v", cwd=failing_suite, timeout=120)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert out.count(HEADER) == 1  # pytest's header, not the plugin's copy of it as well
    assert "suites/test_03_database.py::test_db_schema FAILED" in out
    assert "suites/test_01_preflight.py::test_runner_ready PASSED" in out
    assert "stage database: 2/2 done (1 passed, 1 failed) in " in out  # the stage lines stay
    assert out.index("::test_db_schema FAILED") < out.index("stage database:")


def test_with_v_on_a_terminal_there_is_no_live_display(failing_suite: Path) -> None:
    code, shown = _in_a_terminal(["verify", "--", "-v"], failing_suite)
    assert code == 1, shown
    assert "all stages" not in shown  # pytest's lines would tear the display
    assert "suites/test_03_database.py::test_db_schema FAILED" in ANSI.sub("", shown)
    assert "stage database: 2/2 done (1 passed, 1 failed) in " in ANSI.sub("", shown)
