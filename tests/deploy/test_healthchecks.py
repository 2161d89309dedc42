"""The manifests' health checks, run for real against local servers of the same programs.

Docker is not needed: each check's command runs here exactly as Compose would run it (``$$``
unescaped, CMD or CMD-SHELL), with only the port swapped for the local server's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from pytest_tria_deploy.provision.managed import free_port
from pytest_tria_deploy.provision.processes import (
    ServiceServer,
    postgres_bindir,
    redis_server_binary,
)
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.deploy.manifests import dockerfile, load_compose
from tests.reliability.secrets_canaries import assert_no_secret


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = load_compose()["services"]
    return found


def _unescape(words: list[str]) -> list[str]:
    """Compose's own pass over a command: ``$$`` becomes a literal ``$``."""
    return [word.replace("$$", "$") for word in words]


def _argv(test: list[str]) -> list[str]:
    """What Docker runs for a compose healthcheck ``test``."""
    kind, *rest = _unescape(test)
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", rest[0]]
    assert kind == "CMD"
    return rest


def _run(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(argv, env=full_env, capture_output=True, timeout=30, check=False)
    return done.returncode


def _passes_soon(run: Callable[[], int], attempts: int = 50) -> bool:
    """True once ``run()`` exits 0 (a just-spawned server needs a moment)."""
    for _ in range(attempts):
        if run() == 0:
            return True
        time.sleep(0.1)
    return False


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def test_postgres_check_passes_on_a_ready_server(
    services: dict[str, Any], deps: DependencyEndpoints
) -> None:
    argv = _argv(services["postgres"]["healthcheck"]["test"])
    argv[0] = str(postgres_bindir() / argv[0])
    assert _run(argv, {"PGPORT": str(_port(deps.database_url))}) == 0
    assert _run(argv, {"PGPORT": str(free_port())}) != 0


def test_redis_command_and_check_use_the_password_from_the_env(
    services: dict[str, Any], tmp_path: Path
) -> None:
    port = free_port()
    command = _unescape(services["redis"]["command"])
    command[-1] += f" --port {port} --bind 127.0.0.1 --dir {tmp_path}"
    path = f"{redis_server_binary().parent}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "REDIS_PASSWORD": "pw-from-env-file"}
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) as server:
        try:
            client = redis.Redis(port=port, password="pw-from-env-file")
            check = _argv(services["redis"]["healthcheck"]["test"])
            check[-1] = check[-1].replace("redis-cli ping", f"redis-cli -p {port} ping")
            good = {"PATH": path, "REDIS_PASSWORD": "pw-from-env-file"}
            assert _passes_soon(lambda: _run(check, good))
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            assert _run(check, {"PATH": path, "REDIS_PASSWORD": "wrong"}) != 0
            assert_no_secret(
                {"the redis command": " ".join(command)}, {"REDIS_PASSWORD": "pw-from-env-file"}
            )
        finally:
            server.terminate()


def test_chroma_check_wants_a_200_heartbeat(
    services: dict[str, Any], deps: DependencyEndpoints
) -> None:
    test = services["chroma"]["healthcheck"]["test"]

    def on(port: int) -> list[str]:
        script = test[-1].replace("/dev/tcp/127.0.0.1/8000", f"/dev/tcp/127.0.0.1/{port}")
        return _argv([*test[:-1], script])

    assert "/dev/tcp/127.0.0.1/8000" in test[-1]
    assert _run(on(_port(deps.chroma_url))) == 0
    assert _run(on(_port(deps.openai_base_url))) != 0  # answers, but 404: not a Chroma
    assert _run(on(free_port())) != 0


def test_standin_check_passes_on_the_standin(
    services: dict[str, Any], deps: DependencyEndpoints
) -> None:
    argv = _argv(services["openai-standin"]["healthcheck"]["test"])
    argv[-1] = argv[-1].replace(":8080/", f":{_port(deps.openai_base_url)}/")
    assert _run(argv) == 0


def test_service_checks_pass_on_a_ready_service(
    services: dict[str, Any], running_service: ServiceServer
) -> None:
    compose_check = _argv(services["service"]["healthcheck"]["test"])
    ready = [*compose_check[:-1], compose_check[-1].replace(":8000/", f":{running_service.port}/")]
    assert _run(ready) == 0
    closed = [*compose_check[:-1], compose_check[-1].replace(":8000/", f":{free_port()}/")]
    assert _run(closed) != 0

    (check,) = [i.args for i in dockerfile() if i.keyword == "HEALTHCHECK"]
    image_check: list[str] = json.loads(check.partition(" CMD ")[2])
    assert _run(image_check, {"TRIA_PORT": str(running_service.port)}) == 0
    assert _run(image_check, {"TRIA_PORT": str(free_port())}) != 0
