"""The containers provider: a clear one-line refusal without Docker, a real stack with it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
import redis

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.aio import run_async
from pytest_tria_deploy.provision.compose import ComposeProvider
from pytest_tria_deploy.provision.container_specs import LABEL_OWNER_PID, StackSecrets
from pytest_tria_deploy.provision.containers import ContainersProvider, ContainerStack
from pytest_tria_deploy.provision.docker import DockerUnavailableError, docker_problem
from pytest_tria_deploy.provision.errors import ComponentStartError
from pytest_tria_deploy.provision.external import ExternalProvider
from pytest_tria_deploy.provision.local import LocalProvider
from pytest_tria_deploy.provision.registry import provider_for
from pytest_tria_deploy.targets import BUILTIN_TARGETS, Target
from tests.reliability.secrets_canaries import assert_no_secret

CONTAINERS = BUILTIN_TARGETS["containers"]
HEAD = "containers target needs a Docker engine: "
TAIL = "; use --tria-target=local, or start Docker"


def test_start_without_an_engine_is_the_one_line_refusal(no_engine: str) -> None:
    provider = ContainersProvider()
    with pytest.raises(DockerUnavailableError) as refused:
        provider.start(CONTAINERS)
    assert str(refused.value) == docker_problem("containers")
    assert str(refused.value).startswith(HEAD)
    assert str(refused.value).endswith(TAIL)
    provider.stop()  # nothing to stop: still safe


def test_testcontainers_own_refusal_becomes_the_same_line(no_engine: str) -> None:
    """Past the check (say the engine died in between), testcontainers raises while creating its
    client; the stack turns that into the same message and leaves nothing behind."""
    stack = ContainerStack(StackSecrets.generate())
    with pytest.raises(DockerUnavailableError) as refused:
        stack.start()
    message = str(refused.value)
    assert message.startswith(HEAD + "Error while fetching server API version: ")
    assert message.endswith(TAIL)
    assert "\n" not in message
    assert stack._containers == {}
    assert stack._network is None


class _Exited:
    """docker-py's view of a container that exited: its status, exit code and last log lines."""

    status = "exited"
    attrs: ClassVar[dict[str, Any]] = {"State": {"ExitCode": 2}}

    def __init__(self, log: bytes) -> None:
        self._log = log

    def reload(self) -> None:
        return None

    def logs(self, tail: int) -> bytes:
        return b"\n".join(self._log.splitlines()[-tail:])


class _ExitedService:
    """A started testcontainers container whose process has exited: looking its port up gives
    up with the bare TimeoutError testcontainers' ContainerStatusWaitStrategy raises."""

    def __init__(self, log: bytes) -> None:
        self._wrapped = _Exited(log)

    def get_exposed_port(self, port: int) -> int:
        raise TimeoutError("container did not become running")

    def get_wrapped_container(self) -> _Exited:
        return self._wrapped


def test_a_container_that_exits_before_its_port_is_read_is_named_with_its_log() -> None:
    """The service exits at once on a bad configuration, often before its port is looked up."""
    secrets = StackSecrets.generate()
    stack = ContainerStack(secrets)
    log = f"noise\nSECRET_KEY={secrets.secret_key}\nconfig error: SECRET_KEY too short".encode()
    stack._containers["service"] = _ExitedService(log)  # type: ignore[assignment]
    with pytest.raises(ComponentStartError) as caught:
        stack.published_ports({"service": 8000})
    error = caught.value
    assert (error.component, error.cause) == ("service", "exited with code 2")
    assert error.log_tail == ["noise", "SECRET_KEY=***", "config error: SECRET_KEY too short"]
    assert_no_secret({"the start error": str(error)}, {"SECRET_KEY": secrets.secret_key})


def test_the_registry_knows_every_provider_and_loads_no_docker_code() -> None:
    expected = {
        "local": LocalProvider,
        "containers": ContainersProvider,
        "compose": ComposeProvider,
    }
    for name, kind in expected.items():
        assert isinstance(provider_for(BUILTIN_TARGETS[name]), kind)
    external = Target(
        name="ext",
        service_url="http://127.0.0.1:1",
        database_url="postgresql://u:p@127.0.0.1:1/db",  # type: ignore[arg-type]
        redis_url="redis://127.0.0.1:1",  # type: ignore[arg-type]
        openai_api_key="k",  # type: ignore[arg-type]
        chroma_url="http://127.0.0.1:1",
    )
    assert isinstance(provider_for(external), ExternalProvider)
    probe = (
        "import sys\n"
        "from pytest_tria_deploy.provision.registry import provider_for\n"
        "from pytest_tria_deploy.targets import BUILTIN_TARGETS\n"
        "for t in BUILTIN_TARGETS.values(): provider_for(t).describe()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('docker', 'testcontainers', 'pytest_docker')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert loaded.stdout.strip() == "[]"


# --- end to end: only where a Docker engine answers ------------------------------------------


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[ContainersProvider, Endpoints]]:
    problem = docker_problem("containers")
    if problem is not None:
        pytest.skip(problem)
    provider = ContainersProvider()
    try:
        yield provider, provider.start(CONTAINERS)
    finally:
        provider.stop()


async def _select_user(url: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT current_user")
    finally:
        await conn.close()


def test_the_stack_answers_like_the_local_one(
    running: tuple[ContainersProvider, Endpoints],
) -> None:
    _, endpoints = running
    assert run_async(lambda: _select_user(endpoints.database_url.get_secret_value())) == "tria"
    assert redis.Redis.from_url(endpoints.redis_url.get_secret_value()).ping()
    assert httpx.get(f"{endpoints.chroma_url}/api/v2/heartbeat").status_code == 200
    key = endpoints.openai_api_key.get_secret_value()
    models = httpx.get(
        f"{endpoints.openai_base_url}/models", headers={"Authorization": f"Bearer {key}"}
    )
    assert models.status_code == 200
    service = endpoints.service_urls[0]
    assert httpx.get(f"{service}/api/v1/health/readiness").status_code == 200
    token = endpoints.diagnostics_token
    assert token is not None
    diagnostics = httpx.get(
        f"{service}/api/v1/health/diagnostics",
        headers={"Authorization": f"Bearer {token.get_secret_value()}"},
    )
    assert diagnostics.status_code == 200


def test_stop_removes_every_container_it_labelled(
    running: tuple[ContainersProvider, Endpoints],
) -> None:
    import docker

    provider, _ = running
    client = docker.from_env()
    mine = {"label": f"{LABEL_OWNER_PID}={os.getpid()}"}
    assert len(client.containers.list(filters=mine)) == 5
    provider.stop()
    assert client.containers.list(all=True, filters=mine) == []
    assert client.networks.list(filters=mine) == []
