"""The project's own Python servers, each run as ``python -m``: the OpenAI stand-in, the service."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import version as package_version
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from pytest_tria_deploy.provision.managed import Launch
from pytest_tria_deploy.provision.readiness import PROBE_TIMEOUT, models, service_ready
from pytest_tria_deploy.provision.server import HOST, HttpServer, SpawnHook, start_on_port

STANDIN_MODULE = "pytest_tria_deploy.standins.openai"
SERVICE_MODULE = "tria_service"
_PROBE_KEY = "tria-readiness-probe"
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH")
_SECRET_MARKERS = ("URL", "KEY", "TOKEN", "PASSWORD", "SECRET")


def secrets_in_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """Values (and URL passwords) of variables whose names say they hold credentials."""
    found: list[str] = []
    for name, value in env.items():
        if not value or not any(marker in name.upper() for marker in _SECRET_MARKERS):
            continue
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found.append(password)
        elif not name.upper().endswith("URL"):
            found.append(value)
    return tuple(found)


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal env: a developer's own DATABASE_URL etc. must not leak into a test server."""
    base = {name: os.environ[name] for name in _PASSTHROUGH if name in os.environ}
    return {**base, "PYTHONUNBUFFERED": "1", **(extra or {})}


class StandinServer(HttpServer):
    """The OpenAI stand-in; ``base_url`` ends in ``/v1`` (as the SDK wants), ``url`` is the root."""

    def __init__(
        self,
        launch: Launch,
        *,
        port: int,
        api_key: str | None,
        timeout: float,
        on_spawn: SpawnHook | None,
    ) -> None:
        self.api_key = api_key
        super().__init__(launch, port=port, timeout=timeout, on_spawn=on_spawn)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def probe(self, timeout: float = PROBE_TIMEOUT) -> None:
        """GET /v1/models with the key answers 200."""
        models(self.base_url, self.api_key or _PROBE_KEY, timeout)

    def version(self) -> str:
        """The stand-in ships with tria-deploy, so it has tria-deploy's version."""
        return f"OpenAI stand-in (tria-deploy {package_version('tria-deploy')})"


def start_openai_standin(
    workdir: Path,
    port: int | None = None,
    api_key: str | None = None,
    extra_args: Sequence[str] = (),
    *,
    timeout: float = 20.0,
    on_spawn: SpawnHook | None = None,
) -> StandinServer:
    """``python -m pytest_tria_deploy.standins.openai``, ready when /v1/models answers."""
    workdir.mkdir(parents=True, exist_ok=True)

    def start(chosen: int) -> StandinServer:
        argv = [sys.executable, "-m", STANDIN_MODULE, "--host", HOST, "--port", str(chosen)]
        launch = Launch(
            name="openai",
            argv=[*argv, *extra_args],
            log_path=workdir / f"openai-standin-{chosen}.log",
            # The key travels in the environment, never on a command line that `ps` shows.
            env=python_env({"TRIA_STANDIN_API_KEY": api_key} if api_key else None),
            cwd=workdir,
            secrets=(api_key,) if api_key else (),
        )
        server = StandinServer(
            launch, port=chosen, api_key=api_key, timeout=timeout, on_spawn=on_spawn
        )
        server.wait_ready()
        return server

    return start_on_port("openai", port, start)


class ServiceServer(HttpServer):
    def probe(self, timeout: float = PROBE_TIMEOUT) -> None:
        """Readiness answers 200: every critical dependency is reachable."""
        service_ready(self.url, timeout)

    def version(self) -> str:
        response = httpx.get(f"{self.url}/health", timeout=2.0).raise_for_status()
        return f"tria-service {response.json()['version']}"

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the service has exited (e.g. on bad config), None if still running."""
        return self.process.wait(timeout)


def start_service(
    workdir: Path,
    env: Mapping[str, str],
    port: int | None = None,
    wait_ready: bool = True,
    *,
    timeout: float = 30.0,
    on_spawn: SpawnHook | None = None,
) -> ServiceServer:
    """``python -m tria_service`` with only ``env`` (plus PATH etc.) and TRIA_HOST/TRIA_PORT.

    It runs in its own directory under ``workdir`` so no stray ``.env`` is read. With
    ``wait_ready=False`` it returns at once: for tests that expect the start to fail.
    """

    def start(chosen: int) -> ServiceServer:
        server = _spawn_service(workdir, env, chosen, timeout, on_spawn)
        if wait_ready:
            server.wait_ready()
        return server

    return start_on_port("service", port, start)


def _spawn_service(
    workdir: Path,
    env: Mapping[str, str],
    port: int,
    timeout: float,
    on_spawn: SpawnHook | None,
) -> ServiceServer:
    rundir = workdir / f"service-{port}"
    rundir.mkdir(parents=True, exist_ok=True)
    full_env = python_env({**env, "TRIA_HOST": HOST, "TRIA_PORT": str(port)})
    launch = Launch(
        name="service",
        argv=[sys.executable, "-m", SERVICE_MODULE],
        log_path=workdir / f"service-{port}.log",
        env=full_env,
        cwd=rundir,
        secrets=secrets_in_env(env),
    )
    return ServiceServer(launch, port=port, timeout=timeout, on_spawn=on_spawn)
