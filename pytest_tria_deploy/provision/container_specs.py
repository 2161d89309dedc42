"""What each container of the ``containers`` target is: image, env, port, wait, labels. Plain data.

Everything here is built by pure functions, so the stack's shape is tested without Docker; the
provider in containers.py only turns these specs into testcontainers objects.

Inside the stack's network every part has a fixed name and port (``postgres:5432``,
``redis:6379``, ``chroma:8000``, ``openai:8080``, ``service:8000``); from the test host each
published port is a random one, so several runs never collide.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import psutil
from pydantic import SecretStr

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.http_apps import STANDIN_MODULE
from pytest_tria_deploy.provision.managed import owner_alive
from pytest_tria_deploy.provision.stack import DependencyEndpoints, service_env

POSTGRES_IMAGE = "postgres:17-alpine"
REDIS_IMAGE = "redis:7.4-alpine"
# The Chroma server the chromadb wheel runs for the local target; tests keep the two equal.
CHROMA_VERSION = "1.5.9"
CHROMA_IMAGE = f"chromadb/chroma:{CHROMA_VERSION}"
SERVICE_IMAGE_TAG = "tria-deploy:local"
# What each component runs (the stand-in runs from the service's image).
IMAGES = {
    "postgres": POSTGRES_IMAGE,
    "redis": REDIS_IMAGE,
    "chroma": CHROMA_IMAGE,
    "openai": SERVICE_IMAGE_TAG,
    "service": SERVICE_IMAGE_TAG,
}

DATABASE = "tria"
DATABASE_USER = "tria"
PORTS = {"postgres": 5432, "redis": 6379, "chroma": 8000, "openai": 8080, "service": 8000}
COMPONENTS = tuple(PORTS)

LABEL_PREFIX = "io.tria-deploy"
LABEL_STACK = f"{LABEL_PREFIX}.stack"
LABEL_COMPONENT = f"{LABEL_PREFIX}.component"
LABEL_OWNER_PID = f"{LABEL_PREFIX}.owner-pid"
LABEL_OWNER_CREATE_TIME = f"{LABEL_PREFIX}.owner-create-time"
STACK_NAME = "containers"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class HttpWait:
    """Ready once GET ``path`` on the container port answers one of ``statuses``."""

    path: str
    statuses: tuple[int, ...] = (200,)


@dataclass(frozen=True)
class ContainerSpec:
    """One container: what to run, how it is reached, and when testcontainers calls it started.

    ``kind`` picks the testcontainers class: ``postgres`` and ``redis`` use the community
    modules (whose own waits are psql and PING), ``generic`` a plain DockerContainer with
    ``http_wait``. The service has no testcontainers wait: a service that refuses to start
    exits, and the provider's readiness wait notices that at once (an HTTP wait would poll a
    dead container until its timeout).
    """

    component: str
    kind: str
    image: str
    alias: str
    port: int
    env: Mapping[str, str] = field(repr=False)
    labels: Mapping[str, str]
    command: tuple[str, ...] = ()
    http_wait: HttpWait | None = None
    # The service image's HEALTHCHECK probes the service; a stand-in run from it must not.
    healthcheck: bool = True


@dataclass(frozen=True)
class StackSecrets:
    """Fresh credentials for one stack; repr never shows them."""

    postgres_password: str = field(repr=False)
    redis_password: str = field(repr=False)
    openai_api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    diagnostics_token: str = field(repr=False)

    @classmethod
    def generate(cls) -> StackSecrets:
        return cls(
            postgres_password=secrets.token_urlsafe(24),
            redis_password=secrets.token_hex(16),
            openai_api_key=f"sk-tria-containers-{secrets.token_hex(16)}",
            secret_key=secrets.token_urlsafe(48),
            diagnostics_token=secrets.token_urlsafe(32),
        )

    def values(self) -> list[str]:
        return [
            self.postgres_password,
            self.redis_password,
            self.openai_api_key,
            self.secret_key,
            self.diagnostics_token,
        ]


def owner_labels(pid: int | None = None) -> dict[str, str]:
    """Labels that tie a container to the process that started it (for reaping leftovers)."""
    pid = os.getpid() if pid is None else pid
    return {
        LABEL_STACK: STACK_NAME,
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_CREATE_TIME: repr(psutil.Process(pid).create_time()),
    }


def is_orphan(labels: Mapping[str, str]) -> bool:
    """Whether a labelled container or network belongs to a process that is gone."""
    try:
        pid = int(labels[LABEL_OWNER_PID])
        started = float(labels[LABEL_OWNER_CREATE_TIME])
    except (KeyError, ValueError):
        return False  # not ours, or not readable: never remove what we cannot attribute
    return not owner_alive({"owner_pid": pid, "owner_create_time": started})


def _url_password(password: str) -> str:
    return quote(password, safe="")


def network_dependencies(stack: StackSecrets) -> DependencyEndpoints:
    """Where the service finds its dependencies: their names on the stack's network."""
    return DependencyEndpoints(
        database_url=(
            f"postgresql://{DATABASE_USER}:{_url_password(stack.postgres_password)}"
            f"@postgres:{PORTS['postgres']}/{DATABASE}"
        ),
        redis_url=f"redis://:{_url_password(stack.redis_password)}@redis:{PORTS['redis']}/0",
        chroma_url=f"http://chroma:{PORTS['chroma']}",
        openai_base_url=f"http://openai:{PORTS['openai']}/v1",
        openai_api_key=stack.openai_api_key,
    )


