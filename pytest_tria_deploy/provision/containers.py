"""The ``containers`` provider: the local stack's five parts as Docker containers (testcontainers).

PostgreSQL and Redis use testcontainers' community modules, Chroma is a generic container with an
HTTP wait on its heartbeat, and the service is built from ``deploy/Dockerfile`` (or taken from
``$TRIA_SERVICE_IMAGE``). The OpenAI stand-in runs in a container of the service's image: it is
part of the same distribution, and on the stack's network the service reaches it by name like
any other dependency (a stand-in on the host would need a host-gateway route the service cannot
count on). The specs themselves are plain data in container_specs.py.

Start: the dependencies and the image build run at once, then the stand-in, then the service;
once testcontainers' own waits pass, the same readiness checks as the local stack's (SELECT 1,
PING, heartbeat, models, readiness 200) run from the test host with bounded backoff. A failed or
interrupted start removes everything it created. Every container and the network carry labels
naming the owning process, so a later start removes what a crashed run left (testcontainers'
Ryuk does the same when it is enabled).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.docker import (
    DockerStatus,
    DockerUnavailableError,
    docker_problem,
    exception_text,
    one_line,
)
from pytest_tria_deploy.provision.errors import ComponentStartError
from pytest_tria_deploy.provision.facts import StartedComponent, component_facts
from pytest_tria_deploy.provision.readiness import describe_error
from pytest_tria_deploy.targets import Target

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    from pytest_tria_deploy.provision.container_specs import ContainerSpec, StackSecrets

SERVICE_IMAGE_ENV = "TRIA_SERVICE_IMAGE"
DOCKERFILE = "deploy/Dockerfile"
START_TIMEOUT = 120.0  # per dependency container, image pulls excluded (pulled first)
READY_TIMEOUT = 60.0  # for the host-side checks once every container runs
STOP_TIMEOUT = 15  # seconds the service gets to drain on SIGTERM before it is killed
LOG_LINES = 20


def project_root() -> Path:
    """The checkout this package runs from (an editable install); it holds deploy/Dockerfile."""
    return Path(__file__).resolve().parents[2]


def _engine_error(exc: Exception) -> DockerUnavailableError:
    """testcontainers raises from a container's constructor when no daemon answers."""
    status = DockerStatus(engine_problem=one_line(exception_text(exc)))
    return DockerUnavailableError(status.problem_for("containers"))


def _is_engine_error(exc: BaseException) -> bool:
    """docker-py's client creation raises a bare DockerException("Error while fetching server
    API version: ...") when nothing answers; testcontainers creates a client per container."""
    from docker.errors import DockerException

    return isinstance(exc, DockerException) and "server API version" in str(exc)


def _build_log_tail(exc: Exception) -> list[str]:
    lines: list[str] = []
    for chunk in getattr(exc, "build_log", None) or []:
        text = (chunk.get("stream") or chunk.get("error")) if isinstance(chunk, dict) else None
        if isinstance(text, str):
            lines += [line for line in text.splitlines() if line.strip()]
    return lines[-LOG_LINES:]


def _exit_code(container: DockerContainer) -> int | None:
    """The exit code of a container that has stopped; None while it runs or before it exists."""
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
    except Exception:  # not created yet, or already removed
        return None
    if wrapped.status not in ("exited", "dead"):
        return None
    return int(wrapped.attrs["State"].get("ExitCode", -1))


