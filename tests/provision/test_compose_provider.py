"""The compose provider: its generated env files, project names, the refusal without Docker, and a
real compose stack where Docker and the compose plugin exist."""

from __future__ import annotations

import shlex
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from pytest_docker.plugin import DockerComposeExecutor

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.compose import (
    PROFILE,
    ComposeProvider,
    compose_command,
    interpolation_env,
    project_is_orphan,
    project_name,
    up_failure,
    write_env_file,
)
from pytest_tria_deploy.provision.container_specs import StackSecrets
from pytest_tria_deploy.provision.docker import DockerUnavailableError, docker_problem
from pytest_tria_deploy.targets import BUILTIN_TARGETS
from tests.deploy.manifests import read_env_file

COMPOSE = BUILTIN_TARGETS["compose"]


def test_compose_is_a_built_in_target() -> None:
    assert COMPOSE.provider == "compose"
    assert list(BUILTIN_TARGETS) == ["local", "containers", "compose"]


def test_start_without_docker_is_the_one_line_refusal(no_engine: str) -> None:
    provider = ComposeProvider()
    with pytest.raises(DockerUnavailableError) as refused:
        provider.start(COMPOSE)
    message = str(refused.value)
    assert message == docker_problem("compose")
    assert message.startswith("compose target needs a Docker engine with the compose plugin: ")
    assert message.endswith("; use --tria-target=local, or start Docker")
    provider.stop()


def test_the_env_file_holds_the_stack_s_variables_for_this_user_only(tmp_path: Path) -> None:
    stack = StackSecrets.generate()
    env_file = write_env_file(tmp_path, interpolation_env(stack))
    assert env_file == tmp_path / ".env.docker"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = read_env_file(env_file)
    assert values["TRIA_SERVICE_PORT"] == ""  # every port free
    assert values["POSTGRES_PASSWORD"] == stack.postgres_password
    assert urlsplit(values["DATABASE_URL"]).password == stack.postgres_password
    assert values["REDIS_PASSWORD"] == stack.redis_password
    assert values["OPENAI_BASE_URL"] == "http://openai-standin:8080/v1"
    assert values["SECRET_KEY"] == stack.secret_key
    assert values["TRIA_DIAGNOSTICS_TOKEN"] == stack.diagnostics_token


def test_the_compose_command_quotes_the_env_file_and_enables_the_standin() -> None:
    command = compose_command(Path("/tmp/a dir/.env.docker"), ["SECRET_KEY", "DATABASE_URL"])
    assert shlex.split(command) == [
        "env",
        "-u",
        "DATABASE_URL",
        "-u",
        "SECRET_KEY",
        "docker",
        "compose",
        "--env-file",
        "/tmp/a dir/.env.docker",
        "--profile",
        PROFILE,
    ]


def test_the_shell_cannot_override_what_the_env_file_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compose takes a variable from its own environment before the env file's: the command
    unsets those the file sets, so only the generated values reach the stack. The command runs
    through pytest-docker's executor, as the provider's does; a `docker` on PATH that prints the
    environment it was given stands in for compose."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text("#!/bin/sh\nenv\n")
    (bindir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("DATABASE_URL", "postgresql://me:mine@db.example/prod")
    monkeypatch.setenv("TRIA_SERVICE_PORT", "8000")
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    values = interpolation_env(StackSecrets.generate())
    command = compose_command(write_env_file(tmp_path, values), values)
    seen = DockerComposeExecutor(command, "docker-compose.yml", "tria-env").execute("version")
    names = {line.partition("=")[0] for line in bytes(seen).decode().splitlines()}
    assert not names & set(values)
    assert "UNRELATED_SETTING" in names  # docker's own settings (DOCKER_HOST...) still reach it


def test_project_names_tell_live_runs_from_gone_ones() -> None:
    mine = project_name()
    assert mine.startswith("tria-")
    assert not project_is_orphan(mine)
    gone = subprocess.Popen(["true"])
    name = project_name(gone.pid)
    gone.wait()
    assert project_is_orphan(name)
    assert not project_is_orphan("someone-elses-project")


BUILD_LOG = "\n".join(f"#{n} [service build {n}/40] RUN something long" for n in range(40))


@pytest.mark.parametrize(
    ("last_line", "component"),
    [
        ("dependency failed to start: container tria-77-123-postgres-1 is unhealthy", "postgres"),
        ("container tria-77-123-openai-standin-1 exited (1)", "openai"),
        ("container tria-77-123-service-1 is unhealthy", "service"),
        ("Error response from daemon: driver failed programming external connectivity", "compose"),
    ],
)
def test_a_failed_up_is_named_by_compose_s_last_words(last_line: str, component: str) -> None:
    """pytest-docker's error is the command and the whole output, a build log first: the cause
    is at the end, not in the first few hundred characters."""
    error = (
        "Command docker compose --env-file /tmp/x/compose.env --profile standin -f "
        '"deploy/docker-compose.yml" -p "tria-77-123" up --build --wait returned 1: """'
        f'{BUILD_LOG}\n Container tria-77-123-redis-1  Healthy\n{last_line}\n""".'
    )
    assert up_failure(error, "tria-77-123") == (component, last_line)


# --- end to end: only where Docker and the compose plugin answer ------------------------------


@pytest.fixture(scope="module")
def running() -> Iterator[Endpoints]:
    problem = docker_problem("compose")
    if problem is not None:
        pytest.skip(problem)
    provider = ComposeProvider()
    try:
        yield provider.start(COMPOSE)
    finally:
        provider.stop()


def test_the_compose_stack_is_ready(running: Endpoints) -> None:
    service = running.service_urls[0]
    assert httpx.get(f"{service}/api/v1/health/readiness").status_code == 200
    assert httpx.get(f"{running.chroma_url}/api/v2/heartbeat").status_code == 200
    assert urlsplit(service).hostname == "127.0.0.1"
