"""LocalStack starts everything at once, hands back real endpoints, leaves no process behind."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
import redis

from pytest_tria_deploy.provision.managed import wait_gone
from pytest_tria_deploy.provision.processes import ComponentStartError
from pytest_tria_deploy.provision.stack import LocalStack, StackStartError, endpoints_env
from tests.provision.conftest import pids_once_spawned, slow_redis
from tests.reliability.secrets_canaries import assert_no_secret


def _live_children() -> set[int]:
    """Pids of this process's descendants that still run (zombies excluded)."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


async def test_the_stack_serves_a_ready_service_and_stops_everything(tmp_path: Path) -> None:
    before = _live_children()
    with LocalStack(tmp_path) as stack:
        endpoints = stack.start()
        pids = [server.process.pid for server in stack._running()]
        assert len(pids) == 5
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"{endpoints.service_urls[0]}/api/v1/health/readiness")
        assert ready.status_code == 200
        conn = await asyncpg.connect(endpoints.database_url.get_secret_value())
        assert await conn.fetchval("SELECT current_user") == "tria"
        await conn.close()
        assert redis.Redis.from_url(endpoints.redis_url.get_secret_value()).ping()
        env = endpoints_env(endpoints)
        assert env["TRIA_SERVICE_URL"] == endpoints.service_urls[0]
        assert env["SECRET_KEY"] == stack.secret_key
        assert_no_secret(
            {"repr(endpoints)": repr(endpoints), "repr(stack)": repr(stack)},
            {f"endpoints secret {n}": secret for n, secret in enumerate(endpoints.secrets())},
        )
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert _live_children() <= before


def test_one_failed_dependency_stops_the_others(tmp_path: Path, isolated_state: Path) -> None:
    before = _live_children()
    stack = LocalStack(tmp_path, pg_bindir=tmp_path / "missing")
    with pytest.raises(ComponentStartError) as caught:
        stack.start()
    assert caught.value.component == "postgres"
    assert "binary not found" in caught.value.cause
    assert _live_children() <= before
    assert not list((isolated_state / "pids").glob("*.json"))


def test_a_dependency_failing_late_stops_those_that_started(
    tmp_path: Path, isolated_state: Path
) -> None:
    """Redis dies after a second, while (or after) the other three come up: they are stopped."""
    late_failure = tmp_path / "failing-redis-server"
    late_failure.write_text('#!/bin/sh\nsleep 1\necho "FATAL: out of memory"\nexit 1\n')
    late_failure.chmod(0o755)
    before = _live_children()
    stack = LocalStack(tmp_path, redis_server=late_failure)
    with pytest.raises(ComponentStartError) as caught:
        stack.start()
    assert str(caught.value).startswith("redis failed to start: exited with code 1\n")
    assert caught.value.log_tail == ["FATAL: out of memory"]
    for log in ("postgres-*.log", "chroma-*.log", "openai-standin-*.log"):
        assert list(tmp_path.glob(log)), f"{log}: the others were started"
    assert stack._running() == []
    assert _live_children() <= before
    assert not list((isolated_state / "pids").glob("*.json"))


def test_a_service_that_cannot_start_stops_the_dependencies(
    tmp_path: Path, isolated_state: Path
) -> None:
    before = _live_children()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = LocalStack(tmp_path, service_port=taken.getsockname()[1])
        with pytest.raises(ComponentStartError, match=r"^service failed to start: port \d+ "):
            stack.start()
    assert list(tmp_path.glob("postgres-*.log")), "the dependencies had started"
    assert _live_children() <= before
    assert not list((isolated_state / "pids").glob("*.json"))


def test_every_failed_dependency_is_listed(tmp_path: Path, isolated_state: Path) -> None:
    stack = LocalStack(
        tmp_path, pg_bindir=tmp_path / "no-pg", redis_server=tmp_path / "no-redis-server"
    )
    with pytest.raises(StackStartError) as caught:
        stack.start_dependencies()
    assert [error.component for error in caught.value.errors] == ["postgres", "redis"]
    assert "postgres: binary not found" in caught.value.cause
    assert "redis: binary not found" in caught.value.cause
    assert not list((isolated_state / "pids").glob("*.json"))


_START = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pytest_tria_deploy.provision.stack import LocalStack
    with LocalStack(Path(sys.argv[1]), redis_server=Path(sys.argv[2])) as stack:
        stack.start_dependencies()
        print("started", flush=True)
    """
)


def test_ctrl_c_during_start_leaves_nothing_running(tmp_path: Path, isolated_state: Path) -> None:
    """SIGINT arrives once all four are spawned, while Redis (delayed 30 s) is still starting."""
    run = subprocess.Popen(
        [sys.executable, "-c", _START, str(tmp_path), str(slow_redis(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_dir = isolated_state / "pids"
    seen = pids_once_spawned(pid_dir, 4, run)
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    assert stdout == ""  # interrupted before the start finished
    assert "KeyboardInterrupt" in stderr
    assert all(wait_gone(pid, 5.0) for pid in seen)
    assert not list(pid_dir.glob("*.json"))


_START_SERVICE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import httpx
    from pytest_tria_deploy.provision.stack import DependencyEndpoints, LocalStack

    class StuckStandin(LocalStack):
        def start_dependencies(self) -> DependencyEndpoints:
            deps = super().start_dependencies()
            fault = f"{self.servers.openai.url}/_admin/fault"
            httpx.post(fault, json={"mode": "hang"}).raise_for_status()
            return deps

    with StuckStandin(Path(sys.argv[1])) as stack:
        stack.start()
        print("started", flush=True)
    """
)


def test_ctrl_c_while_the_service_starts_leaves_nothing_running(
    tmp_path: Path, isolated_state: Path
) -> None:
    """SIGINT arrives once the four dependencies are up and the service is spawned, while the
    service's startup check waits on a stand-in that no longer answers /v1/models (5 s)."""
    run = subprocess.Popen(
        [sys.executable, "-c", _START_SERVICE, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_dir = isolated_state / "pids"
    seen = pids_once_spawned(pid_dir, 5, run)  # the four dependencies, then the service
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    assert stdout == ""  # interrupted before the start finished
    assert "KeyboardInterrupt" in stderr
    assert "in start_service" in stderr  # while the service came up, not before
    assert "ComponentStartError" not in stderr  # not the service's own startup timeout
    assert len(seen) == 5
    assert all(wait_gone(pid, 5.0) for pid in seen)
    assert not list(pid_dir.glob("*.json"))
