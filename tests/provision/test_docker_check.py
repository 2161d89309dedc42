"""The Docker check answers quickly and in one line: no engine, a black-holed one, no compose."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_tria_deploy.provision.docker import (
    INSTALL_HINT,
    DockerStatus,
    check_docker,
    docker_problem,
    exception_text,
    one_line,
)

CHECK_TIMEOUT = 1.0
# A check bounded by CHECK_TIMEOUT per request must return well within this.
GENEROUS_BOUND = 15.0
NO_ENGINE = "Error while fetching server API version"


@pytest.fixture
def black_hole_tcp(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        host = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("DOCKER_HOST", host)
        yield host


def _fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """A `docker` CLI on PATH that runs ``script`` (the compose plugin check only calls it)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    docker = bindir / "docker"
    docker.write_text(f"#!/bin/sh\n{script}\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")


def test_no_engine_is_named_with_docker_pys_own_cause(no_engine: str) -> None:
    status = check_docker(timeout=CHECK_TIMEOUT)
    assert status.engine_version is None
    assert status.engine_problem is not None
    assert status.engine_problem.startswith(f"no engine answers at {no_engine}: {NO_ENGINE}")
    assert "No such file or directory" in status.engine_problem
    assert docker_problem("containers", CHECK_TIMEOUT) == (
        f"containers target needs a Docker engine: {status.engine_problem}; "
        "use --tria-target=local, or start Docker"
    )


@pytest.mark.parametrize("hole", ["black_hole_unix", "black_hole_tcp"])
def test_a_black_holed_engine_fails_within_the_timeout(
    hole: str, request: pytest.FixtureRequest
) -> None:
    """The timeout firing is the behaviour here, so the bound is measured (generously)."""
    host = request.getfixturevalue(hole)
    started = time.monotonic()
    problem = docker_problem("containers", CHECK_TIMEOUT)
    elapsed = time.monotonic() - started
    assert elapsed < GENEROUS_BOUND
    assert problem is not None
    assert f"no engine answers at {host}: {NO_ENGINE}" in problem
    assert "timed out" in problem
    assert "\n" not in problem


class _SilentRefusal:
    """Stands in for testcontainers' client constructor failing with an exception that says
    nothing (``str()`` empty), as some socket errors do."""

    def __init__(self, **_: object) -> None:
        raise ConnectionResetError()


def test_an_exception_with_no_message_is_named_by_its_type(
    no_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("testcontainers.core.docker_client.DockerClient", _SilentRefusal)
    status = check_docker(timeout=CHECK_TIMEOUT)
    assert status.engine_problem == f"no engine answers at {no_engine}: ConnectionResetError"
    assert exception_text(ConnectionResetError()) == "ConnectionResetError"
    assert exception_text(ConnectionResetError("reset by peer")) == "reset by peer"


def test_compose_without_the_cli(
    no_engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    status = check_docker(compose=True, timeout=CHECK_TIMEOUT)
    no_cli = "the docker CLI is not on PATH (docker compose runs through it)"
    assert status.compose_problem == no_cli
    problem = status.problem_for("compose")
    assert problem is not None
    assert problem.startswith(
        f"compose target needs a Docker engine with the compose plugin: no engine answers at "
        f"{no_engine}: {NO_ENGINE}"
    )
    assert problem.endswith(f", and {no_cli}; use --tria-target=local, or start Docker")


def test_compose_without_the_plugin(
    no_engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_docker(tmp_path, monkeypatch, 'echo "docker: unknown command: docker $1" >&2\nexit 1')
    status = check_docker(compose=True, timeout=CHECK_TIMEOUT)
    assert status.compose_problem == (
        "the docker CLI has no compose plugin (docker: unknown command: docker compose)"
    )


def test_a_hanging_cli_is_bounded(
    no_engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_docker(tmp_path, monkeypatch, "exec sleep 60")
    started = time.monotonic()
    status = check_docker(compose=True, timeout=CHECK_TIMEOUT)
    assert time.monotonic() - started < GENEROUS_BOUND
    assert status.compose_problem == "'docker compose version' did not answer within 1s"


def test_a_working_plugin_reports_its_version(
    no_engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_docker(tmp_path, monkeypatch, 'echo "Docker Compose version v2.29.7"')
    status = check_docker(compose=True, timeout=CHECK_TIMEOUT)
    assert status.compose_problem is None
    assert status.compose_version == "v2.29.7"


def test_missing_packages_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers.core.docker_client", None)
    monkeypatch.setitem(sys.modules, "pytest_docker", None)
    status = check_docker(compose=True, timeout=CHECK_TIMEOUT)
    assert status.engine_problem == f"testcontainers is not installed ({INSTALL_HINT})"
    assert status.compose_problem == f"pytest-docker is not installed ({INSTALL_HINT})"
    assert INSTALL_HINT == "pip install 'tria-deploy[containers]'"


def test_a_usable_engine_is_no_problem() -> None:
    assert DockerStatus(engine_version="27.3.1").problem_for("containers") is None
    both = DockerStatus(engine_version="27.3.1", compose_version="v2.29.7")
    assert both.problem_for("compose") is None
    assert DockerStatus(engine_version="27.3.1", compose_problem="x").problem_for("compose")


def test_causes_are_redacted_single_lines() -> None:
    status = DockerStatus(engine_problem="x")
    assert status.problem_for("containers") == (
        "containers target needs a Docker engine: x; use --tria-target=local, or start Docker"
    )
    cause = one_line("cannot reach tcp://admin:hunter2-secret@10.0.0.5:2376\nsecond line")
    assert cause == "cannot reach tcp://admin:***@10.0.0.5:2376 second line"
    assert len(one_line("y" * 1000)) == 300
