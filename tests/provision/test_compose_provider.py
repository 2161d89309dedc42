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

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.compose import (
    PROFILE,
    ComposeProvider,
    compose_command,
    project_is_orphan,
    project_name,
    up_failure,
    write_env_files,
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


def test_the_env_files_split_secrets_from_compose_settings(tmp_path: Path) -> None:
    stack = StackSecrets.generate()
    knobs = write_env_files(tmp_path, stack)
    secrets_file = tmp_path / ".env.docker"
    for path in (knobs, secrets_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = read_env_file(knobs)
    assert settings == {"TRIA_ENV_DOCKER": str(secrets_file), "TRIA_SERVICE_PORT": ""}
    values = read_env_file(secrets_file)
    assert values["POSTGRES_PASSWORD"] == stack.postgres_password
    assert urlsplit(values["DATABASE_URL"]).password == stack.postgres_password
    assert values["REDIS_PASSWORD"] == stack.redis_password
    assert values["OPENAI_BASE_URL"] == "http://openai-standin:8080/v1"
    assert values["SECRET_KEY"] == stack.secret_key
    assert values["TRIA_DIAGNOSTICS_TOKEN"] == stack.diagnostics_token
    assert not any(secret in knobs.read_text() for secret in stack.values())


def test_the_compose_command_quotes_the_env_file_and_enables_the_standin() -> None:
    command = compose_command(Path("/tmp/a dir/compose.env"))
    assert shlex.split(command) == [
        "docker",
        "compose",
        "--env-file",
        "/tmp/a dir/compose.env",
        "--profile",
        PROFILE,
    ]


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
