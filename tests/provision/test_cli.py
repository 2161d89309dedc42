"""``tria-deploy up`` runs a real stack and prints its env; ``down`` stops it from another shell."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from pytest_tria_deploy.provision.aio import run_async
from pytest_tria_deploy.provision.managed import wait_gone
from tests.provision.conftest import pids_once_spawned, slow_redis
from tests.provision.crash import crash_after

CLI = str(Path(sys.executable).parent / "tria-deploy")


def _parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"up never wrote {path} (exit code {process.poll()})"


async def _select_one(url: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def _up(*args: str) -> subprocess.Popen[str]:
    """``tria-deploy up`` running in the background, its output captured."""
    return subprocess.Popen(
        [CLI, "up", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _tria_deploy(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_up_prints_a_working_env_and_down_stops_it(tmp_path: Path, isolated_state: Path) -> None:
    env_file = tmp_path / "stack.env"
    up = _up("--env-file", str(env_file))
    try:
        _wait_for_file(env_file, up, timeout=90)
        env = _parse_env(env_file.read_text())
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        ready = httpx.get(f"{env['TRIA_SERVICE_URL']}/api/v1/health/readiness")
        assert ready.status_code == 200
        assert run_async(lambda: _select_one(env["DATABASE_URL"])) == 1
        assert set(env) >= {
            "DATABASE_URL",
            "REDIS_URL",
            "OPENAI_BASE_URL",
            "OPENAI_API_KEY",
            "CHROMA_URL",
            "TRIA_SERVICE_URL",
            "TRIA_DIAGNOSTICS_TOKEN",
            "SECRET_KEY",
        }
        state = json.loads((isolated_state / "stack.json").read_text())
        assert state["owner_pid"] == up.pid
        pids = [int(p.stem.rsplit("-", 1)[1]) for p in (isolated_state / "pids").glob("*.json")]
        assert len(pids) == 5

        down = _tria_deploy("down")

        assert down.returncode == 0, down.stderr
        assert f"stopping the stack of tria-deploy up (pid {up.pid})" in down.stderr
        assert up.wait(30) == 0
        assert all(wait_gone(pid, 5.0) for pid in pids)
        assert not env_file.exists()
        assert not (isolated_state / "stack.json").exists()
        stdout, _ = up.communicate()
        assert _parse_env(stdout) == env
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_up_holds_until_ctrl_c_then_stops_everything(
    tmp_path: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the summary table unwrapped, as on a wide terminal
    env_file = tmp_path / "stack.env"
    up = _up("--env-file", str(env_file))
    try:
        _wait_for_file(env_file, up, timeout=90)
        pids = [int(p.stem.rsplit("-", 1)[1]) for p in (isolated_state / "pids").glob("*.json")]
        assert len(pids) == 5
        assert up.poll() is None  # holding the stack up
        up.send_signal(signal.SIGINT)
        stdout, stderr = up.communicate(timeout=60)
        assert up.returncode == 0, stderr
        assert "stopped: every process of the stack is gone" in stderr
        assert all(wait_gone(pid, 5.0) for pid in pids)
        assert not env_file.exists()
        assert not (isolated_state / "stack.json").exists()
        assert not list((isolated_state / "pids").glob("*.json"))
        for part in ("PostgreSQL 18.", "Redis 6.", "Chroma ", "tria-service ", "OpenAI stand-in"):
            assert part in stderr  # the version each component reports
        assert set(_parse_env(stdout)) >= {"DATABASE_URL", "TRIA_SERVICE_URL", "SECRET_KEY"}
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_ctrl_c_while_up_starts_leaves_nothing_running(
    tmp_path: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIA_REDIS_SERVER", str(slow_redis(tmp_path)))
    up = _up("--workdir", str(tmp_path / "work"))
    try:
        pids = pids_once_spawned(isolated_state / "pids", 4, up)
        up.send_signal(signal.SIGINT)
        stdout, stderr = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert stdout == ""  # no env printed: the stack never came up
    assert up.returncode == 130  # interrupted, as a shell reports Ctrl-C
    assert "stopped: every process of the stack is gone" in stderr
    assert "Traceback" not in stderr
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not list((isolated_state / "pids").glob("*.json"))
    assert not (isolated_state / "stack.json").exists()


def test_down_without_a_stack_says_so(isolated_state: Path) -> None:
    down = _tria_deploy("down")
    assert down.returncode == 0
    assert "no stack recorded by tria-deploy up" in down.stderr


def test_down_stops_servers_left_by_a_crashed_run(tmp_path: Path, isolated_state: Path) -> None:
    printed = crash_after("print(start_redis(workdir).process.pid, flush=True)\n", tmp_path)
    pid = int(printed)
    assert not wait_gone(pid, 0)
    down = _tria_deploy("down")
    assert down.returncode == 0
    assert f"stopped leftover servers: redis[{pid}]" in down.stderr
    assert wait_gone(pid, 5.0)


def test_down_removes_the_env_file_of_a_dead_up(tmp_path: Path, isolated_state: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    env_file = tmp_path / "left.env"
    env_file.write_text("DATABASE_URL=postgresql://tria:old-secret@127.0.0.1:1/tria\n")
    record = {"owner_pid": dead.pid, "owner_create_time": 0.0, "env_file": str(env_file)}
    (isolated_state / "stack.json").write_text(json.dumps(record))
    down = _tria_deploy("down")
    assert down.returncode == 0
    assert not env_file.exists()
    assert not (isolated_state / "stack.json").exists()


def test_up_refuses_while_another_up_runs(isolated_state: Path) -> None:
    me = psutil.Process()
    record = {"owner_pid": me.pid, "owner_create_time": me.create_time()}
    (isolated_state / "stack.json").write_text(json.dumps(record))
    up = _tria_deploy("up")
    assert up.returncode == 1
    assert f"A stack is already running (pid {me.pid})" in up.stderr
    assert not list((isolated_state / "pids").glob("*.json"))


def test_up_failure_names_the_component_without_a_traceback(
    tmp_path: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIA_PG_BINDIR", str(tmp_path / "no-postgres"))
    up = _tria_deploy("up", "--workdir", str(tmp_path / "work"))
    assert up.returncode == 1
    assert "postgres failed to start: binary not found" in up.stderr
    assert "(from TRIA_PG_BINDIR); set TRIA_PG_BINDIR to a directory" in " ".join(up.stderr.split())
    assert "Traceback" not in up.stderr
    assert up.stdout == ""
    assert not (isolated_state / "stack.json").exists()
    assert not list((isolated_state / "pids").glob("*.json"))


def test_help_warns_that_up_prints_secrets() -> None:
    shown = _tria_deploy("up", "--help", timeout=30)
    assert shown.returncode == 0
    text = " ".join(shown.stdout.replace("│", " ").split())
    assert "passwords and tokens" in text
    assert "TRIA_PG_BINDIR (a directory holding initdb and postgres) and TRIA_REDIS_SERVER" in text
    assert "it is removed when the stack stops" in text  # as `up` does with --env-file


def test_help_paragraphs_are_not_broken_mid_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer keeps a docstring's single line breaks: on a wide terminal a sentence is one line."""
    monkeypatch.setenv("COLUMNS", "300")
    shown = _tria_deploy("serve", "--help", timeout=30)
    assert shown.returncode == 0
    assert "TRIA_PORT say where it listens, and a bad configuration or" in shown.stdout


def test_serve_runs_the_service_until_sigterm(service_env: dict[str, str], tmp_path: Path) -> None:
    from pytest_tria_deploy.provision.processes import free_port

    port = free_port()
    env = {**service_env, "TRIA_PORT": str(port), "TRIA_SHUTDOWN_DRAIN_DELAY": "0"}
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:  # a file, not a pipe nobody reads that would block the service
        served = subprocess.Popen([CLI, "serve"], env=env, stderr=sink, stdout=sink)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and served.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/v1/health/readiness").status_code
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            break
        assert status == 200, log.read_text()
        served.terminate()
        assert served.wait(timeout=30) in (0, -15)
    finally:
        if served.poll() is None:
            served.kill()
            served.wait()


def test_serve_with_bad_config_lists_the_problems(tmp_path: Path) -> None:
    served = subprocess.run(
        [CLI, "serve"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://db/app"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert served.returncode == 2
    assert "  - DATABASE_URL: scheme must be postgresql://" in served.stderr
    assert "  - SECRET_KEY: is not set" in served.stderr
    assert "Traceback" not in served.stderr
