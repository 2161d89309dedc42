"""`python -m tria_service --check-config`: the service's own validation, nothing started."""

from __future__ import annotations

import socket
from pathlib import Path

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
