"""SIGTERM: readiness fails at once, new work is refused, in-flight requests finish, the process
exits in time."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from pytest_tria_deploy.provision.processes import start_service
from tests.service.helpers import bearer, set_fault, wait_until

if TYPE_CHECKING:
    from tests.conftest import FreshDeps

GRACE_SECONDS = 16  # 4 s drain delay, then 9 s of connection drain, then 3 s of callbacks
DRAIN_DELAY_SECONDS = 4.0  # ample time for the checks made during it, on a busy machine
OPENAI_LATENCY_MS = 6000  # slower than the drain delay: the requests are still running when it ends


def test_sigterm_fails_readiness_at_once_and_lets_in_flight_requests_finish(
    tmp_path: Path, service_env: Mapping[str, str], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("openai")
    standin = own.servers.openai
    assert standin is not None
    env = {
        **service_env,
        **own.env(),
        "TRIA_SHUTDOWN_GRACE": str(GRACE_SECONDS),
        "TRIA_SHUTDOWN_DRAIN_DELAY": str(DRAIN_DELAY_SECONDS),
        "TRIA_HEALTH_REFRESH_INTERVAL": "60",
        "TRIA_TIMEOUT_OPENAI": "20",  # the slow probe must outlast the drain, not time out
    }
    server = start_service(tmp_path, env)
    diagnostics_url = f"{server.url}/api/v1/health/diagnostics"
    readiness_url = f"{server.url}/api/v1/health/readiness"
    try:
        _reset(standin.url)  # count only the probes the requests below start
        set_fault(standin, "latency", latency_ms=OPENAI_LATENCY_MS)
        with ThreadPoolExecutor(max_workers=3) as pool:
            in_flight = [
                pool.submit(httpx.get, diagnostics_url, headers=bearer(env), timeout=30)
                for _ in range(3)
            ]
            assert wait_until(lambda: _models_requests(standin.url) >= 1, within=10)

            sent = time.monotonic()
            os.kill(server.process.pid, signal.SIGTERM)
            during_drain = httpx.get(readiness_url, timeout=10)
            liveness = httpx.get(f"{server.url}/health", timeout=10)
            new_work = httpx.get(f"{server.url}/openapi.json", timeout=10)
            refused = wait_until(lambda: _refuses(readiness_url), within=GRACE_SECONDS)
            finished = [future.result() for future in in_flight]
        code = server.process.wait(GRACE_SECONDS + 10)
        took = time.monotonic() - sent
    finally:
        server.stop()
    log = server.process.log_path.read_text()

    assert during_drain.status_code == 503
    assert during_drain.json()["overall_healthy"] is False
    assert "shutting down" in during_drain.json()["description"]
    assert liveness.status_code == 200
    assert new_work.status_code == 503
    assert int(new_work.headers["retry-after"]) > 0
    assert refused, "new connections were still accepted after the drain delay"
    latencies = []
    for response in finished:
        body = response.json()  # a complete response, not a dropped connection
        assert response.status_code == 503
        assert body["details"]["shutting_down"] is True
        latencies.append(body["details"]["dependencies"]["openai"]["latency_ms"])
    # the request whose probe was running when SIGTERM came got that slow probe's result
    # (a request the client only got through after the signal is served from the cache)
    assert max(latencies) >= OPENAI_LATENCY_MS * 0.9
    assert code in (0, -signal.SIGTERM), log
    assert took < GRACE_SECONDS + 5
    events = [json.loads(line) for line in log.splitlines() if line.strip()]
    closed = [e["component"] for e in events if e.get("event") == "shutdown_callback_done"]
    assert closed == [
        "chat.agent",
        "chat.knowledge",
        "chat.intent-classifier",
        "chat.sessions",
        "health-monitor",
        "clients",
    ]


def test_a_request_longer_than_the_grace_period_does_not_keep_the_process(
    tmp_path: Path, service_env: Mapping[str, str], fresh_deps: FreshDeps
) -> None:
    grace = "2"
    own = fresh_deps("openai")
    standin = own.servers.openai
    assert standin is not None
    env = {
        **service_env,
        **own.env(),
        "TRIA_SHUTDOWN_GRACE": grace,  # the drain delay defaults to a quarter of it
        "TRIA_TIMEOUT_OPENAI": "30",
    }
    server = start_service(tmp_path, env)
    try:
        _reset(standin.url)
        set_fault(standin, "hang")
        with ThreadPoolExecutor(max_workers=1) as pool:
            stuck = pool.submit(
                httpx.get,
                f"{server.url}/api/v1/health/diagnostics",
                headers=bearer(env),
                timeout=60,
            )
            assert wait_until(lambda: _models_requests(standin.url) >= 1, within=10)
            sent = time.monotonic()
            os.kill(server.process.pid, signal.SIGTERM)
            code = server.process.wait(float(grace) + 15)
            took = time.monotonic() - sent
            with pytest.raises(httpx.HTTPError):
                stuck.result().raise_for_status()
    finally:
        set_fault(standin, "none")
        server.stop()

    assert code is not None
    assert took < float(grace) + 5


def _reset(standin_url: str) -> None:
    httpx.post(f"{standin_url}/_admin/reset", timeout=5).raise_for_status()


def _models_requests(standin_url: str) -> int:
    stats = httpx.get(f"{standin_url}/_admin/stats", timeout=5).json()
    return int(stats["models"])


def _refuses(url: str) -> bool:
    """No new work served: the connection is refused, or (when it raced the listener's close and
    sat in the kernel's backlog) reset or closed without a response."""
    try:
        httpx.get(url, timeout=2)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        return True
    return False
