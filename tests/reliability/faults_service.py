"""What the service must do in each cell of the fault matrix: the matrix's service column.

Each check takes the cell's ``Faulted`` situation, asserts, and returns what it measured (seconds
and milliseconds, for the test's recorded properties). Timing is asserted only where a timeout or
a refresh firing is the behaviour, against generous bounds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from tria_service.production.diagnostics import COMPONENT_CHECK_TIMEOUT_SECONDS

from pytest_tria_deploy.provision.processes import start_service
from tests.reliability.faults_inject import (
    READINESS,
    REFRESH_INTERVAL_S,
    SLOW_FRACTION,
    SLOW_TIMEOUT_S,
    Faulted,
)
from tests.reliability.faults_matrix import Fault
from tests.reliability.secrets_canaries import assert_no_secret
from tests.service.helpers import bearer

DIAGNOSTICS = "/api/v1/health/diagnostics"
EXIT_STARTUP_REFUSED = 1
# Slack on top of what the service is configured to take, for a loaded 2-core machine.
SLACK_S = 4.0
# What "not delayed" means for the healthy dependencies' checks while another one hangs.
SMALL_MS = 1000.0
# The monitor's own cut-off beyond a probe's timeout (health_monitor.TIMEOUT_SLACK_SECONDS).
MONITOR_SLACK_S = 0.5
# dies, comes back: a stopped process refuses at once (and a restarted one answers at once),
# so the change is seen within one refresh interval, plus slack for a loaded machine.
NOTICE_SLACK_S = 2.0
# How often readiness is timed while a dependency hangs: the fastest answer is the one that
# says whether readiness waits for the probe (a single one may meet a scheduler hiccup).
READINESS_SAMPLES = 3

Measured = dict[str, float]


def refused_start(state: Faulted) -> tuple[int | None, str]:
    """Start the service on the faulted env; its exit code and everything it printed."""
    server = start_service(state.workdir, state.env, wait_ready=False)
    try:
        code = server.wait_exit(60)
    finally:
        server.stop()
    return code, server.process.log_path.read_text()


def check_down_at_startup(state: Faulted) -> Measured:
    """Refuses to start (exit 1), names the dependency, its address and variable; no traceback."""
    started = time.monotonic()
    code, log = refused_start(state)
    took = time.monotonic() - started
    dep = state.dependency
    assert code == EXIT_STARTUP_REFUSED, log
    assert f"{dep.name}: connection refused at 127.0.0.1:{state.dead_port}" in log, log
    assert f"check {dep.url_var}" in log, log
    assert "Traceback" not in log, log
    return {"refused_after_s": took}


def check_wrong_credentials(state: Faulted) -> Measured:
    """Refuses to start with an auth error naming the dependency and the variable; the wrong
    secret appears nowhere in what the service printed."""
    started = time.monotonic()
    code, log = refused_start(state)
    took = time.monotonic() - started
    dep = state.dependency
    assert state.planted is not None
    assert code == EXIT_STARTUP_REFUSED, log
    assert f"{dep.name}: authentication failed" in log, log
    assert f"check the password in {dep.credential_var}" in log or (
        f"check {dep.credential_var}" in log
    ), log
    assert "Traceback" not in log, log
    assert_no_secret({"the service's log": log}, {"the wrong secret": state.planted})
    return {"refused_after_s": took}


def check_dies(state: Faulted) -> Measured:
    """Liveness stays 200; readiness goes to 503 within a refresh interval (plus slack: the
    stopped process refuses at once); readiness and diagnostics name the dependency."""
    dep, client = state.dependency, _client(state)
    with client:
        readiness, noticed_after, liveness = _poll_until(
            client, lambda r: r.status_code == 503, state.since, REFRESH_INTERVAL_S + NOTICE_SLACK_S
        )
        diagnostics = client.get(DIAGNOSTICS, headers=bearer(state.env))
    assert all(code == 200 for code in liveness), f"liveness answered {liveness}"
    body = readiness.json()
    assert body["status"] == "fail"
    assert body["overall_healthy"] is False
    assert dep.name in body["description"], body["description"]
    failed = body["checks"][dep.check][0]
    assert failed["status"] == "fail"
    assert failed["output"], "the failed check says nothing about why"
    others = {key: c[0]["status"] for key, c in body["checks"].items() if key != dep.check}
    assert "fail" not in others.values(), others
    _assert_diagnostics_name(diagnostics, state)
    return {"readiness_503_after_s": noticed_after}


def check_comes_back(state: Faulted) -> Measured:
    """Readiness returns to 200 on its own once the dependency is back, within a refresh
    interval (plus slack), with no service restart."""
    dep, client = state.dependency, _client(state)
    assert state.service is not None
    with client:
        readiness, back_after, liveness = _poll_until(
            client, lambda r: r.status_code == 200, state.since, REFRESH_INTERVAL_S + NOTICE_SLACK_S
        )
        uptime = client.get("/health").json()["checks"]["uptime"][0]["observedValue"]
    assert all(code == 200 for code in liveness), f"liveness answered {liveness}"
    assert readiness.json()["checks"][dep.check][0]["status"] in {"pass", "warn"}
    assert state.service.process.alive()
    assert state.service.process.pid == state.service_pid, "the service was restarted"
    assert uptime > time.monotonic() - state.since, "the service's uptime began after the fault"
    return {"readiness_200_after_s": back_after}


def check_hangs(state: Faulted) -> Measured:
    """The hanging dependency's probe times out on time (its TRIA_TIMEOUT_*), readiness keeps
    answering at once, and the other dependencies' checks go on, fast and fresh."""
    dep, timeout, client = state.dependency, state.timeout, _client(state)
    timed_out = f"timed out after {timeout:.1f}s"
    with client:
        readiness, noticed_after, _ = _poll_until(
            client,
            lambda r: r.json()["checks"][dep.check][0]["output"].startswith(timed_out),
            state.since,
            REFRESH_INTERVAL_S + timeout + MONITOR_SLACK_S + SLACK_S,
        )
        _assert_others_undelayed(readiness.json(), state, asked_at=datetime.now(UTC))
        answered_in = min(
            _timed(lambda: client.get(READINESS))[1] for _ in range(READINESS_SAMPLES)
        )
        asked_at = datetime.now(UTC)
        diagnostics, diagnostics_took = _timed(
            lambda: client.get(DIAGNOSTICS, headers=bearer(state.env))
        )
    _assert_others_undelayed(diagnostics.json(), state, asked_at)
    assert readiness.status_code == 503
    assert answered_in < 1.0, f"readiness took at best {answered_in:.2f}s while {dep.name} hangs"
    hung = readiness.json()["checks"][dep.check][0]
    assert hung["status"] == "fail"
    assert timeout * 900 <= hung["observedValue"] <= (timeout + MONITOR_SLACK_S + 1) * 1000, hung
    # diagnostics waits once: for the probe, and alongside it for the component sections
    assert diagnostics_took <= max(timeout, COMPONENT_CHECK_TIMEOUT_SECONDS) + SLACK_S
    body = diagnostics.json()
    assert diagnostics.status_code == 503
    assert body["checks"][dep.check][0]["output"].startswith(timed_out), body["checks"]
    assert f"TRIA_TIMEOUT_{dep.name.upper()}" in body["details"]["dependencies"][dep.name]["hint"]
    return {
        "timeout_seen_after_s": noticed_after,
        "hung_probe_ms": float(hung["observedValue"]),
        "diagnostics_s": diagnostics_took,
    }


