"""``tria-deploy targets``: every target listed, unset secret variables named, no value shown."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.cli.conftest import clean_env, tria_deploy
from tests.reliability.secrets_canaries import assert_no_secret

TRIA_TOML = """
[targets.canary]
provider = "external"
description = "a deployment whose secrets come from the environment"
service_url = "http://127.0.0.1:9"
database_url = "${CLI_CANARY_DATABASE_URL}"
redis_url = "redis://:${CLI_CANARY_REDIS_PASSWORD}@127.0.0.1:9/0"
openai_api_key = "${CLI_CANARY_OPENAI_KEY}"
chroma_url = "http://127.0.0.1:9"
diagnostics_token = "${CLI_CANARY_TOKEN}"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tria.toml").write_text(TRIA_TOML)
    return tmp_path


@pytest.fixture
def planted() -> dict[str, str]:
    """Canary values for every variable the canary target reads."""
    password = secrets.token_hex(12)
    return {
        "CLI_CANARY_DATABASE_URL": f"postgresql://tria:{password}@db.example:5432/tria",
        "CLI_CANARY_REDIS_PASSWORD": secrets.token_hex(12),
        "CLI_CANARY_OPENAI_KEY": "sk-" + secrets.token_hex(16),
        "CLI_CANARY_TOKEN": secrets.token_hex(16),
    }


def test_an_unset_variable_is_named_and_fails(project: Path, planted: dict[str, str]) -> None:
    given = {name: value for name, value in planted.items() if name != "CLI_CANARY_TOKEN"}
    result = tria_deploy("targets", cwd=project, env=clean_env(given))
    assert result.returncode == 1, result.stdout + result.stderr
    for name in ("local", "containers", "compose", "canary"):
        assert f"│ {name} " in result.stdout
    assert "1 unresolved" in result.stdout
    problem = "target 'canary': CLI_CANARY_TOKEN is not set (used by diagnostics_token)"
    assert problem in result.stderr  # problems on stderr, as every command prints them
    assert problem not in result.stdout
    assert_no_secret({"stdout": result.stdout, "stderr": result.stderr}, given)


def test_set_variables_resolve_and_no_value_is_printed(
    project: Path, planted: dict[str, str]
) -> None:
    result = tria_deploy("targets", "canary", cwd=project, env=clean_env(planted))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "│ canary " in result.stdout
    assert "resolved" in result.stdout
    assert "│ local " not in result.stdout  # only the targets named
    assert_no_secret({"stdout": result.stdout, "stderr": result.stderr}, planted)


def test_only_the_named_targets_are_checked(project: Path) -> None:
    result = tria_deploy("targets", "local", "compose", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "canary" not in result.stdout


@pytest.mark.parametrize(
    ("args", "toml", "expected"),
    [
        (["canry"], TRIA_TOML, "unknown target 'canry'; known: local, containers, compose, canary"),
        ([], "[targets.bad]\nprovider = 'moon'\n", "targets.bad: provider"),
        ([], "[targets\n", "does not parse"),
        (["--config", "missing.toml"], "", "'--config'"),
    ],
)
def test_config_and_name_mistakes_are_usage_errors(
    tmp_path: Path, args: list[str], toml: str, expected: str
) -> None:
    (tmp_path / "tria.toml").write_text(toml)
    result = tria_deploy("targets", *args, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert expected in result.stderr


def test_the_targets_file_comes_from_the_ini_key_verify_reads(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ntria_config = conf/targets.toml\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "targets.toml").write_text('[targets.from_ini]\nprovider = "local"\n')
    result = tria_deploy("targets", "from_ini", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "│ from_ini " in result.stdout
    assert "conf/targets.toml" in result.stdout  # the caption names the file read
