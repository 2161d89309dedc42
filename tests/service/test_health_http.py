"""`python -m tria_service` over real HTTP: endpoints, secrets, a dependency lost and regained."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from pytest_tria_deploy.provision.processes import free_port, start_service
from tests.reliability.secrets_canaries import assert_no_secret
from tests.service.helpers import (
    CHECK_KEYS,
    HEALTH_JSON,
    NO_DRAIN_DELAY,
    assert_ietf_shape,
    bearer,
    metric,
    planted_secrets,
    wait_until,
)

if TYPE_CHECKING:
    from tests.conftest import FreshDeps

READINESS = "/api/v1/health/readiness"
DIAGNOSTICS = "/api/v1/health/diagnostics"


def _exit_code_and_log(workdir: Path, env: Mapping[str, str]) -> tuple[int | None, str]:
    """A start expected to fail: wait for the exit, not for readiness; the code and the log."""
    server = start_service(workdir, env, wait_ready=False)
    try:
        code = server.wait_exit(60)
    finally:
        server.stop()
    return code, server.process.log_path.read_text()


def test_service_serves_health_over_http_and_never_leaks_a_secret(
    tmp_path: Path,
    service_env: Mapping[str, str],
    fresh_deps: FreshDeps,
    canaries: dict[str, str],
) -> None:
    own = fresh_deps("openai")
    env = {**service_env, **own.env(), **canaries, **NO_DRAIN_DELAY}
    server = start_service(tmp_path, env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            live = client.get("/health")
            startup = client.get("/api/v1/health/startup")
            ready = client.get(READINESS)
            metrics = client.get("/metrics")
            anonymous = client.get(DIAGNOSTICS)
            wrong = client.get(DIAGNOSTICS, headers={"Authorization": "Bearer not-the-token"})
            diagnostics = client.get(DIAGNOSTICS, headers=bearer(env))
    finally:
        server.stop()
    log = server.process.log_path.read_text()

    for response in (live, startup, ready, diagnostics):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == HEALTH_JSON
    assert_ietf_shape(ready.json(), CHECK_KEYS)
    assert ready.json()["overall_healthy"] is True
    assert_ietf_shape(diagnostics.json(), CHECK_KEYS)
    assert metric(metrics.text, "tria_ready") == 1.0
    for response in (anonymous, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    assert env["OPENAI_API_KEY"] == own.openai_api_key
    planted = planted_secrets(env, canaries)
    assert_no_secret(
        {
            "the diagnostics body": diagnostics.text,
            "the 401 without a token": anonymous.text,
            "the 401 for a wrong token": wrong.text,
            "the service log": log,
        },
        {f"planted secret {n}": secret for n, secret in enumerate(planted)},
    )
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines
    events = [json.loads(line) for line in lines]  # every log line is one JSON object
    assert any(e.get("event") == "startup_complete" for e in events)


def test_readiness_follows_redis_down_and_back_while_liveness_stays_up(
    tmp_path: Path, service_env: Mapping[str, str], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("redis")
    redis_server = own.servers.redis
    assert redis_server is not None
    env = {
        **service_env,
        **own.env(),
        # A TTL far longer than the interval: only the background refresh can notice in time.
        "TRIA_HEALTH_REFRESH_INTERVAL": "1",
        "TRIA_HEALTH_TTL": "60",
        "TRIA_TIMEOUT_REDIS": "1",
        **NO_DRAIN_DELAY,
    }
    server = start_service(tmp_path, env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get(READINESS).status_code == 200

            redis_server.kill()
            killed = time.monotonic()
            assert wait_until(lambda: client.get(READINESS).status_code == 503, within=30)
            noticed_after = time.monotonic() - killed
            down = client.get(READINESS)
            live = client.get("/health")

            redis_server.restart()
            assert wait_until(lambda: client.get(READINESS).status_code == 200, within=30)
            back = client.get(READINESS)
    finally:
        server.stop()

    # One refresh interval plus the probe's timeout, with slack for a loaded CI machine; a
    # request-driven refresh would only notice after the 60 s TTL.
    assert noticed_after < 1 + 1 + 4, f"readiness noticed after {noticed_after:.1f}s"
    body = down.json()
    assert body["status"] == "fail"
    assert body["overall_healthy"] is False
    assert body["description"] == "readiness: not ready: redis unhealthy"
    redis_check = body["checks"]["redis:responseTime"][0]
    assert redis_check["status"] == "fail"
    assert redis_check["output"]
    assert body["checks"]["postgresql:responseTime"][0]["status"] == "pass"
    assert live.status_code == 200
    assert live.json()["status"] == "pass"
    assert back.json()["checks"]["redis:responseTime"][0]["status"] == "pass"


def test_startup_is_refused_when_a_dependency_is_down(
    tmp_path: Path, service_env: Mapping[str, str]
) -> None:
    dead_port = free_port()
    env = {**service_env, "REDIS_URL": f"redis://127.0.0.1:{dead_port}/0"}
    code, log = _exit_code_and_log(tmp_path, env)

    assert code == 1, log
    assert f"redis: connection refused at 127.0.0.1:{dead_port}" in log
    assert "check REDIS_URL" in log
    assert "Traceback" not in log


def test_bad_configuration_lists_every_problem_and_exits_2(
    tmp_path: Path, service_env: Mapping[str, str]
) -> None:
    env = {
        **service_env,
        # Too short, and distinctive: a failed start registers it for redaction process-wide.
        "SECRET_KEY": "Xq7-too-short-key",
        "TRIA_TIMEOUT_REDIS": "-1",
        "TRIA_SHUTDOWN_DRAIN_DELAY": "soon",
    }
    code, log = _exit_code_and_log(tmp_path, env)

    assert code == 2, log
    assert "3 problems" in log
    for var in ("SECRET_KEY:", "TRIA_TIMEOUT_REDIS:", "TRIA_SHUTDOWN_DRAIN_DELAY:"):
        assert var in log
    assert "Traceback" not in log
    assert "soon" not in log
