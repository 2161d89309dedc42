"""The ``compose`` provider: ``deploy/docker-compose.yml`` brought up the way pytest-docker does.

pytest-docker's ``get_docker_services`` (what its ``docker_services`` fixture wraps) runs
``up --build --wait`` and, at the end, ``down -v``; the provider enters it from the plugin's
session fixture, so a run needs none of pytest-docker's fixtures. What it adds:

- fresh secrets in a generated ``.env.docker`` (mode 0600), passed with ``--env-file``: compose
  interpolates each container's own variables from it; its empty ``TRIA_SERVICE_PORT`` publishes
  every port on a random 127.0.0.1 port. The shell wins over an env file in that interpolation,
  so the variables the file sets are unset from the environment compose inherits;
- the ``standin`` profile: the OpenAI stand-in runs as a compose service;
- a project name ``tria-<pid>-<start time>``, so a later start takes down projects whose run is
  gone;
- ``Services.wait_until_responsive`` polling the same readiness checks as the local stack's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.containers import project_root
from pytest_tria_deploy.provision.docker import DockerUnavailableError, docker_problem, one_line
from pytest_tria_deploy.provision.errors import ComponentStartError
from pytest_tria_deploy.provision.facts import StartedComponent, component_facts
from pytest_tria_deploy.targets import Target

if TYPE_CHECKING:
    from pytest_docker.plugin import Services

    from pytest_tria_deploy.provision.container_specs import StackSecrets

COMPOSE_FILE = "deploy/docker-compose.yml"
PROFILE = "standin"
SETUP = ["up --build --wait"]
CLEANUP = ["down -v --remove-orphans"]
READY_TIMEOUT = 60.0
READY_PAUSE = 0.5
LOG_LINES = 20
# Compose service of each component (the stand-in's name says it is not OpenAI).
SERVICES = {
    "postgres": "postgres",
    "redis": "redis",
    "chroma": "chroma",
    "openai": "openai-standin",
    "service": "service",
}
_PROJECT = re.compile(r"^tria-(?P<pid>\d+)-(?P<started>\d+)$")
# pytest-docker's error: 'Command <command> returned <status>: """<output>""".'
_OUTPUT_END = '""".'


def project_name(pid: int | None = None) -> str:
    """``tria-<pid>-<create time in centiseconds>``: enough to tell a live owner from a gone one."""
    pid = os.getpid() if pid is None else pid
    return f"tria-{pid}-{round(psutil.Process(pid).create_time() * 100)}"


def project_is_orphan(name: str) -> bool:
    """Whether a compose project was started by a tria run whose process is gone."""
    from pytest_tria_deploy.provision.managed import owner_alive

    match = _PROJECT.match(name)
    if match is None:
        return False
    record = {"owner_pid": int(match["pid"]), "owner_create_time": int(match["started"]) / 100}
    return not owner_alive(record)


def up_failure(error: str, project: str) -> tuple[str, str]:
    """(component, cause) of a failed ``up``, from pytest-docker's error text.

    That text is the command and compose's whole output, build log first; compose says what went
    wrong last (``dependency failed to start: container tria-…-postgres-1 is unhealthy``), so the
    cause is the last line, and the component is the service it names (else "compose").
    """
    lines = [line.strip() for line in error.removesuffix(_OUTPUT_END).splitlines()]
    said = [line for line in lines if line]
    cause = said[-1] if said else "docker compose up failed"
    by_service = {service: component for component, service in SERVICES.items()}
    named = re.findall(rf"{re.escape(project)}[-_]([a-z-]+?)[-_]\d+", cause)
    component = next((by_service[s] for s in reversed(named) if s in by_service), "compose")
    return component, one_line(cause)


def compose_env(stack: StackSecrets) -> dict[str, str]:
    """A throwaway stack's ``.env.docker``, as a user's would be: every container's secrets."""
    from pytest_tria_deploy.provision.container_specs import PORTS, network_dependencies

    return {
        "POSTGRES_PASSWORD": stack.postgres_password,
        "REDIS_PASSWORD": stack.redis_password,
        "DATABASE_URL": network_dependencies(stack).database_url,
        "OPENAI_API_KEY": stack.openai_api_key,
        "OPENAI_BASE_URL": f"http://{SERVICES['openai']}:{PORTS['openai']}/v1",
        "SECRET_KEY": stack.secret_key,
        "TRIA_DIAGNOSTICS_TOKEN": stack.diagnostics_token,
        "TRIA_ENV": "development",
        # A throwaway stack has no load balancer to tell: stop at once instead of draining.
        "TRIA_SHUTDOWN_DRAIN_DELAY": "0",
    }


def _write_env(path: Path, values: Mapping[str, str]) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(f"{name}={value}\n" for name, value in values.items())
    return path


def interpolation_env(stack: StackSecrets) -> dict[str, str]:
    """What compose interpolates the file with: the stack's variables, and every port free."""
    return {**compose_env(stack), "TRIA_SERVICE_PORT": ""}


def write_env_file(workdir: Path, values: Mapping[str, str]) -> Path:
    """``.env.docker`` in ``workdir``, readable by this user only (it holds the secrets)."""
    return _write_env(workdir / ".env.docker", values)


def compose_command(env_file: Path, names: Iterable[str]) -> str:
    """pytest-docker's ``docker_compose_command``: a shell prefix it appends ``-f``/``-p`` to.

    ``names`` (what ``env_file`` sets) are unset first: a variable in compose's own environment
    would beat the file's, so a developer's DATABASE_URL could reach the throwaway stack.
    """
    unset = "".join(f"-u {shlex.quote(name)} " for name in sorted(names))
    return f"env {unset}docker compose --env-file {shlex.quote(str(env_file))} --profile {PROFILE}"


