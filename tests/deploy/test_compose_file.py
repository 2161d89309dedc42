"""deploy/docker-compose.yml and .env.docker.example agree with the code and with each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tria_service.config import ConfigError, load_settings

from pytest_tria_deploy.provision import container_specs as specs
from pytest_tria_deploy.provision.compose import PROFILE, SERVICES, compose_env
from pytest_tria_deploy.provision.containers import SERVICE_IMAGE_ENV
from tests.deploy.manifests import (
    DEPLOY,
    ENV_EXAMPLE,
    IMAGE_VARIABLES,
    REPO,
    load_compose,
    read_env_file,
    service_variables,
)

ENV_FILE = "${TRIA_ENV_DOCKER:-../.env.docker}"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = load_compose()["services"]
    return found


def _container_ports(service: dict[str, Any]) -> list[int]:
    return [int(str(port).rsplit(":", 1)[1]) for port in service["ports"]]


def test_the_services_are_the_providers_components(services: dict[str, Any]) -> None:
    assert set(services) == set(SERVICES.values())
    for component, name in SERVICES.items():
        assert _container_ports(services[name]) == [specs.PORTS[component]]


def test_images_match_the_containers_target(services: dict[str, Any]) -> None:
    for component, name in SERVICES.items():
        service = services[name]
        expected = specs.IMAGES[component]
        if "build" in service:  # built here: the tag may be overridden, the Dockerfile is ours
            expected = f"${{{SERVICE_IMAGE_ENV}:-{expected}}}"
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == REPO
            assert (context / service["build"]["dockerfile"]).is_file()
        assert service["image"] == expected, name
    assert {n for n, s in services.items() if "build" in s} == {"service", "openai-standin"}


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert service["healthcheck"]["retries"] >= 3, name
    assert "/api/v1/health/readiness" in services["service"]["healthcheck"]["test"][-1]
    assert "/api/v2/heartbeat" in services["chroma"]["healthcheck"]["test"][-1]


def test_the_service_waits_for_healthy_dependencies(services: dict[str, Any]) -> None:
    depends = services["service"]["depends_on"]
    assert {name: d["condition"] for name, d in depends.items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "chroma": "service_healthy",
        "openai-standin": "service_healthy",
    }
    assert depends["openai-standin"]["required"] is False
    assert services["openai-standin"]["profiles"] == [PROFILE]
    assert all("profiles" not in s for n, s in services.items() if n != "openai-standin")


def test_every_port_is_published_on_loopback_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for port in service["ports"]:
            assert str(port).startswith("127.0.0.1:"), name
    assert services["service"]["ports"] == ["127.0.0.1:${TRIA_SERVICE_PORT-8000}:8000"]


def test_secrets_come_from_the_env_file_next_to_the_example(services: dict[str, Any]) -> None:
    readers = {name for name, s in services.items() if "env_file" in s}
    assert readers == {"postgres", "redis", "openai-standin", "service"}
    assert all(services[name]["env_file"] == ENV_FILE for name in readers)
    default = ENV_FILE.removeprefix("${TRIA_ENV_DOCKER:-").removesuffix("}")
    env_docker = (DEPLOY / default).resolve()
    assert env_docker == REPO / ".env.docker"
    assert env_docker.with_name(".env.docker.example") == ENV_EXAMPLE
    assert ENV_EXAMPLE.is_file()
    for service in services.values():
        for value in (service.get("environment") or {}).values():
            assert not any(w in str(value).lower() for w in ("password", "secret", "key")), value


def test_the_service_environment_names_exist_in_the_config(services: dict[str, Any]) -> None:
    assert set(services["service"]["environment"]) <= service_variables()
    assert services["service"]["environment"]["TRIA_PORT"] == str(specs.PORTS["service"])
    assert set(services["postgres"]["environment"]) <= IMAGE_VARIABLES


def test_the_example_names_only_known_variables_and_placeholders() -> None:
    example = read_env_file(ENV_EXAMPLE)
    assert set(example) <= service_variables() | IMAGE_VARIABLES
    required = {"DATABASE_URL", "SECRET_KEY", "TRIA_DIAGNOSTICS_TOKEN", "OPENAI_API_KEY"}
    assert required <= set(example)
    assert "REDIS_URL" not in example  # the compose file points the service at Redis
    password = urlsplit(example["DATABASE_URL"]).password
    assert password == example["POSTGRES_PASSWORD"]
    assert urlsplit(example["DATABASE_URL"]).hostname == "postgres"
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "SECRET_KEY", "TRIA_DIAGNOSTICS_TOKEN"):
        assert example[name].startswith("replace-me"), name


def _load_service_config(
    values: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> object:
    """The service's own settings as it would load them in the container."""
    for name in service_variables() | IMAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return load_settings()


def test_an_unfilled_example_is_refused_by_the_service(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    values = {**read_env_file(ENV_EXAMPLE), **services["service"]["environment"]}
    with pytest.raises(ConfigError) as refused:
        _load_service_config(values, monkeypatch, tmp_path)
    problems = " ".join(refused.value.problems)
    assert "SECRET_KEY: is a placeholder" in problems
    assert "TRIA_DIAGNOSTICS_TOKEN: is a placeholder" in problems


def test_the_providers_env_file_makes_a_valid_service_config(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack = specs.StackSecrets.generate()
    generated = compose_env(stack)
    assert set(generated) <= service_variables() | IMAGE_VARIABLES
    settings: Any = _load_service_config(
        {**generated, **services["service"]["environment"]}, monkeypatch, tmp_path
    )
    assert urlsplit(settings.asyncpg_dsn()).hostname == "postgres"
    assert urlsplit(settings.asyncpg_dsn()).password == stack.postgres_password
    assert settings.redis_dsn() == f"redis://:{stack.redis_password}@redis:6379/0"
    assert settings.chroma_base_url() == "http://chroma:8000"
    assert settings.openai_endpoint() == "http://openai-standin:8080/v1"
