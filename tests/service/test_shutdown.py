"""SIGTERM: readiness fails at once, new work is still served through the drain delay and refused
after it, in-flight requests finish, the process exits in time."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from tria_service.api.drain import RETRY_AFTER_SECONDS
from tria_service.config import Settings

from pytest_tria_deploy.provision.processes import start_service
from tests.service.helpers import (
    LIFECYCLE_STEPS,
    bearer,
    serve_in_process,
    set_fault,
    wait_until,
)

if TYPE_CHECKING:
    from tests.conftest import FreshDeps

GRACE_SECONDS = 16  # 4 s drain delay, then 9 s of connection drain, then 3 s of callbacks
DRAIN_DELAY_SECONDS = 4.0  # ample time for the checks made during it, on a busy machine
OPENAI_LATENCY_MS = 6000  # slower than the drain delay: the requests are still running when it ends
NEW_WORK_PAUSE_S = 0.1  # between the requests that probe whether new work is still served
# Attempts that mean "not served": no connection, a reset or a close without a response (a
# connection that raced the listener's close), or the gate's 503.
REFUSED_ERRORS = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


def test_sigterm_fails_readiness_at_once_serves_through_the_delay_and_finishes_in_flight_work(
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
            new_work = _new_work_until_refused(f"{server.url}/openapi.json", GRACE_SECONDS)
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
    *served, (refused_at, refusal) = new_work
    assert refusal in (None, 503), new_work  # the attempts stopped because one was refused
    assert served, "no new request was served during the drain delay"
    assert {status for _, status in served} == {200}, new_work
    # served until late in the delay, and refused only once it had elapsed
    assert served[-1][0] - sent > DRAIN_DELAY_SECONDS * 0.75, new_work
    assert refused_at - sent >= DRAIN_DELAY_SECONDS, new_work
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
    assert closed == LIFECYCLE_STEPS[::-1]


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


def _new_work_until_refused(url: str, within: float) -> list[tuple[float, int | None]]:
    """GET ``url`` on a new connection every NEW_WORK_PAUSE_S until one is not served (bounded):
    each attempt's answer time and status, None when no response came."""
    attempts: list[tuple[float, int | None]] = []
    limit = time.monotonic() + within
    while time.monotonic() < limit:
        try:
            status: int | None = httpx.get(url, timeout=5).status_code
        except REFUSED_ERRORS:
            status = None
        attempts.append((time.monotonic(), status))
        if status != 200:
            break
        time.sleep(NEW_WORK_PAUSE_S)
    return attempts


def _refuses(url: str) -> bool:
    """No new work served: the connection is refused, or (when it raced the listener's close and
    sat in the kernel's backlog) reset or closed without a response."""
    try:
        httpx.get(url, timeout=2)
    except REFUSED_ERRORS:
        return True
    return False


async def test_new_work_is_served_through_the_drain_delay_and_refused_after_it(
    make_settings: Callable[..., Settings],
) -> None:
    """The gate keys on the end of the delay: readiness failing alone refuses nothing."""
    settings = make_settings(TRIA_HEALTH_REFRESH_INTERVAL="3600", TRIA_HEALTH_TTL="3600")
    async with serve_in_process(settings) as running:
        client = running.client
        running.lifecycle.begin_drain()  # SIGTERM: readiness fails, the delay begins
        during_ready = await client.get("/api/v1/health/readiness")
        during = await client.get("/openapi.json")
        running.lifecycle.stop_accepting()  # the delay has elapsed
        refused = await client.get("/openapi.json")
        ready = await client.get("/api/v1/health/readiness")
        live = await client.get("/health")
        metrics = await client.get("/metrics")
        diagnostics = await client.get("/api/v1/health/diagnostics", headers=running.auth())

    assert during_ready.status_code == 503
    assert during.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert refused.headers["connection"] == "close"
    assert "shutting down" in refused.json()["detail"]
    assert ready.status_code == 503
    assert live.status_code == 200
    assert metrics.status_code == 200
    assert diagnostics.status_code == 503
    assert diagnostics.json()["details"]["shutting_down"] is True
