"""Health, for each service instance: liveness, readiness, startup, diagnostics, metrics, and
bodies in the IETF health+json form with no secret in them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import (
    DIAGNOSTICS,
    Record,
    SecretValues,
    Warn,
    stopwatch,
    warn_over_budget,
)
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.report.attach import attach_json
from pytest_tria_deploy.targets import Budgets

HEALTH_JSON = "application/health+json"
LIVENESS = "/health"
STARTUP = "/api/v1/health/startup"
READINESS = "/api/v1/health/readiness"
# What readiness says of the release (health+json) -> the property recorded for it.
RELEASE_FIELDS = {"service.version": "version", "service.release": "releaseId"}


def bearer(endpoints: Endpoints) -> dict[str, str]:
    token = endpoints.diagnostics_token
    assert token is not None, "the target has no diagnostics_token: set it in tria.toml"
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


@pytest_asyncio.fixture(loop_scope="session")
async def bodies(
    service: httpx.AsyncClient, tria_endpoints: Endpoints
) -> dict[str, httpx.Response]:
    """Every health answer of this instance, diagnostics with the token."""
    paths = (LIVENESS, STARTUP, READINESS, DIAGNOSTICS)
    token = bearer(tria_endpoints)
    answers = await asyncio.gather(
        *(service.get(path, headers=token if path == DIAGNOSTICS else None) for path in paths)
    )
    return dict(zip(paths, answers, strict=True))


async def test_health_endpoint(
    service: httpx.AsyncClient, tria_budget: Budgets, tria_record: Record, tria_warn: Warn
) -> None:
    """Liveness (/health) answers 200 within the liveness budget (over it: a warning)."""
    with stopwatch() as took:
        answer = await service.get(LIVENESS)
    tria_record("liveness_ms", round(took.ms, 1), "ms")
    assert answer.status_code == 200, f"liveness answered {answer.status_code}: {answer.text}"
    warn_over_budget(
        tria_warn, "liveness", "liveness_ms", tria_budget.liveness_ms, took.ms, record=tria_record
    )


async def test_readiness(
    service: httpx.AsyncClient, tria_budget: Budgets, tria_record: Record, tria_warn: Warn
) -> None:
    """Readiness answers 200 with every check passing (degraded, or over its budget: a
    warning)."""
    with stopwatch() as took:
        answer = await service.get(READINESS)
    tria_record("readiness_ms", round(took.ms, 1), "ms")
    body = _body(answer)
    attach_json("readiness", {"status_code": answer.status_code, "body": body})
    _record_release(body, tria_record)
    assert answer.status_code == 200, f"readiness answered {answer.status_code}: {answer.text}"
    checks = [(key, entry) for key, entries in answer.json()["checks"].items() for entry in entries]
    failing = [f"{key}: {entry['output']}" for key, entry in checks if entry["status"] == "fail"]
    assert not failing, f"readiness checks failing: {'; '.join(failing)}"
    for key, entry in checks:
        if entry["status"] != "pass":
            tria_warn(f"readiness: {key} is {entry['status']}: {entry['output']}")
    warn_over_budget(
        tria_warn,
        "readiness",
        "readiness_ms",
        tria_budget.readiness_ms,
        took.ms,
        record=tria_record,
    )


async def test_startup_probe(bodies: dict[str, httpx.Response]) -> None:
    """The startup probe answers 200: startup validated every critical dependency."""
    answer = bodies[STARTUP]
    assert answer.status_code == 200, f"startup probe answered {answer.status_code}: {answer.text}"


async def test_diagnostics_need_the_token(service: httpx.AsyncClient) -> None:
    """Diagnostics answer 401 without the token."""
    answer = await service.get(DIAGNOSTICS)
    assert answer.status_code == 401, f"diagnostics without a token answered {answer.status_code}"


async def test_diagnostics_every_dependency_healthy(
    bodies: dict[str, httpx.Response], expected_answers: dict[str, Any], tria_warn: Warn
) -> None:
    """Diagnostics (with the token) report every dependency present and healthy."""
    dependencies: list[str] = expected_answers["health"]["dependencies"]
    answer = bodies[DIAGNOSTICS]
    assert answer.status_code == 200, f"diagnostics answered {answer.status_code}"
    body = answer.json()
    attach_json("diagnostics", body)
    reported = body["details"]["dependencies"]
    status = {name: reported.get(name, {}).get("status", "not reported") for name in dependencies}
    problems = [
        f"{name}: {state} ({reported.get(name, {}).get('last_error')}; "
        f"hint: {reported.get(name, {}).get('hint')})"
        for name, state in status.items()
        if state not in ("healthy", "degraded")
    ]
    assert not problems, f"diagnostics: {'; '.join(problems)}"
    for name, state in status.items():
        if state == "degraded":
            tria_warn(f"diagnostics: {name} is degraded ({reported[name]['latency_ms']} ms)")


async def test_no_secret_in_health_bodies(
    bodies: dict[str, httpx.Response],
    service: httpx.AsyncClient,
    tria_secrets: SecretValues,
    env_file_secrets: SecretValues,
) -> None:
    """No secret value appears in any health body or header, nor in /metrics."""
    answers = {**bodies, "/metrics": await service.get("/metrics")}
    known = (*tria_secrets, *env_file_secrets)
    leaks = []
    for path, answer in answers.items():
        headers = [f"{name}: {value}" for name, value in answer.headers.items()]
        for part, texts in (("body", _texts(answer)), ("headers", headers)):
            if any(secret in text for text in texts for secret in known):
                leaks.append(f"{path} {part}: a secret of the target or its env file")
            elif any(redact(text) != text for text in texts):
                leaks.append(f"{path} {part}: something shaped like a credential")
    assert not leaks, f"secret values in health answers: {'; '.join(leaks)}"


async def test_metrics_parse(service: httpx.AsyncClient, expected_answers: dict[str, Any]) -> None:
    """/metrics parses as Prometheus exposition, with readiness and every dependency up."""
    expected = expected_answers["health"]
    answer = await service.get("/metrics")
    assert answer.status_code == 200, f"/metrics answered {answer.status_code}"
    families = {family.name: family for family in text_string_to_metric_families(answer.text)}
    missing = [name for name in expected["metrics"] if name not in families]
    assert not missing, f"/metrics lacks {', '.join(missing)}"
    assert [s.value for s in families["tria_ready"].samples] == [1.0], "/metrics: tria_ready != 1"
    up = {s.labels["dependency"]: s.value for s in families["tria_dependency_up"].samples}
    down = [name for name in expected["dependencies"] if up.get(name) != 1.0]
    assert not down, f"/metrics: tria_dependency_up is not 1 for {', '.join(down)}"


async def test_health_content_type(bodies: dict[str, httpx.Response]) -> None:
    """Every health body is application/health+json."""
    wrong = {
        path: answer.headers.get("content-type", "none")
        for path, answer in bodies.items()
        if answer.headers.get("content-type", "").split(";")[0].strip() != HEALTH_JSON
    }
    assert not wrong, f"not {HEALTH_JSON}: {wrong}"


def _record_release(body: Any, tria_record: Record) -> None:
    """The service's version and release as readiness states them (also on a 503), so the
    reports say which release was verified (Allure's environment.properties reads them)."""
    if not isinstance(body, dict):
        return
    for name, key in RELEASE_FIELDS.items():
        value = body.get(key)
        if isinstance(value, str) and value:
            tria_record(name, redact(value), "")


def _body(answer: httpx.Response) -> Any:
    """The JSON body, or the text when it is not JSON (a proxy's error page)."""
    try:
        return answer.json()
    except ValueError:
        return answer.text


def _texts(answer: httpx.Response) -> list[str]:
    """Each key and string of a JSON body, else each line: judged one by one, a body's
    ``"SECRET_KEY": "set"`` (that it is configured) is not taken for a credential."""
    try:
        document = answer.json()
    except ValueError:
        return answer.text.splitlines()
    found: list[str] = []
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            found += [str(key) for key in value]
            pending += value.values()
        elif isinstance(value, list):
            pending += value
        elif isinstance(value, str):
            found.append(value)
    return found
