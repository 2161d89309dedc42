"""Health, for each service instance: liveness, readiness, startup, diagnostics, metrics, and
bodies in the IETF health+json form with no secret in them."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import warn_over_budget
from pytest_tria_deploy.report.attach import attach_json
from pytest_tria_deploy.targets import Budgets

EXPECTED = tomllib.loads(Path(__file__).with_name("expected_answers.toml").read_text("utf-8"))
HEALTH_JSON = "application/health+json"
LIVENESS = "/health"
STARTUP = "/api/v1/health/startup"
READINESS = "/api/v1/health/readiness"
DIAGNOSTICS = "/api/v1/health/diagnostics"

DEPENDENCIES: list[str] = EXPECTED["health"]["dependencies"]

Record = Callable[[str, float | str, str], None]
Warn = Callable[[str], None]


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
    started = time.perf_counter()
    answer = await service.get(LIVENESS)
    elapsed_ms = (time.perf_counter() - started) * 1000
    tria_record("liveness_ms", round(elapsed_ms, 1), "ms")
    assert answer.status_code == 200, f"liveness answered {answer.status_code}: {answer.text}"
    warn_over_budget(tria_warn, "liveness", "liveness_ms", tria_budget.liveness_ms, elapsed_ms)


async def test_readiness(
    service: httpx.AsyncClient, tria_budget: Budgets, tria_record: Record, tria_warn: Warn
) -> None:
    """Readiness answers 200 with every check passing (degraded, or over its budget: a
    warning)."""
    started = time.perf_counter()
    answer = await service.get(READINESS)
    elapsed_ms = (time.perf_counter() - started) * 1000
    tria_record("readiness_ms", round(elapsed_ms, 1), "ms")
    assert answer.status_code == 200, f"readiness answered {answer.status_code}: {answer.text}"
    checks = [(key, entry) for key, entries in answer.json()["checks"].items() for entry in entries]
    failing = [f"{key}: {entry['output']}" for key, entry in checks if entry["status"] == "fail"]
    assert not failing, f"readiness checks failing: {'; '.join(failing)}"
    for key, entry in checks:
        if entry["status"] != "pass":
            tria_warn(f"readiness: {key} is {entry['status']}: {entry['output']}")
    warn_over_budget(tria_warn, "readiness", "readiness_ms", tria_budget.readiness_ms, elapsed_ms)


async def test_startup_probe(bodies: dict[str, httpx.Response]) -> None:
    """The startup probe answers 200: startup validated every critical dependency."""
    answer = bodies[STARTUP]
    assert answer.status_code == 200, f"startup probe answered {answer.status_code}: {answer.text}"


async def test_diagnostics_need_the_token(service: httpx.AsyncClient) -> None:
    """Diagnostics answer 401 without the token."""
    answer = await service.get(DIAGNOSTICS)
    assert answer.status_code == 401, f"diagnostics without a token answered {answer.status_code}"


async def test_diagnostics_every_dependency_healthy(
    bodies: dict[str, httpx.Response], tria_warn: Warn
) -> None:
    """Diagnostics (with the token) report every dependency present and healthy."""
    answer = bodies[DIAGNOSTICS]
    assert answer.status_code == 200, f"diagnostics answered {answer.status_code}"
    body = answer.json()
    attach_json("diagnostics", body)
    reported = body["details"]["dependencies"]
    status = {name: reported.get(name, {}).get("status", "not reported") for name in DEPENDENCIES}
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
    bodies: dict[str, httpx.Response], service: httpx.AsyncClient, tria_secrets: list[str]
) -> None:
    """No secret value appears in any health body, nor in /metrics."""
    texts = {path: answer.text for path, answer in bodies.items()}
    texts["/metrics"] = (await service.get("/metrics")).text
    leaks = [path for path, text in texts.items() if any(s in text for s in tria_secrets)]
    assert not leaks, f"a secret value appears in the body of {', '.join(leaks)}"


async def test_metrics_parse(service: httpx.AsyncClient) -> None:
    """/metrics parses as Prometheus exposition, with readiness and every dependency up."""
    answer = await service.get("/metrics")
    assert answer.status_code == 200, f"/metrics answered {answer.status_code}"
    families = {family.name: family for family in text_string_to_metric_families(answer.text)}
    missing = [name for name in EXPECTED["health"]["metrics"] if name not in families]
    assert not missing, f"/metrics lacks {', '.join(missing)}"
    assert [s.value for s in families["tria_ready"].samples] == [1.0], "/metrics: tria_ready != 1"
    up = {s.labels["dependency"]: s.value for s in families["tria_dependency_up"].samples}
    down = [name for name in DEPENDENCIES if up.get(name) != 1.0]
    assert not down, f"/metrics: tria_dependency_up is not 1 for {', '.join(down)}"


async def test_health_content_type(bodies: dict[str, httpx.Response]) -> None:
    """Every health body is application/health+json."""
    wrong = {
        path: answer.headers.get("content-type", "none")
        for path, answer in bodies.items()
        if answer.headers.get("content-type", "").split(";")[0].strip() != HEALTH_JSON
    }
    assert not wrong, f"not {HEALTH_JSON}: {wrong}"
