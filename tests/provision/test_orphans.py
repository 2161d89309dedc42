"""Servers left by a dead run are reaped, and nothing else: not live runs, not reused pids."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psutil
import redis

from pytest_tria_deploy.provision.managed import wait_gone
from pytest_tria_deploy.provision.processes import reap_orphans, start_redis
from tests.provision.crash import crash_after


def test_servers_of_a_crashed_run_are_reaped(tmp_path: Path, isolated_state: Path) -> None:
    printed = crash_after(
        """
        pg, rd = start_postgres(workdir), start_redis(workdir, password="orphan-pw")
        print(pg.process.pid, rd.process.pid, pg.socket_dir, flush=True)
        """,
        tmp_path,
    )
    pg_pid, redis_pid, pg_dir = printed.split()
    pids = [int(pg_pid), int(redis_pid)]
    assert all(psutil.pid_exists(pid) and not wait_gone(pid, 0) for pid in pids)
    assert len(list((isolated_state / "pids").glob("*.json"))) == 2

    reaped = reap_orphans()

    assert sorted(reaped) == sorted([f"postgres[{pg_pid}]", f"redis[{redis_pid}]"])
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not list((isolated_state / "pids").glob("*.json"))
    assert not Path(pg_dir).exists()
    assert reap_orphans() == []


def test_servers_of_a_live_run_are_left_alone(tmp_path: Path, isolated_state: Path) -> None:
    server = start_redis(tmp_path)
    try:
        assert reap_orphans() == []
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()


def test_a_reused_pid_is_not_killed(tmp_path: Path, isolated_state: Path) -> None:
    """The recorded pid now belongs to another program: its pid file goes, the program stays."""
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    try:
        record = {
            "name": "redis",
            "pid": bystander.pid,
            "create_time": psutil.Process(bystander.pid).create_time(),
            "cmdline_sha256": "0" * 64,  # recorded for a redis-server, not for `sleep`
            "owner_pid": dead_owner.pid,
            "owner_create_time": 0.0,
            "cleanup_paths": [],
        }
        pid_file = isolated_state / "pids" / f"redis-{bystander.pid}.json"
        pid_file.parent.mkdir(exist_ok=True)
        pid_file.write_text(json.dumps(record))

        assert reap_orphans() == []

        assert bystander.poll() is None
        assert not pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_unreadable_pid_files_are_dropped(isolated_state: Path) -> None:
    junk = isolated_state / "pids" / "redis-1.json"
    junk.parent.mkdir(exist_ok=True)
    junk.write_text("{not json")
    assert reap_orphans() == []
    assert not junk.exists()
