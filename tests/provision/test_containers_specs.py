"""The containers target's shape, as plain data: images, env, ports, waits, labels, network names.

No Docker is needed: these are the specs the provider hands to testcontainers.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from tria_service.config import load_settings

from pytest_tria_deploy.provision import container_specs as specs
from pytest_tria_deploy.provision.http_apps import STANDIN_MODULE
from tests.deploy.manifests import service_variables
from tests.reliability.secrets_canaries import assert_no_secret


@pytest.fixture
def stack() -> specs.StackSecrets:
    return specs.StackSecrets.generate()


@pytest.fixture
def every_spec(stack: specs.StackSecrets) -> dict[str, specs.ContainerSpec]:
    labels = specs.owner_labels()
    found = [
        *specs.dependency_specs(stack, labels),
        specs.standin_spec(stack, "tria-deploy:local", labels),
        specs.service_spec(stack, "tria-deploy:local", labels),
    ]
    return {spec.component: spec for spec in found}


def test_every_component_has_one_spec_on_its_own_port(
    every_spec: dict[str, specs.ContainerSpec],
) -> None:
    assert list(every_spec) == list(specs.COMPONENTS)
    for name, spec in every_spec.items():
        assert spec.port == specs.PORTS[name]
        assert spec.alias == name


def test_images_are_pinned_and_chroma_matches_the_wheel(
    every_spec: dict[str, specs.ContainerSpec],
) -> None:
    assert every_spec["postgres"].image == "postgres:17-alpine"
    assert every_spec["redis"].image == "redis:7.4-alpine"
    assert every_spec["chroma"].image == f"chromadb/chroma:{importlib.metadata.version('chromadb')}"
    assert every_spec["service"].image == every_spec["openai"].image == "tria-deploy:local"
    kinds = {name: spec.kind for name, spec in every_spec.items()}
    assert kinds == {
        "postgres": "postgres",
        "redis": "redis",
        "chroma": "generic",
        "openai": "generic",
        "service": "generic",
    }


def test_waits_match_the_local_readiness_checks(
    every_spec: dict[str, specs.ContainerSpec],
) -> None:
    waits = {name: spec.http_wait for name, spec in every_spec.items()}
    assert waits["chroma"] == specs.HttpWait("/api/v2/heartbeat")
    assert waits["openai"] == specs.HttpWait("/v1/models", (200, 401))
    # PostgreSQL and Redis use the community modules' own waits (psql, PING); the service, the
    # provider's readiness wait, which also notices a service that exited.
    assert waits["postgres"] is None
    assert waits["redis"] is None
    assert waits["service"] is None


def test_every_container_is_labelled_with_its_owner(
    every_spec: dict[str, specs.ContainerSpec],
) -> None:
    me = psutil.Process()
    for name, spec in every_spec.items():
        assert spec.labels[specs.LABEL_STACK] == "containers"
        assert spec.labels[specs.LABEL_COMPONENT] == name
        assert spec.labels[specs.LABEL_OWNER_PID] == str(me.pid)
        assert float(spec.labels[specs.LABEL_OWNER_CREATE_TIME]) == me.create_time()
        assert not specs.is_orphan(spec.labels)


def test_labels_of_a_gone_owner_mark_an_orphan() -> None:
    gone = subprocess.Popen(["true"])
    labels = specs.owner_labels(gone.pid)
    gone.wait()
    assert specs.is_orphan(labels)
    reused = {**specs.owner_labels(), specs.LABEL_OWNER_CREATE_TIME: "1.0"}  # pid reused
    assert specs.is_orphan(reused)
    assert not specs.is_orphan({specs.LABEL_STACK: "containers"})  # unattributable: kept
    assert not specs.is_orphan({})


def test_the_service_finds_its_dependencies_by_network_alias(
    every_spec: dict[str, specs.ContainerSpec], stack: specs.StackSecrets
) -> None:
    env = every_spec["service"].env
    endpoints = {
        "DATABASE_URL": "postgres",
        "REDIS_URL": "redis",
        "CHROMA_URL": "chroma",
        "OPENAI_BASE_URL": "openai",
    }
    for variable, component in endpoints.items():
        url = urlsplit(env[variable])
        assert url.hostname == every_spec[component].alias, variable
        assert url.port == every_spec[component].port, variable
    assert urlsplit(env["DATABASE_URL"]).password == stack.postgres_password
    assert urlsplit(env["REDIS_URL"]).password == stack.redis_password
    assert env["OPENAI_API_KEY"] == every_spec["openai"].env["TRIA_STANDIN_API_KEY"]
    assert env["SECRET_KEY"] == stack.secret_key
    assert env["TRIA_DIAGNOSTICS_TOKEN"] == stack.diagnostics_token
    assert env["TRIA_HOST"] == "0.0.0.0"
    assert env["TRIA_PORT"] == str(every_spec["service"].port)


def test_the_service_env_is_a_valid_config_for_the_service(
    every_spec: dict[str, specs.ContainerSpec],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    env = every_spec["service"].env
    assert set(env) <= service_variables()
    for name in service_variables():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.tria_shutdown_grace > 0
    assert settings.chroma_base_url() == "http://chroma:8000"


def test_dependencies_get_their_credentials_from_the_env_not_argv(
    every_spec: dict[str, specs.ContainerSpec], stack: specs.StackSecrets
) -> None:
    postgres, redis_spec = every_spec["postgres"], every_spec["redis"]
    assert postgres.env == {
        "POSTGRES_USER": "tria",
        "POSTGRES_PASSWORD": stack.postgres_password,
        "POSTGRES_DB": "tria",
    }
    assert redis_spec.env == {"REDIS_PASSWORD": stack.redis_password}
    command = " ".join(redis_spec.command)
    assert '--requirepass "$REDIS_PASSWORD"' in command
    assert '--save ""' in command
    assert "--appendonly no" in command
    shown = {"repr(stack)": repr(stack)}
    for name, spec in every_spec.items():
        shown |= {f"the {name} command": " ".join(spec.command), f"repr({name} spec)": repr(spec)}
    assert_no_secret(shown, asdict(stack))


def test_the_standin_runs_from_the_service_image_with_a_real_cli(
    every_spec: dict[str, specs.ContainerSpec],
) -> None:
    standin = every_spec["openai"]
    assert standin.command[:3] == ("python", "-m", STANDIN_MODULE)
    assert standin.command[standin.command.index("--port") + 1] == str(standin.port)
    assert standin.healthcheck is False  # the image's HEALTHCHECK probes the service
    assert all(spec.healthcheck for name, spec in every_spec.items() if name != "openai")
    shown = subprocess.run(
        [sys.executable, *standin.command[1:3], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    options = [word for word in standin.command if word.startswith("--")]
    for option in options:
        assert option in shown.stdout, option


def test_host_endpoints_use_the_published_ports(stack: specs.StackSecrets) -> None:
    ports = {"postgres": 40001, "redis": 40002, "chroma": 40003, "openai": 40004, "service": 40005}
    endpoints = specs.host_endpoints(stack, "127.0.0.1", ports)
    assert endpoints.service_urls == ["http://127.0.0.1:40005"]
    database = urlsplit(endpoints.database_url.get_secret_value())
    assert (database.hostname, database.port, database.path) == ("127.0.0.1", 40001, "/tria")
    assert database.password == stack.postgres_password
    redis_url = endpoints.redis_url.get_secret_value()
    assert redis_url == f"redis://:{stack.redis_password}@127.0.0.1:40002/0"
    assert endpoints.chroma_url == "http://127.0.0.1:40003"
    assert endpoints.openai_base_url == "http://127.0.0.1:40004/v1"
    for secret in stack.values():
        assert any(secret in known for known in endpoints.secrets())  # so it gets redacted
    assert_no_secret({"repr(endpoints)": repr(endpoints)}, asdict(stack))


def test_a_local_engine_publishes_on_loopback_only() -> None:
    for host in ("localhost", "127.0.0.1", "::1"):
        assert specs.publish_ip(host) == "127.0.0.1"
        assert specs.connect_host(host) == "127.0.0.1"
    assert specs.publish_ip("docker.example.internal") is None
    assert specs.connect_host("docker.example.internal") == "docker.example.internal"
