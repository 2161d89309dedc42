"""`python -m tria_service --check-config`: the service's own validation, nothing started."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.reliability.secrets_canaries import assert_no_secret, make_canary
from tests.service.helpers import run_python


def _env_file(path: Path, secret_key: str, token: str, port: int) -> Path:
    path.write_text(
        f"DATABASE_URL=postgresql://tria:{token}@127.0.0.1:{port}/tria\n"
        "OPENAI_BASE_URL=http://127.0.0.1:9/v1\n"
        f"OPENAI_API_KEY={token}\n"
        f"SECRET_KEY={secret_key}\n"
        f"TRIA_DIAGNOSTICS_TOKEN={token}\n"
    )
    return path


def test_a_valid_configuration_passes_without_reaching_any_dependency(tmp_path: Path) -> None:
    secret_key = make_canary("SECRET_KEY", "sk").value
    token = make_canary("TOKEN", "tk").value
    # The database is a port nothing listens on: a check that connected would fail.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        env_file = _env_file(tmp_path / "service.env", secret_key, token, port)
        result = run_python(
            "-m", "tria_service", "--check-config", env={"TRIA_ENV_FILE": str(env_file)}
        )
    assert result.returncode == 0, result.stderr
    assert f"configuration valid (environment, then {env_file})" in result.stdout
    assert "critical dependencies: chroma, database, openai, redis" in result.stdout
    assert_no_secret(
        {"stdout": result.stdout, "stderr": result.stderr},
        {"SECRET_KEY": secret_key, "TOKEN": token},
    )


def test_a_placeholder_fails_with_the_services_message_and_exit_2(tmp_path: Path) -> None:
    token = make_canary("TOKEN", "tk").value
    env_file = _env_file(
        tmp_path / "service.env", "replace-me-with-a-generated-secret-key", token, 5
    )
    result = run_python(
        "-m", "tria_service", "--check-config", env={"TRIA_ENV_FILE": str(env_file)}
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Invalid configuration" in result.stderr
    assert "  - SECRET_KEY: is a placeholder, not a secret — generate one with" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_secret({"stderr": result.stderr}, {"TOKEN": token})


def test_help_documents_check_config_and_starts_nothing() -> None:
    result = run_python("-m", "tria_service", "--help", env={})
    assert result.returncode == 0, result.stderr
    assert "usage: python -m tria_service [-h] [--check-config]" in result.stdout
    assert "--check-config" in result.stdout
    assert "exit 0 when valid, 2 when not" in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    "argv", [["--check-config", "--quiet"], ["--bogus"], ["serve"]], ids=" ".join
)
def test_an_unknown_argument_is_a_usage_error_not_a_live_server(
    tmp_path: Path, argv: list[str]
) -> None:
    """Before, any argv other than exactly ``--check-config`` started the service."""
    token = make_canary("TOKEN", "tk").value
    secret_key = make_canary("SECRET_KEY", "sk").value
    env_file = _env_file(tmp_path / "service.env", secret_key, token, 5)
    result = run_python("-m", "tria_service", *argv, env={"TRIA_ENV_FILE": str(env_file)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("usage: python -m tria_service [-h] [--check-config]\n")
    assert "unrecognized arguments" in result.stderr
    assert "configuration valid" not in result.stdout
    assert "Uvicorn running" not in result.stderr