def _execute(command: str, compose_file: Path, project: str, subcommand: str) -> str:
    """One compose subcommand through pytest-docker's executor (it raises on a non-zero exit)."""
    from pytest_docker.plugin import DockerComposeExecutor

    output = DockerComposeExecutor(command, str(compose_file), project).execute(subcommand)
    return bytes(output).decode("utf-8", "replace")


def reap_compose_leftovers(command: str, compose_file: Path) -> list[str]:
    """Take down the compose projects of tria runs that are gone; their names."""
    try:
        listed = _execute(command, compose_file, "tria-reap", "ls --all --format json")
        projects = json.loads(listed.strip() or "[]")
    except Exception:  # reaping is best effort: it must never stop a start
        return []
    reaped = []
    for project in projects if isinstance(projects, list) else []:
        name = project.get("Name", "") if isinstance(project, dict) else ""
        if project_is_orphan(name):
            with contextlib.suppress(Exception):
                _execute(command, compose_file, name, CLEANUP[0])
                reaped.append(name)
    return reaped


class ComposeProvider:
    """Brings the compose stack up for one run and takes it down (volumes too) at stop()."""

    def __init__(self, compose_file: Path | None = None) -> None:
        self._compose_file = compose_file
        self._workdir: Path | None = None
        self._exit = contextlib.ExitStack()
        self._secrets: list[str] = []
        self._components: list[StartedComponent] = []

    def start(self, target: Target) -> Endpoints:
        problem = docker_problem("compose")
        if problem is not None:
            raise DockerUnavailableError(problem)
        compose_file = self._compose_file or project_root() / COMPOSE_FILE
        if not compose_file.is_file():
            raise ComponentStartError(
                "compose", f"{compose_file} not found; run from a tria-deploy checkout"
            )
        try:
            return self._start(compose_file)
        except BaseException:
            self.stop()
            raise

    def _start(self, compose_file: Path) -> Endpoints:
        from pytest_docker.plugin import get_docker_ip

        from pytest_tria_deploy.provision.container_specs import (
            IMAGES,
            PORTS,
            StackSecrets,
            host_endpoints,
        )

        stack = StackSecrets.generate()
        self._secrets = stack.values()
        self._workdir = Path(tempfile.mkdtemp(prefix="tria-compose-"))
        values = interpolation_env(stack)
        command = compose_command(write_env_file(self._workdir, values), values)
        reap_compose_leftovers(command, compose_file)
        project = project_name()
        services = self._up(command, compose_file, project)
        ports = {name: services.port_for(SERVICES[name], PORTS[name]) for name in SERVICES}
        host = get_docker_ip()
        endpoints = host_endpoints(stack, host, ports)
        self._wait_ready(services, endpoints, command, compose_file, project)
        self._components = [
            StartedComponent(
                name=name,
                version=IMAGES[name],
                address=f"{host}:{ports[name]}",
                log=f"docker compose -p {project} logs {service}",
            )
            for name, service in SERVICES.items()
        ]
        return endpoints

    def _up(self, command: str, compose_file: Path, project: str) -> Services:
        from pytest_docker.plugin import get_docker_services

        try:
            return self._exit.enter_context(
                get_docker_services(command, str(compose_file), project, SETUP, CLEANUP)
            )
        except BaseException as exc:
            # pytest-docker runs the setup outside its try: a failed `up` is ours to take down.
            component, cause = up_failure(str(exc), project)
            service = SERVICES.get(component, "")  # "": every service's log
            tail = self._logs(command, compose_file, project, service)
            with contextlib.suppress(Exception):
                _execute(command, compose_file, project, CLEANUP[0])
            if not isinstance(exc, Exception):
                raise
            raise ComponentStartError(
                component, f"docker compose up: {cause}", tail, secrets=self._secrets
            ) from None

    def _wait_ready(
        self,
        services: Services,
        endpoints: Endpoints,
        command: str,
        compose_file: Path,
        project: str,
    ) -> None:
        from pytest_tria_deploy.provision.readiness import first_failure, stack_checks

        checks = stack_checks(endpoints)
        deadline = time.monotonic() + READY_TIMEOUT  # each probe is cut to the time left
        try:
            services.wait_until_responsive(
                check=lambda: first_failure(checks, deadline) is None,
                timeout=READY_TIMEOUT,
                pause=READY_PAUSE,
            )
        except Exception:
            component, cause = first_failure(checks) or ("service", "flapped while waiting")
            raise ComponentStartError(
                component,
                f"not ready after {READY_TIMEOUT:g}s (last error: {cause})",
                self._logs(command, compose_file, project, SERVICES[component]),
                secrets=self._secrets,
            ) from None

    def _logs(self, command: str, compose_file: Path, project: str, service: str) -> list[str]:
        try:
            text = _execute(
                command, compose_file, project, f"logs --no-color --tail {LOG_LINES} {service}"
            )
        except Exception:
            return []
        return text.splitlines()[-LOG_LINES:]

    def stop(self) -> None:
        """``down -v`` (pytest-docker's cleanup), then the generated env files."""
        with contextlib.suppress(Exception):
            self._exit.close()
        self._exit = contextlib.ExitStack()
        self._components = []
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def describe(self) -> dict[str, str]:
        facts = {
            "provider": "compose",
            "starts": f"{COMPOSE_FILE} (PostgreSQL, Redis, Chroma, OpenAI stand-in, service) "
            "through pytest-docker",
        }
        facts.update(component_facts(self._components))
        return facts
