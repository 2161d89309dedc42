"""One stack per run across processes: the first starts it, others attach, the owner leaves last.

Each worker is a real process (tests/provision/shared_worker.py) whose stack is one real Redis.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import redis
from filelock import FileLock

from pytest_tria_deploy.provision.errors import (
    ComponentStartError,
    StartFailedElsewhere,
    failure_cause,
)
from pytest_tria_deploy.provision.managed import wait_gone
from pytest_tria_deploy.provision.shared import (
    SharedProvider,
    UsersStillAttachedWarning,
    state_paths,
)
from tests.provision.shared_worker import TARGET, RedisProvider

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_dir(tmp_path: Path, isolated_state: Path) -> Path:
    """The directory a run's workers share (the parent of their basetemps under xdist)."""
    path = tmp_path / "run"
    path.mkdir()
    return path


class Worker:
    def __init__(self, run_dir: Path, workdir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.provision.shared_worker", str(run_dir), str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.pid = self.process.pid

    def started(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, self.process.communicate(timeout=30)[1]
        got: dict[str, Any] = json.loads(line)
        return got

    def leave(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def finish(self) -> str:
        stdout, stderr = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, stderr
        return stdout

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=30)


@pytest.fixture
def workers(run_dir: Path, tmp_path: Path) -> Any:
    started: list[Worker] = []

    def spawn() -> Worker:
        worker = Worker(run_dir, tmp_path / f"worker-{len(started)}")
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def _redis_pids(isolated_state: Path) -> set[int]:
    return {int(p.stem.split("-")[1]) for p in (isolated_state / "pids").glob("redis-*.json")}


def _state(run_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(state_paths(run_dir, "local")[0].read_text())
    return state


def _users(run_dir: Path) -> list[int]:
    return [user["owner_pid"] for user in _state(run_dir)["users"]]


def _wait_until_not_a_user(run_dir: Path, pid: int) -> None:
    deadline = time.monotonic() + 30
    while pid in _users(run_dir):
        assert time.monotonic() < deadline, f"{pid} never left the users list"
        time.sleep(0.02)


def test_the_first_starts_others_attach_and_the_owner_leaves_last(
    run_dir: Path, isolated_state: Path, workers: Any
) -> None:
    owner = workers()
    first = owner.started()
    user = workers()  # once the owner is up, so the roles are known
    second = user.started()

    assert second == first  # same Redis (same password), same facts for the report
    pids = _redis_pids(isolated_state)
    assert len(pids) == 1, "a second stack was started"
    assert first["facts"]["redis"] == f"pid {next(iter(pids))}"
    state_file = state_paths(run_dir, "local")[0]
    assert state_file.stat().st_mode & 0o777 == 0o600  # it holds the stack's secrets
    assert _state(run_dir)["owner"]["owner_pid"] == owner.pid
    assert _users(run_dir) == [owner.pid, user.pid]

    owner.leave()
    _wait_until_not_a_user(run_dir, owner.pid)
    assert owner.process.poll() is None  # the owner waits for the user ...
    assert redis.Redis.from_url(first["redis_url"]).ping()  # ... and the stack stays up

    user.leave()
    assert user.finish() == "stopped\n"
    assert owner.finish() == "stopped\n"
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not state_file.exists()
    assert not _redis_pids(isolated_state)


def test_workers_arriving_together_start_one_stack(
    run_dir: Path, isolated_state: Path, workers: Any
) -> None:
    crowd = [workers() for _ in range(3)]
    got = [worker.started() for worker in crowd]
    assert len({entry["redis_url"] for entry in got}) == 1
    pids = _redis_pids(isolated_state)
    assert len(pids) == 1
    assert _state(run_dir)["owner"]["owner_pid"] in {worker.pid for worker in crowd}
    assert sorted(_users(run_dir)) == sorted(worker.pid for worker in crowd)
    for worker in crowd:
        worker.leave()
    assert all(worker.finish() == "stopped\n" for worker in crowd)
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not state_paths(run_dir, "local")[0].exists()


def test_a_user_that_dies_does_not_hold_the_stack_up(
    run_dir: Path, isolated_state: Path, workers: Any
) -> None:
    owner = workers()
    owner.started()
    user = workers()
    user.started()
    pids = _redis_pids(isolated_state)
    user.kill()
    owner.leave()
    assert owner.finish() == "stopped\n"
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not state_paths(run_dir, "local")[0].exists()


def test_a_hung_user_does_not_hold_the_owner_past_its_deadline(
    run_dir: Path, tmp_path: Path, isolated_state: Path, workers: Any
) -> None:
    """A worker alive but never leaving (it waits on stdin forever): the owner stops the stack
    after its deadline and says which pid it gave up on. The deadline firing is the behaviour,
    so the bound is measured, generously."""
    owner = SharedProvider(RedisProvider(tmp_path / "owner"), run_dir, "local", users_timeout=0.5)
    owner.start(TARGET)
    hung = workers()
    hung.started()
    assert _users(run_dir) == [os.getpid(), hung.pid]
    pids = _redis_pids(isolated_state)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stopping = threading.Thread(target=owner.stop, daemon=True)
        stopping.start()
        stopping.join(timeout=30)
    assert not stopping.is_alive(), "the owner is still waiting for the hung worker"

    (warning,) = [w for w in caught if issubclass(w.category, UsersStillAttachedWarning)]
    message = str(warning.message)
    assert f"workers still attached (pid {hung.pid})" in message
    assert "after waiting 0.5s" in message
    assert hung.process.poll() is None  # the worker was not touched, only given up on
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not state_paths(run_dir, "local")[0].exists()  # a late worker starts anew


def test_a_crashed_owner_is_reaped_and_replaced(
    run_dir: Path, isolated_state: Path, workers: Any
) -> None:
    crashed = workers()
    old = crashed.started()
    old_pids = _redis_pids(isolated_state)
    crashed.kill()  # SIGKILL: no teardown, its Redis and the state file stay behind
    assert not any(wait_gone(pid, 0) for pid in old_pids)

    successor = workers()
    new = successor.started()

    assert all(wait_gone(pid, 5.0) for pid in old_pids)
    assert new["redis_url"] != old["redis_url"]
    assert _state(run_dir)["owner"]["owner_pid"] == successor.pid
    new_pids = _redis_pids(isolated_state)
    assert len(new_pids) == 1
    assert not new_pids & old_pids
    successor.leave()
    assert successor.finish() == "stopped\n"
    assert all(wait_gone(pid, 5.0) for pid in new_pids)


def test_a_torn_state_file_is_replaced(run_dir: Path, tmp_path: Path, isolated_state: Path) -> None:
    state_file = state_paths(run_dir, "local")[0]
    state_file.write_text("{not json")  # a torn write of an earlier worker: ignored, replaced
    working = SharedProvider(RedisProvider(tmp_path), run_dir, "local")
    endpoints = working.start(TARGET)
    try:
        assert redis.Redis.from_url(endpoints.redis_url.get_secret_value()).ping()
        assert _state(run_dir)["endpoints"]["redis_url"] == endpoints.redis_url.get_secret_value()
    finally:
        working.stop()
    assert not state_file.exists()
    assert not _redis_pids(isolated_state)


def test_a_failed_start_is_not_tried_again_by_the_next_worker(
    run_dir: Path, tmp_path: Path, isolated_state: Path
) -> None:
    """The owner's failure is recorded: a worker arriving later (they queue on the lock) raises
    the same cause at once instead of starting, and failing, all over again."""
    attempts = tmp_path / "attempts"
    broken = tmp_path / "redis-server"
    broken.write_text(f'#!/bin/sh\necho started >> "{attempts}"\necho "fatal: no luck"\nexit 3\n')
    broken.chmod(0o755)
    state_file, lock_file = state_paths(run_dir, "local")

    first = SharedProvider(RedisProvider(tmp_path / "first", server=broken), run_dir, "local")
    with pytest.raises(ComponentStartError) as failed:
        first.start(TARGET)
    first.stop()  # what the fixture does after a failed start: nothing to stop
    with FileLock(lock_file, timeout=0):  # raises Timeout if the lock were still held
        pass
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    second = SharedProvider(RedisProvider(tmp_path / "second", server=broken), run_dir, "local")
    with pytest.raises(StartFailedElsewhere) as refused:
        second.start(TARGET)
    second.stop()

    assert str(refused.value) == str(failed.value)
    assert str(refused.value).startswith("redis failed to start: exited with code 3")
    assert "fatal: no luck" in str(refused.value)  # the log tail travels with it
    assert failure_cause(refused.value) == failure_cause(failed.value)
    assert attempts.read_text() == "started\n"  # one attempt in all
    assert not _redis_pids(isolated_state)
