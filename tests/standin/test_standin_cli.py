"""The ``python -m pytest_tria_deploy.standins.openai`` entry point, as a real subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from openai import AuthenticationError, OpenAI, RateLimitError

MODULE = "pytest_tria_deploy.standins.openai"
CLI_KEY = "sk-cli-standin-key-42"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"stand-in exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail("stand-in did not answer /health within 15 s")


@pytest.fixture(scope="module")
def cli_standin() -> Iterator[str]:
    port = _free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--api-key", CLI_KEY]
    args += ["--fault", "429", "--retry-after", "5", "--log-level", "warning"]
    process = subprocess.Popen([sys.executable, "-m", MODULE, *args])
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_flags_set_key_and_startup_fault(cli_standin: str) -> None:
    with OpenAI(base_url=f"{cli_standin}/v1", api_key=CLI_KEY, max_retries=0) as sdk:
        with pytest.raises(RateLimitError) as limited:
            sdk.models.list()
        httpx.post(f"{cli_standin}/_admin/reset", timeout=5.0).raise_for_status()
        served = sdk.models.list()

    assert limited.value.response.headers["retry-after"] == "5"
    assert "gpt-4o-mini" in {model.id for model in served.data}


def test_cli_key_rejects_other_keys(cli_standin: str) -> None:
    httpx.post(f"{cli_standin}/_admin/reset", timeout=5.0).raise_for_status()

    with (
        OpenAI(base_url=f"{cli_standin}/v1", api_key="sk-other", max_retries=0) as sdk,
        pytest.raises(AuthenticationError),
    ):
        sdk.models.list()


def test_cli_rejects_an_unknown_fault_mode_clearly() -> None:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--port", "1", "--fault", "teapot"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )

    assert result.returncode == 2
    assert "teapot" in result.stderr
    assert "Traceback" not in result.stderr