class ContainerStack:
    """One stack's containers and network; ``stop()`` removes whatever exists, at any point."""

    def __init__(self, stack: StackSecrets, *, image: str | None = None) -> None:
        self.secrets = stack
        self._image = image
        self._lock = threading.Lock()
        self._containers: dict[str, DockerContainer] = {}
        self._network: Network | None = None
        self.components: list[StartedComponent] = []  # once started: for the report

    def failure(self, component: str, cause: str) -> ComponentStartError:
        """The error for a component that failed, with what its container logged last."""
        tail = self.log_tail(component)
        return ComponentStartError(component, cause, tail, secrets=self.secrets.values())

    def log_tail(self, component: str) -> list[str]:
        """The last lines a container wrote (empty when it never started)."""
        container = self._containers.get(component)
        if container is None:
            return []
        try:
            raw = container.get_wrapped_container().logs(tail=LOG_LINES)
        except Exception:  # not created yet, or already gone
            return []
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return text.splitlines()[-LOG_LINES:]

    def published_ports(self, container_ports: Mapping[str, int]) -> dict[str, int]:
        """Each container's port on the test host.

        testcontainers looks a port up only once the container runs, and gives up with a bare
        TimeoutError when it has stopped (the service exits on a bad configuration): that
        becomes the component's exit code and log tail.
        """
        ports: dict[str, int] = {}
        for name, container in list(self._containers.items()):
            try:
                ports[name] = int(container.get_exposed_port(container_ports[name]))
            except Exception as exc:
                component, cause = self.exited() or (name, describe_error(exc))
                raise self.failure(component, cause) from None
        return ports

    def exited(self) -> tuple[str, str] | None:
        """(component, "exited with code N") for the first container that stopped running."""
        for name, container in list(self._containers.items()):
            code = _exit_code(container)
            if code is not None:
                return name, f"exited with code {code}"
        return None

    def _container(self, spec: ContainerSpec, bind_ip: str | None) -> DockerContainer:
        from testcontainers.community.postgres import PostgresContainer
        from testcontainers.community.redis import RedisContainer
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import HttpWaitStrategy

        container: DockerContainer
        if spec.kind == "postgres":
            container = PostgresContainer(
                spec.image,
                port=spec.port,
                username=spec.env["POSTGRES_USER"],
                password=spec.env["POSTGRES_PASSWORD"],
                dbname=spec.env["POSTGRES_DB"],
                driver=None,
            )
        elif spec.kind == "redis":
            container = RedisContainer(
                spec.image, port=spec.port, password=spec.env["REDIS_PASSWORD"]
            )
        else:
            container = DockerContainer(spec.image).with_exposed_ports(spec.port)
        for name, value in spec.env.items():
            container.with_env(name, value)
        if spec.command:
            container.with_command(list(spec.command))
        if spec.http_wait is not None:
            strategy = HttpWaitStrategy(spec.port, spec.http_wait.path)
            for status in spec.http_wait.statuses:
                strategy.for_status_code(status)
            container.waiting_for(strategy.with_startup_timeout(int(START_TIMEOUT)))
        extra: dict[str, Any] = {"labels": dict(spec.labels)}
        if not spec.healthcheck:
            extra["healthcheck"] = {"test": ["NONE"]}
        container.with_kwargs(**extra)
        assert self._network is not None
        container.with_network(self._network).with_network_aliases(spec.alias)
        # A random host port on the given address (docker-py's (ip,) binding form).
        bindings: dict[str, Any] = container.ports
        bindings[str(spec.port)] = (bind_ip,) if bind_ip else None
        return container

    def _run(self, spec: ContainerSpec, bind_ip: str | None) -> DockerContainer:
        container = self._container(spec, bind_ip)
        with self._lock:
            self._containers[spec.component] = container
        try:
            container.start()
        except Exception as exc:
            raise self.failure(spec.component, describe_error(exc)) from None
        return container

    def _service_image(self) -> str:
        if self._image:
            return self._image
        from testcontainers.core.image import DockerImage

        from pytest_tria_deploy.provision.container_specs import SERVICE_IMAGE_TAG

        root = project_root()
        if not (root / DOCKERFILE).is_file():
            raise ComponentStartError(
                "service",
                f"{DOCKERFILE} not found under {root}; run from a tria-deploy checkout "
                f"(pip install -e .) or set {SERVICE_IMAGE_ENV} to a built service image",
            )
        image = DockerImage(
            path=root, dockerfile_path=DOCKERFILE, tag=SERVICE_IMAGE_TAG, clean_up=False
        )
        try:
            image.build()
        except Exception as exc:
            cause, tail = describe_error(exc), _build_log_tail(exc)
            secrets = self.secrets.values()
            raise ComponentStartError("service", cause, tail, secrets=secrets) from None
        return SERVICE_IMAGE_TAG

    def start(self) -> Endpoints:
        """Everything up and answering, or everything removed again and an error raised."""
        try:
            return self._start()
        except Exception as exc:
            self.stop()
            if _is_engine_error(exc):
                raise _engine_error(exc) from None
            raise
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Endpoints:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import Reaper
        from testcontainers.core.docker_client import DockerClient
        from testcontainers.core.network import Network

        from pytest_tria_deploy.provision import container_specs as specs
        from pytest_tria_deploy.provision.readiness import stack_checks, wait_until_ready

        client = DockerClient()
        try:
            reap_leftovers(client.client)
            docker_host = client.host()
        finally:
            client.client.close()
        bind_ip = specs.publish_ip(docker_host)
        labels = specs.owner_labels()
        if not testcontainers_config.ryuk_disabled:
            Reaper.get_instance()  # once, here: concurrent starts would each try to create it
        self._network = Network(docker_network_kw={"labels": labels}).create()

        deps = specs.dependency_specs(self.secrets, labels)
        jobs: dict[str, Callable[[], object]] = {
            spec.component: partial(self._run, spec, bind_ip) for spec in deps
        }
        jobs["image"] = self._service_image
        results = _run_all(jobs)
        image = str(results["image"])
        self._run(specs.standin_spec(self.secrets, image, labels), bind_ip)
        self._run(specs.service_spec(self.secrets, image, labels), bind_ip)

        ports = self.published_ports(specs.PORTS)
        host = specs.connect_host(docker_host)
        endpoints = specs.host_endpoints(self.secrets, host, ports)
        wait_until_ready(stack_checks(endpoints), READY_TIMEOUT, self.failure, self.exited)
        running = self._containers.items()
        self.components = [
            StartedComponent(
                name=name,
                version=container.image,
                address=f"{host}:{ports[name]}",
                log=f"docker logs {container.get_wrapped_container().short_id}",
            )
            for name, container in running
        ]
        return endpoints

    def stop(self) -> None:
        """The service first (SIGTERM, so it drains), then the rest, then the network."""
        with self._lock:
            containers, self._containers = self._containers, {}
        self.components = []
        service = containers.pop("service", None)
        if service is not None:
            with contextlib.suppress(Exception):  # never started, or already gone
                service.get_wrapped_container().stop(timeout=STOP_TIMEOUT)
            containers = {"service": service, **containers}
        for container in containers.values():
            with contextlib.suppress(Exception):
                container.stop()
        network, self._network = self._network, None
        if network is not None:
            with contextlib.suppress(Exception):
                network.remove()


