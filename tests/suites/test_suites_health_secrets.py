"""The health stage's secrets check, against a service that leaks: a secret of the target's env
file in a header, a URL password of that file in a body, an ``sk-`` key nobody registered in
another. Each is named by path and part; no value is shown (neither the leaked ones nor the
target's own), and a clean answer is not named.

The leaking service is a small HTTP server on 127.0.0.1 answering the health paths; the rest of
the target is the session's shared dependencies, which this check never contacts.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler

import pytest

from pytest_tria_deploy.provision.stack import (
    DependencyEndpoints,
    external_target_env,
    external_target_toml,
)
from tests.reliability.secrets_canaries import assert_no_secret
from tests.suites.helpers import copy_suites
from tests.tiny_http import serve_handler

RUN_TIMEOUT_S = 120
# Not shaped like a credential: only the env file says it is one.
ENV_SECRET_KEY = f"envfile{secrets.token_hex(16)}"
ENV_DATABASE_PASSWORD = f"envpw{secrets.token_hex(16)}"
UNREGISTERED_KEY = f"sk-leaked{secrets.token_hex(12)}"
ENV_FILE = (
    f"SECRET_KEY={ENV_SECRET_KEY}\n"
    f"DATABASE_URL=postgresql://tria:{ENV_DATABASE_PASSWORD}@db.internal:5432/tria\n"
)
CLEAN = {"status": "pass", "checks": {}}
# path -> (extra headers, body)
ANSWERS: dict[str, tuple[dict[str, str], object]] = {
    "/health": ({}, CLEAN),
    "/api/v1/health/startup": ({"X-Build-Id": ENV_SECRET_KEY}, CLEAN),
    "/api/v1/health/readiness": ({}, {**CLEAN, "notes": [f"openai key {UNREGISTERED_KEY}"]}),
    "/api/v1/health/diagnostics": ({}, {**CLEAN, "last_error": ENV_DATABASE_PASSWORD}),
}
METRICS = "# TYPE tria_ready gauge\ntria_ready 1.0\n"


class LeakyHealth(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        headers, body = ANSWERS.get(self.path, ({}, None))
        if self.path == "/metrics":
            payload, kind = METRICS.encode(), "text/plain; version=0.0.4"
        elif body is not None:
            payload, kind = json.dumps(body).encode(), "application/health+json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the run's output, not this server's."""


@pytest.fixture
def leaky_service() -> Iterator[str]:
    with serve_handler(LeakyHealth) as url:
        yield url


def test_secrets_in_health_answers_are_found_and_named_without_their_values(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    deps: DependencyEndpoints,
    service_env: Mapping[str, str],
    leaky_service: str,
) -> None:
    settings = {"env_file": "leaky.env"}
    suite = copy_suites(pytester, external_target_toml("leaky", "LEAKY_", settings=settings))
    (suite.path / "leaky.env").write_text(ENV_FILE, encoding="utf-8")
    endpoints = deps.endpoints(
        leaky_service,
        diagnostics_token=service_env["TRIA_DIAGNOSTICS_TOKEN"],
        secret_key=service_env["SECRET_KEY"],
    )
    for name, value in external_target_env("LEAKY_", endpoints).items():
        monkeypatch.setenv(name, value)

    result = suite.runpytest_subprocess(
        "suites",
        "-p",
        "no:cacheprovider",
        "--tria-target=leaky",
        "-k",
        "test_no_secret_in_health_bodies",
        timeout=RUN_TIMEOUT_S,
    )

    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    failure = "AssertionError: secret values in health answers: "
    said = [line for line in result.outlines if line.startswith("E ") and failure in line]
    assert said, result.outlines[-30:]
    found = said[0].partition(failure)[2].split("; ")
    assert sorted(found) == [
        "/api/v1/health/diagnostics body: a secret of the target or its env file",
        "/api/v1/health/readiness body: something shaped like a credential",
        "/api/v1/health/startup headers: a secret of the target or its env file",
    ]
    assert_no_secret(
        {"the run's output": output},
        {
            "the env file's SECRET_KEY": ENV_SECRET_KEY,
            "the env file's database password": ENV_DATABASE_PASSWORD,
            "an unregistered OpenAI key": UNREGISTERED_KEY,
            # pytest prints a failed test's arguments, cutting long ones mid-value
            "the target's SECRET_KEY": service_env["SECRET_KEY"],
            "the target's diagnostics token": service_env["TRIA_DIAGNOSTICS_TOKEN"],
        },
    )
