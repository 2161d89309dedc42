"""What the stage modules share: the expected facts, the variables the target gives its
service, its env file's secrets, and baselines.

The client fixtures (``pg``, ``redis_client``, ``service``...) and the measuring helpers
(``pytest_tria_deploy.helpers``) come from the plugin; only suite-level facts live here.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from pytest_tria_deploy.baselines import BASELINES_FILE, BaselineUpdate, update_baseline
from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import SECRET_NAME, EnvFile, SecretValues, read_env_file
from pytest_tria_deploy.redact import MIN_SECRET_LENGTH, register_secrets
from pytest_tria_deploy.runstate import settings_of
from pytest_tria_deploy.targets import Target

EXPECTED_SCHEMA = Path(__file__).with_name("expected_schema.toml")
EXPECTED_ANSWERS = Path(__file__).with_name("expected_answers.toml")
# Env-file variables whose values are registered with the redactor as secrets.

# The variables by which an env file says where Redis and Chroma are, instead of the URL.
CONNECTION_VARIABLES = {
    "REDIS_URL": {"REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB"},
    "CHROMA_URL": {"CHROMA_URL", "CHROMA_HOST", "CHROMA_PORT"},
}


@pytest.fixture(scope="session")
def expected_schema() -> dict[str, Any]:
    """What a migrated database must hold (suites/expected_schema.toml)."""
    return tomllib.loads(EXPECTED_SCHEMA.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def expected_answers() -> dict[str, Any]:
    """What the service must answer to known messages (suites/expected_answers.toml)."""
    return tomllib.loads(EXPECTED_ANSWERS.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def target_env_file(request: pytest.FixtureRequest, tria_target: Target) -> Path | None:
    """The env file the target (or its provider) names, relative to the rootdir; None if none."""
    named = tria_target.env_file
    if named is None:
        endpoints: Endpoints = request.getfixturevalue("tria_endpoints")
        named = endpoints.env_file
    if not named:
        return None
    path = Path(named).expanduser()
    return path if path.is_absolute() else request.config.rootpath / path


@pytest.fixture(scope="session")
def env_file(target_env_file: Path | None) -> EnvFile:
    """The target's env file, parsed; skips when the target names none or it cannot be read."""
    if target_env_file is None:
        pytest.skip("the target names no env_file (set env_file in its tria.toml table)")
    try:
        parsed = read_env_file(target_env_file)
    except (OSError, UnicodeDecodeError) as exc:
        pytest.skip(f"env file {target_env_file} cannot be read ({type(exc).__name__})")
    register_secrets(v for k, v in parsed.values.items() if SECRET_NAME.search(k) and v)
    return parsed


@pytest.fixture(scope="session")
def env_file_secrets(target_env_file: Path | None) -> SecretValues:
    """The secret values of the target's env file: secret-named variables and the passwords in
    its URLs. None when the target names no file or it cannot be read (preflight fails then)."""
    if target_env_file is None:
        return SecretValues()
    try:
        values = read_env_file(target_env_file).values
    except (OSError, UnicodeDecodeError):
        return SecretValues()
    found = [value for name, value in values.items() if SECRET_NAME.search(name)]
    for value in values.values():
        try:
            password = urlsplit(value).password
        except ValueError:  # not a URL the stdlib can take apart
            continue
        if password:
            found += [password, unquote(password)]
    return SecretValues(sorted({value for value in found if len(value) >= MIN_SECRET_LENGTH}))


@pytest.fixture(scope="session")
def service_variables(
    request: pytest.FixtureRequest, tria_endpoints: Endpoints, target_env_file: Path | None
) -> dict[str, str]:
    """The variables the target gives its service: its env file's values over what its
    endpoints imply."""
    implied = {
        "DATABASE_URL": tria_endpoints.database_url.get_secret_value(),
        "REDIS_URL": tria_endpoints.redis_url.get_secret_value(),
        "OPENAI_API_KEY": tria_endpoints.openai_api_key.get_secret_value(),
        "OPENAI_BASE_URL": tria_endpoints.openai_base_url or "",
        "CHROMA_URL": tria_endpoints.chroma_url,
    }
    for name, secret in (
        ("SECRET_KEY", tria_endpoints.secret_key),
        ("TRIA_DIAGNOSTICS_TOKEN", tria_endpoints.diagnostics_token),
    ):
        if secret is not None:
            implied[name] = secret.get_secret_value()
    if target_env_file is None:
        return implied
    parsed: EnvFile = request.getfixturevalue("env_file")
    # A file that configures Redis or Chroma its own way (REDIS_HOST...) replaces the URL the
    # endpoints imply: the service would never see that URL.
    for implied_url, own_way in CONNECTION_VARIABLES.items():
        if own_way & parsed.values.keys():
            implied.pop(implied_url)
    return {**implied, **parsed.values}


@pytest.fixture
def latency_baseline(
    request: pytest.FixtureRequest, tria_target: Target, tria_warn: Callable[[str], None]
) -> BaselineUpdate:
    """Store a latency as this target's baseline and compare it with the last run's
    (``<report dir>/baselines.json``); a p99 more than 2x the last one is a warning."""
    path = settings_of(request.config).report_dir / BASELINES_FILE
    return functools.partial(update_baseline, path, tria_target.name, warn=tria_warn)