def _labels(base: Mapping[str, str], component: str) -> dict[str, str]:
    return {**base, LABEL_COMPONENT: component}


def postgres_spec(stack: StackSecrets, labels: Mapping[str, str]) -> ContainerSpec:
    return ContainerSpec(
        component="postgres",
        kind="postgres",
        image=IMAGES["postgres"],
        alias="postgres",
        port=PORTS["postgres"],
        env={
            "POSTGRES_USER": DATABASE_USER,
            "POSTGRES_PASSWORD": stack.postgres_password,
            "POSTGRES_DB": DATABASE,
        },
        labels=_labels(labels, "postgres"),
    )


def redis_spec(stack: StackSecrets, labels: Mapping[str, str]) -> ContainerSpec:
    """No persistence, like the local Redis; the password comes from the env, not argv."""
    return ContainerSpec(
        component="redis",
        kind="redis",
        image=IMAGES["redis"],
        alias="redis",
        port=PORTS["redis"],
        env={"REDIS_PASSWORD": stack.redis_password},
        labels=_labels(labels, "redis"),
        command=(
            "sh",
            "-c",
            'exec redis-server --requirepass "$REDIS_PASSWORD" --save "" --appendonly no',
        ),
    )


def chroma_spec(labels: Mapping[str, str]) -> ContainerSpec:
    return ContainerSpec(
        component="chroma",
        kind="generic",
        image=IMAGES["chroma"],
        alias="chroma",
        port=PORTS["chroma"],
        env={},
        labels=_labels(labels, "chroma"),
        http_wait=HttpWait("/api/v2/heartbeat"),
    )


def standin_spec(stack: StackSecrets, image: str, labels: Mapping[str, str]) -> ContainerSpec:
    """The stand-in runs from the service's image (same distribution, same Python).

    Its admin routes must answer the test host, whose requests arrive through Docker's port
    forwarding rather than from loopback; the port is published on 127.0.0.1 only.
    """
    port = PORTS["openai"]
    return ContainerSpec(
        component="openai",
        kind="generic",
        image=image,
        alias="openai",
        port=port,
        env={"TRIA_STANDIN_API_KEY": stack.openai_api_key},
        labels=_labels(labels, "openai"),
        command=(
            "python",
            "-m",
            STANDIN_MODULE,
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--allow-remote-admin",
        ),
        http_wait=HttpWait("/v1/models", (200, 401)),
        healthcheck=False,
    )


def service_spec(stack: StackSecrets, image: str, labels: Mapping[str, str]) -> ContainerSpec:
    """The service with the same env the local stack gives it, but the network's addresses."""
    env = service_env(
        network_dependencies(stack),
        secret_key=stack.secret_key,
        diagnostics_token=stack.diagnostics_token,
    )
    env |= {"TRIA_HOST": "0.0.0.0", "TRIA_PORT": str(PORTS["service"])}
    return ContainerSpec(
        component="service",
        kind="generic",
        image=image,
        alias="service",
        port=PORTS["service"],
        env=env,
        labels=_labels(labels, "service"),
    )


def dependency_specs(stack: StackSecrets, labels: Mapping[str, str]) -> list[ContainerSpec]:
    """What can start before the service's image exists."""
    return [postgres_spec(stack, labels), redis_spec(stack, labels), chroma_spec(labels)]


def publish_ip(docker_host: str) -> str | None:
    """Publish on 127.0.0.1 when the engine runs here; on every interface of a remote engine."""
    return "127.0.0.1" if docker_host in _LOCAL_HOSTS else None


def connect_host(docker_host: str) -> str:
    """Where published ports are reached from the test host (IPv4 loopback for a local engine)."""
    return "127.0.0.1" if docker_host in _LOCAL_HOSTS else docker_host


def host_endpoints(stack: StackSecrets, host: str, ports: Mapping[str, int]) -> Endpoints:
    """What the fixtures connect to: the published ports, with the stack's credentials."""
    database = (
        f"postgresql://{DATABASE_USER}:{_url_password(stack.postgres_password)}"
        f"@{host}:{ports['postgres']}/{DATABASE}"
    )
    redis_url = f"redis://:{_url_password(stack.redis_password)}@{host}:{ports['redis']}/0"
    return Endpoints(
        service_urls=[f"http://{host}:{ports['service']}"],
        database_url=SecretStr(database),
        redis_url=SecretStr(redis_url),
        openai_base_url=f"http://{host}:{ports['openai']}/v1",
        openai_api_key=SecretStr(stack.openai_api_key),
        chroma_url=f"http://{host}:{ports['chroma']}",
        diagnostics_token=SecretStr(stack.diagnostics_token),
        secret_key=SecretStr(stack.secret_key),
    )
