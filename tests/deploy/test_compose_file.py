"""deploy/docker-compose.yml and .env.docker.example agree with the code and with each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tria_service.config import ConfigError, load_settings

from pytest_tria_deploy.provision import container_specs as specs
from pytest_tria_deploy.provision.compose import PROFILE, SERVICES, compose_env, interpolation_env
from pytest_tria_deploy.provision.containers import SERVICE_IMAGE_ENV
from tests.deploy.manifests import (
    DEPLOY,
    ENV_EXAMPLE,
    IMAGE_VARIABLES,
    REPO,
    container_environment,
    load_compose,
    read_env_file,
    rendered,
    service_variables,
)

SECRETS = {
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "DATABASE_URL",
    "OPENAI_API_KEY",
    "SECRET_KEY",
    "TRIA_DIAGNOSTICS_TOKEN",
    "TRIA_ADMIN_TOKEN",
}
# The secrets each container uses; the service's Redis password is its client's.
USES = {
    "postgres": {"POSTGRES_PASSWORD"},
    "redis": {"REDIS_PASSWORD"},
    "chroma": set(),
    "openai-standin": {"OPENAI_API_KEY"},
    "service": SECRETS - {"POSTGRES_PASSWORD"},
}
# Service settings the compose file leaves out: the addresses it sets itself, the image's
# articles, and an env file path that means nothing in the container.
NOT_PASSED = {"REDIS_URL", "CHROMA_HOST", "CHROMA_PORT", "TRIA_KNOWLEDGE_DIR", "TRIA_ENV_FILE"}


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


def _stack_env() -> dict[str, str]:
    """A filled-in env file: the compose provider's, with the optional admin token too."""
    return {**interpolation_env(specs.StackSecrets.generate()), "TRIA_ADMIN_TOKEN": "admin-" * 4}


def test_no_container_loads_the_env_file_whole(services: dict[str, Any]) -> None:
    assert not [name for name, service in services.items() if "env_file" in service]
    assert set(USES) == set(services)  # each one's secrets are checked below


@pytest.mark.parametrize("name", sorted(USES))
def test_no_service_receives_a_secret_it_does_not_use(services: dict[str, Any], name: str) -> None:
    """Neither as a variable nor inlined by interpolation (into another variable, a command, a
    healthcheck). The service's DATABASE_URL holds the database password: that one it uses."""
    env = _stack_env()
    secrets = {secret: env[secret] for secret in SECRETS}
    uses = USES[name]
    definition = rendered(services[name], env)
    for secret, value in secrets.items():
        needed = secret in uses or any(value in secrets[used] for used in uses)
        assert (value in definition) == needed, f"{name} and {secret}"
    assert set(container_environment(services[name], env)) & SECRETS <= uses


def test_every_variable_of_the_example_reaches_a_container(services: dict[str, Any]) -> None:
    example = read_env_file(ENV_EXAMPLE)
    received = {n for s in services.values() for n in container_environment(s, example)}
    assert set(example) <= received
    assert ENV_EXAMPLE == REPO / ".env.docker.example"
    assert "--env-file .env.docker" in ENV_EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "variable"), [("postgres", "POSTGRES_PASSWORD"), ("redis", "REDIS_PASSWORD")]
)
def test_a_dependency_without_its_password_is_refused_naming_the_fix(
    services: dict[str, Any], name: str, variable: str
) -> None:
    """Compose refuses to interpolate it: a Redis given an empty --requirepass would need none."""
    with pytest.raises(
        ValueError,
        match=rf"required variable {variable} is missing a value: "
        r"set it in \.env\.docker and pass --env-file \.env\.docker",
    ):
        container_environment(services[name], {variable: ""})


def test_the_service_environment_names_exist_in_the_config(services: dict[str, Any]) -> None:
    assert set(services["service"]["environment"]) <= service_variables()
    assert services["service"]["environment"]["TRIA_PORT"] == str(specs.PORTS["service"])
    assert set(services["postgres"]["environment"]) <= IMAGE_VARIABLES


def test_the_service_is_given_every_setting_it_reads(services: dict[str, Any]) -> None:
    given = set(services["service"]["environment"])
    missing = service_variables() - given - NOT_PASSED
    assert not missing, f"add {sorted(missing)} to the service's environment in the compose file"
    assert not given & NOT_PASSED


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
    values = container_environment(services["service"], read_env_file(ENV_EXAMPLE))
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
    given = container_environment(services["service"], interpolation_env(stack))
    assert "POSTGRES_PASSWORD" not in given
    settings: Any = _load_service_config(given, monkeypatch, tmp_path)
    assert urlsplit(settings.asyncpg_dsn()).hostname == "postgres"
    assert urlsplit(settings.asyncpg_dsn()).password == stack.postgres_password
    assert settings.redis_dsn() == f"redis://:{stack.redis_password}@redis:6379/0"
    assert settings.chroma_base_url() == "http://chroma:8000"
    assert settings.openai_endpoint() == "http://openai-standin:8080/v1"