def _run_all(jobs: Mapping[str, Callable[[], object]]) -> dict[str, object]:
    """Run the jobs at once; their results, or one error naming every failed component."""
    from pytest_tria_deploy.provision.stack import start_failure

    pool = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="tria-containers")
    try:
        futures: dict[str, Future[object]] = {name: pool.submit(job) for name, job in jobs.items()}
        wait(futures.values())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for future in futures.values():
        exc = future.exception()
        if exc is not None and _is_engine_error(exc):
            raise exc
    failure = start_failure(futures)
    if failure is not None:
        raise failure
    return {name: future.result() for name, future in futures.items()}


def reap_leftovers(client: Any) -> list[str]:
    """Remove containers and networks of this stack whose owning process is gone."""
    from pytest_tria_deploy.provision.container_specs import LABEL_STACK, STACK_NAME, is_orphan

    selector = {"label": f"{LABEL_STACK}={STACK_NAME}"}
    reaped: list[str] = []
    for container in client.containers.list(all=True, filters=selector):
        if is_orphan(container.labels):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                reaped.append(f"container {container.name}")
    for network in client.networks.list(filters=selector):
        if is_orphan(network.attrs.get("Labels") or {}):
            with contextlib.suppress(Exception):
                network.remove()
                reaped.append(f"network {network.name}")
    return reaped


class ContainersProvider:
    """Starts the stack on the Docker engine testcontainers finds; removes it at stop()."""

    def __init__(self) -> None:
        self._stack: ContainerStack | None = None

    def start(self, target: Target) -> Endpoints:
        problem = docker_problem("containers")
        if problem is not None:
            raise DockerUnavailableError(problem)
        from pytest_tria_deploy.provision.container_specs import StackSecrets

        self._stack = ContainerStack(
            StackSecrets.generate(), image=os.environ.get(SERVICE_IMAGE_ENV) or None
        )
        return self._stack.start()

    def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.stop()

    def describe(self) -> dict[str, str]:
        facts = {
            "provider": "containers",
            "starts": "PostgreSQL, Redis, Chroma, OpenAI stand-in and the service as Docker "
            "containers (testcontainers)",
        }
        if self._stack is not None:
            facts.update(component_facts(self._stack.components))
        return facts
