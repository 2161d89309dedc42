"""One stack per run under pytest-xdist: the first worker to ask starts it, the others attach.

This is pytest-xdist's recipe for a session fixture that runs once: a file lock and a state file
in the directory every worker of the run shares (the parent of each worker's basetemp). The state
file holds the endpoints (secrets included, so it is mode 0600 inside pytest's private temp dir),
the provider's facts for the report, the owner (the worker that started the stack) and the users
(every worker attached, the owner too). A start that fails is recorded there too, with its
(redacted) cause: the other workers raise that cause at once instead of each trying again and
failing as slowly.

The owner's servers are its children, tied to it by their pid files: were it to exit first, the
reaper would take them for orphans. So the owner is the last one out: at its teardown it leaves
the users list, waits until every other user has left (or died), then stops the stack. It waits
``USERS_TIMEOUT`` at most: a worker still attached after that is taken as hung, and the stack
stops anyway with a warning naming its pid, rather than the run hanging at its end in silence.
A crashed owner leaves a state file naming a dead process: the next worker to ask reaps its
servers and starts afresh.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout
from pydantic import SecretStr, ValidationError

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.base import Provider
from pytest_tria_deploy.provision.errors import StartFailedElsewhere, failure_cause
from pytest_tria_deploy.provision.managed import owner_alive, reap_orphans, this_process
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.targets import Target

LOCK_TIMEOUT = 600.0  # a start holds the lock; the slowest bounded start is far shorter
# How long the owner waits at its end for the other workers to leave. Generous: workers usually
# finish close together, but a target's staged tests all run on one worker (distribute.py),
# which may still be busy long after the owner is done.
USERS_TIMEOUT = 1800.0
POLL_SECONDS = 0.1


class UsersStillAttachedWarning(UserWarning):
    """The owner stopped the shared stack while workers it waited for were still attached."""


def state_paths(directory: Path, key: str) -> tuple[Path, Path]:
    """The state file and the lock file for ``key`` (a target name) in the shared ``directory``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    return directory / f"tria-stack-{safe}.json", directory / f"tria-stack-{safe}.lock"


def _plain(endpoints: Endpoints) -> dict[str, Any]:
    """The endpoints with their secret values, for the private state file only."""
    return {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in endpoints
    }


def _is_me(record: dict[str, Any]) -> bool:
    return record.get("owner_pid") == os.getpid()


class SharedProvider:
    """A provider whose stack the processes of one run share; the same protocol as any other."""

    def __init__(
        self, provider: Provider, directory: Path, key: str, users_timeout: float = USERS_TIMEOUT
    ) -> None:
        self._provider = provider
        self._key = key
        self._users_timeout = users_timeout
        self._state, lock = state_paths(directory, key)
        self._lock = FileLock(lock, timeout=LOCK_TIMEOUT)
        self._role: Literal["owner", "user"] | None = None
        self._facts: dict[str, str] = {}

    def start(self, target: Target) -> Endpoints:
        """Attach to the run's stack if a live worker started one, else start it here."""
        if self._role is not None:
            raise RuntimeError("this SharedProvider is already started; stop() it first")
        try:
            self._lock.acquire()
        except Timeout:
            raise RuntimeError(
                f"another worker held {self._lock.lock_file} for {LOCK_TIMEOUT:g}s while "
                "starting the stack"
            ) from None
        try:
            return self._attach_or_start(target)
        finally:
            self._lock.release()

    def _attach_or_start(self, target: Target) -> Endpoints:
        failed = self._failure()
        if failed is not None:
            raise StartFailedElsewhere(failed)
        state = self._read()
        if state is not None and not owner_alive(state["owner"]):
            reap_orphans()  # the dead owner's servers: their pid files name it
            self._state.unlink(missing_ok=True)
            state = None
        if state is not None:
            try:
                endpoints = Endpoints.model_validate(state["endpoints"])
            except ValidationError:  # its message would echo the secrets: name the file only
                raise RuntimeError(f"{self._state} does not hold valid endpoints") from None
            state["users"].append(this_process())
            self._write(state)
            self._role, self._facts = "user", dict(state["facts"])
            return endpoints
        try:
            endpoints = self._provider.start(target)
        except Exception as exc:
            self._write({"failed": redact(failure_cause(exc))})
            raise
        try:
            me = this_process()
            facts = self._provider.describe()
            self._write(
                {"owner": me, "users": [me], "endpoints": _plain(endpoints), "facts": facts}
            )
        except BaseException:
            self._provider.stop()
            raise
        self._role = "owner"
        return endpoints

    def stop(self) -> None:
        """A user leaves; the owner leaves, waits for the others, then stops the stack."""
        role, self._role = self._role, None
        if role == "user":
            with self._lock:
                self._leave()
            return
        try:
            if role == "owner":
                self._wait_for_users()
        finally:
            self._provider.stop()

    def describe(self) -> dict[str, str]:
        return dict(self._facts) if self._role == "user" else self._provider.describe()

    def _wait_for_users(self) -> None:
        """Until no live worker uses the stack, or for ``users_timeout`` at most (then with a
        warning naming those still attached); the state goes, so a late worker starts anew."""
        with self._lock:
            self._leave()
        deadline = time.monotonic() + self._users_timeout
        while True:
            with self._lock:
                state = self._read()
                users = [] if state is None else [u for u in state["users"] if owner_alive(u)]
                if not users or time.monotonic() >= deadline:
                    self._state.unlink(missing_ok=True)
                    break
                if state is not None and users != state["users"]:
                    self._write({**state, "users": users})  # forget workers that died
            time.sleep(POLL_SECONDS)
        if users:
            pids = ", ".join(str(user.get("owner_pid")) for user in users)
            label = "pid" if len(users) == 1 else "pids"
            warnings.warn(
                UsersStillAttachedWarning(
                    redact(
                        f"tria-deploy: stopping the shared stack of target '{self._key}' "
                        f"after waiting {self._users_timeout:g}s for workers still attached "
                        f"({label} {pids}), taken as hung: their remaining tests lose the stack"
                    )
                ),
                stacklevel=3,
            )

    def _leave(self) -> None:
        state = self._read()
        if state is not None and any(_is_me(u) for u in state["users"]):
            self._write({**state, "users": [u for u in state["users"] if not _is_me(u)]})

    def _load(self) -> object:
        try:
            return json.loads(self._state.read_text())
        except (OSError, ValueError):
            return None

    def _failure(self) -> str | None:
        """The cause of this run's failed start, when a worker recorded one."""
        state = self._load()
        failed = state.get("failed") if isinstance(state, dict) else None
        return failed if isinstance(failed, str) else None

    def _read(self) -> dict[str, Any] | None:
        """The running stack's state, or None when there is none (or it is unreadable: it is
        then replaced)."""
        state = self._load()
        shapes = {"owner": dict, "users": list, "endpoints": dict, "facts": dict}
        if not isinstance(state, dict):
            return None
        if not all(isinstance(state.get(key), shape) for key, shape in shapes.items()):
            return None
        return state if all(isinstance(user, dict) for user in state["users"]) else None

    def _write(self, state: dict[str, Any]) -> None:
        """Atomically, readable by this user only (it holds the stack's secrets)."""
        tmp = self._state.with_name(f".{self._state.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle)
        tmp.replace(self._state)
