"""What every throwaway server shares: spawn, wait until it answers (bounded backoff), stop."""

from __future__ import annotations

import re
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Self, TypeVar

from pytest_tria_deploy.provision.errors import ComponentStartError
from pytest_tria_deploy.provision.managed import Launch, ManagedProcess, claim_port, spawn
from pytest_tria_deploy.provision.readiness import LOCAL, PROBE_TIMEOUT, Check, wait_until_ready

HOST = "127.0.0.1"
SpawnHook = Callable[[ManagedProcess], None]
"""Called with each process right after spawning (LocalStack uses it to tear down on Ctrl-C)."""
BIND_ATTEMPTS = 3
# How each server's log says its port was taken (each found by taking the port first).
_PORT_TAKEN = re.compile(
    r"address already in use"  # uvicorn, Redis, PostgreSQL (errno's words)
    r"|could not bind"  # PostgreSQL
    r"|could not create any TCP/IP sockets"  # PostgreSQL
    r"|address \S+ is not available",  # Chroma's CLI
    re.IGNORECASE,
)
T = TypeVar("T")


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def wait_ready(process: ManagedProcess, probe: Callable[[float], object], timeout: float) -> None:
    """Poll ``probe`` (readiness.wait_until_ready, fast backoff) until it stops raising; fail at
    once if the server dies. On failure the process is stopped and ComponentStartError carries
    the redacted log tail."""

    def failure(component: str, cause: str) -> ComponentStartError:
        secrets, log = process.launch.secrets, str(process.log_path)
        return ComponentStartError(component, cause, process.tail(), secrets=secrets, log_path=log)

    def exited() -> tuple[str, str] | None:
        code = process.returncode
        return None if code is None else (process.name, describe_exit(code))

    try:
        wait_until_ready([Check(process.name, probe)], timeout, failure, exited, backoff=LOCAL)
    except BaseException:
        process.stop(timeout=5.0)
        raise


def port_taken(error: ComponentStartError) -> bool:
    """Whether a failed start failed because its port was taken (its cause or its log says so)."""
    return any(_PORT_TAKEN.search(line) for line in (error.cause, *error.log_tail))


def start_on_port(component: str, port: int | None, start: Callable[[int], T]) -> T:
    """``start(port)`` on ``port``, or on a free port when it is None.

    A port we chose can be taken by another process before the server binds it (parallel test
    workers pick from the same range): then it starts again on another one, a bounded number of
    times. A port the caller asked for is never swapped for another.
    """
    attempt = 1
    while True:
        try:
            return start(claim_port(component, port))
        except ComponentStartError as exc:
            if port is not None or attempt >= BIND_ATTEMPTS or not port_taken(exc):
                raise
            attempt += 1


class Server(ABC):
    """A running server: ``.process``, ``.stop()``; ``kill()``/``restart()`` for failure tests."""

    def __init__(
        self, launch: Launch, *, port: int, timeout: float, on_spawn: SpawnHook | None = None
    ) -> None:
        self.host = HOST
        self.port = port
        self._launch = launch
        self._timeout = timeout
        self._on_spawn = on_spawn
        self.process = self._spawn()

    def _spawn(self) -> ManagedProcess:
        process = spawn(self._launch)
        if self._on_spawn is not None:
            try:
                self._on_spawn(process)
            except BaseException:
                process.stop(timeout=5.0)
                raise
        return process

    @abstractmethod
    def probe(self, timeout: float = PROBE_TIMEOUT) -> None:
        """Raise while the server does not answer within ``timeout`` seconds; subclasses talk
        their real protocol."""

    @abstractmethod
    def version(self) -> str:
        """What the running server says it is, e.g. ``Redis 7.0.15``, asked over its protocol
        (so a system binary reports its own version); may raise when it does not answer."""

    def wait_ready(self, timeout: float | None = None) -> None:
        wait_ready(self.process, self.probe, self._timeout if timeout is None else timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop for good: the process group is gone and its throwaway files removed."""
        self.process.stop(timeout)

    def kill(self) -> None:
        """Simulate a crash (SIGKILL); ``restart()`` brings it back on the same port.

        Servers run without fsync, so the last writes before a crash may be lost on restart.
        """
        self.process.kill()

    def restart(self, timeout: float | None = None) -> None:
        """Start again with the same port, credentials and data, and wait until it answers."""
        self.process.stop(keep_files=True)
        self.process = self._spawn()
        self.wait_ready(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HttpServer(Server):
    """A server that answers HTTP at ``url``, ``http://127.0.0.1:<port>``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, pid={self.process.pid})"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"