def check_slow(state: Faulted) -> Measured:
    """Slower than its budget but within its timeout: warn, not fail; readiness stays 200."""
    dep, client = state.dependency, _client(state)
    budget_ms = SLOW_TIMEOUT_S * SLOW_FRACTION * 1000
    with client:
        first, warned_after, _ = _poll_until(
            client,
            lambda r: r.json()["checks"][dep.check][0]["status"] == "warn",
            state.since,
            REFRESH_INTERVAL_S + SLOW_TIMEOUT_S + SLACK_S,
        )
        later = [first]
        for _ in range(2):  # across later refreshes it stays a warning, never a failure
            time.sleep(REFRESH_INTERVAL_S)
            later.append(client.get(READINESS))
    latencies = []
    for response in later:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "warn"
        assert body["overall_healthy"] is True
        slow = body["checks"][dep.check][0]
        assert slow["status"] == "warn", slow
        assert re.fullmatch(rf"slow: \d+ ms over the {budget_ms:.0f} ms budget", slow["output"])
        assert budget_ms < slow["observedValue"] < SLOW_TIMEOUT_S * 1000
        latencies.append(float(slow["observedValue"]))
    assert f"{dep.name} degraded" in first.json()["description"]
    return {"warn_after_s": warned_after, "slow_probe_ms": max(latencies)}


SERVICE_CHECKS: dict[Fault, Callable[[Faulted], Measured]] = {
    Fault.DOWN_AT_STARTUP: check_down_at_startup,
    Fault.DIES: check_dies,
    Fault.COMES_BACK: check_comes_back,
    Fault.HANGS: check_hangs,
    Fault.SLOW: check_slow,
    Fault.WRONG_CREDENTIALS: check_wrong_credentials,
}


def _client(state: Faulted) -> httpx.Client:
    assert state.service is not None, "a run-time check needs the cell's running service"
    return httpx.Client(base_url=state.service.url, timeout=30)


def _poll_until(
    client: httpx.Client, done: Callable[[httpx.Response], bool], since: float, within: float
) -> tuple[httpx.Response, float, list[int]]:
    """Readiness until ``done``, with liveness asked between; the response that was done, the
    seconds from ``since`` to it, and every liveness status seen. Fails ``within`` seconds after
    ``since``."""
    deadline = since + within
    liveness: list[int] = []
    response = client.get(READINESS)
    while not done(response):
        assert time.monotonic() < deadline, f"not seen within {within:.1f}s: {response.text}"
        liveness.append(client.get("/health").status_code)
        time.sleep(0.05)
        response = client.get(READINESS)
    return response, time.monotonic() - since, liveness


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _assert_diagnostics_name(diagnostics: httpx.Response, state: Faulted) -> None:
    dep = state.dependency
    assert diagnostics.status_code == 503, diagnostics.text
    body = diagnostics.json()
    assert dep.name in body["description"], body["description"]
    assert body["checks"][dep.check][0]["status"] == "fail"
    section = body["details"]["dependencies"][dep.name]
    assert section["status"] == "unhealthy"
    assert section["last_error"], section
    assert dep.url_var in (section["hint"] or ""), section


def _assert_others_undelayed(body: dict[str, Any], state: Faulted, asked_at: datetime) -> None:
    """The healthy dependencies' checks are fast, and were recent when the body was asked for:
    their refreshes were not held up by the hanging one."""
    for key, (check,) in body["checks"].items():
        if key == state.dependency.check:
            continue
        assert check["status"] in {"pass", "warn"}, (key, check)
        assert check["observedValue"] < SMALL_MS, (key, check)
        age = (asked_at - datetime.fromisoformat(check["time"])).total_seconds()
        assert age < REFRESH_INTERVAL_S + SLACK_S, (key, age)
