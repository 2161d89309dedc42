"""The health endpoints in-process (lifespan run for real) against the real dependencies."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from tria_service.api.health import DiagnosticsBody, HealthBody, ReadinessBody
from tria_service.app import create_app
from tria_service.config import Settings
from tria_service.production.health_monitor import HealthMonitor
from tria_service.production.lifecycle_manager import LifecycleManager

from tests.service.helpers import (
    CHECK_KEYS,
    HEALTH_JSON,
    assert_ietf_shape,
    metric,
    serve_in_process,
    set_fault,
    settings_from_env,
)

if TYPE_CHECKING:
    from tests.conftest import FreshDeps


async def test_healthy_startup_serves_every_endpoint(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve_in_process(make_settings()) as running:
        client = running.client
        live = await client.get("/health")
        startup = await client.get("/api/v1/health/startup")
        ready = await client.get("/api/v1/health/readiness")
        diagnostics = await client.get("/api/v1/health/diagnostics", headers=running.auth())
        metrics = await client.get("/metrics")

    for response in (live, startup, ready, diagnostics):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == HEALTH_JSON
    # the bodies are exactly what the OpenAPI schema documents
    HealthBody.model_validate(live.json(), strict=True)
    HealthBody.model_validate(startup.json(), strict=True)
    ReadinessBody.model_validate(ready.json(), strict=True)
    DiagnosticsBody.model_validate(diagnostics.json(), strict=True)
    assert_ietf_shape(live.json())
    assert live.json()["status"] == "pass"
    assert_ietf_shape(startup.json(), CHECK_KEYS)
    body = ready.json()
    assert_ietf_shape(body, CHECK_KEYS)
    assert body["status"] == "pass"
    assert body["overall_healthy"] is True
    postgres = body["checks"]["postgresql:responseTime"][0]
    assert postgres["componentType"] == "datastore"
    assert postgres["observedValue"] > 0
    assert postgres["output"] == ""

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    for dep in ("database", "redis", "openai", "chroma"):
        assert metric(metrics.text, "tria_dependency_up", dependency=dep) == 1.0
        assert metric(metrics.text, "tria_probe_duration_seconds_count", dependency=dep) >= 0
    assert metric(metrics.text, "tria_ready") == 1.0
    assert metric(metrics.text, "tria_shutting_down") == 0.0


async def test_diagnostics_report_versions_pools_and_config(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve_in_process(make_settings(TRIA_RELEASE_ID="r-2026.11")) as running:
        response = await running.client.get("/api/v1/health/diagnostics", headers=running.auth())

    body = response.json()
    assert_ietf_shape(body, CHECK_KEYS)
    assert body["releaseId"] == "r-2026.11"
    details = body["details"]
    assert details["version"] == "2.0.0"
    assert details["release_id"] == "r-2026.11"
    assert details["uptime_seconds"] >= 0
    deps = details["dependencies"]
    assert set(deps) == {"database", "redis", "openai", "chroma"}
    assert re.match(r"\d+(\.\d+)?", deps["database"]["version"])
    assert re.match(r"\d+\.\d+", deps["redis"]["version"])
    assert re.match(r"\d+\.\d+", deps["chroma"]["version"])
    assert deps["openai"]["version"] == "gpt-4o-mini"
    for dep in deps.values():
        assert dep["status"] == "healthy"
        assert dep["last_success"] is not None
        assert dep["last_error"] is None
        assert dep["latency_ms"] > 0
    assert details["pools"]["postgresql"]["open"] is True
    assert details["pools"]["postgresql"]["max_size"] >= 1
    assert details["pools"]["redis"]["max_connections"] >= 1
    assert details["config"]["secrets"]["SECRET_KEY"] == "set"
    assert details["config"]["critical_dependencies"] == ["chroma", "database", "openai", "redis"]


async def test_diagnostics_need_the_token(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    token = settings.tria_diagnostics_token.get_secret_value()
    async with serve_in_process(settings) as running:
        client = running.client
        missing = await client.get("/api/v1/health/diagnostics")
        wrong = await client.get(
            "/api/v1/health/diagnostics", headers={"Authorization": f"Bearer {token[:-1]}x"}
        )
        basic = await client.get(
            "/api/v1/health/diagnostics", headers={"Authorization": f"Basic {token}"}
        )
        right = await client.get("/api/v1/health/diagnostics", headers=running.auth())

    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json() == {"detail": "unauthorized"}
        assert token not in response.text
    assert right.status_code == 200
    assert "details" in right.json()


async def test_diagnostics_never_show_a_secret(
    service_env: Mapping[str, str], fresh_deps: FreshDeps, canaries: dict[str, str]
) -> None:
    own = fresh_deps("openai")  # its own API key, accepted by its own stand-in
    env = {**service_env, **own.env(), **canaries}
    async with serve_in_process(settings_from_env(env)) as running:
        response = await running.client.get("/api/v1/health/diagnostics", headers=running.auth())
    assert response.status_code == 200
    planted = [
        *canaries.values(),
        own.openai_api_key,
        httpx.URL(env["DATABASE_URL"]).password,
        httpx.URL(env["REDIS_URL"]).password,
    ]
    assert all(planted)
    for secret in planted:
        assert secret not in response.text


async def test_before_startup_only_liveness_passes() -> None:
    """Without the lifespan (nothing validated yet) startup and readiness refuse."""
    app = create_app(monitor=HealthMonitor(), lifecycle=LifecycleManager())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tria.test") as client:
        live = await client.get("/health")
        startup = await client.get("/api/v1/health/startup")
        ready = await client.get("/api/v1/health/readiness")
        diagnostics = await client.get(
            "/api/v1/health/diagnostics", headers={"Authorization": "Bearer anything-at-all"}
        )

    assert live.status_code == 200
    assert startup.status_code == 503
    assert startup.json()["status"] == "fail"
    assert ready.status_code == 503
    assert ready.json()["overall_healthy"] is False
    ReadinessBody.model_validate(ready.json(), strict=True)
    HealthBody.model_validate(startup.json(), strict=True)
    assert diagnostics.status_code == 401  # no settings loaded: no token can match


async def test_concurrent_readiness_on_a_stale_cache_shares_one_probe(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(TRIA_HEALTH_REFRESH_INTERVAL="3600", TRIA_HEALTH_TTL="1")
    async with serve_in_process(settings) as running:
        before = running.monitor.probe_counts()
        await asyncio.sleep(1.1)  # every cached result is now older than the TTL
        # 500 calls at once (the monitor itself: HTTP in-process would spread them over
        # longer than the TTL, and later callers would rightly find a stale cache again)
        bodies = await asyncio.gather(*(running.monitor.readiness() for _ in range(500)))
        after = running.monitor.probe_counts()
        metrics = (await running.client.get("/metrics")).text

    assert {b["status"] for b in bodies} == {"pass"}
    assert before == {"database": 0, "redis": 0, "openai": 0, "chroma": 0}
    assert after == {"database": 1, "redis": 1, "openai": 1, "chroma": 1}
    for dep in after:
        assert metric(metrics, "tria_probes_total", dependency=dep) == 1.0


async def test_fresh_cache_serves_readiness_without_probing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(TRIA_HEALTH_REFRESH_INTERVAL="3600", TRIA_HEALTH_TTL="3600")
    async with serve_in_process(settings) as running:
        for _ in range(50):
            assert (await running.client.get("/api/v1/health/readiness")).status_code == 200
        assert running.monitor.probe_counts() == {
            "database": 0,
            "redis": 0,
            "openai": 0,
            "chroma": 0,
        }


async def test_a_hanging_probe_is_cut_off_and_fails_readiness(
    service_env: Mapping[str, str], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("openai")
    standin = own.servers.openai
    assert standin is not None
    settings = settings_from_env(
        {
            **service_env,
            **own.env(),
            "TRIA_TIMEOUT_OPENAI": "1",
            "TRIA_HEALTH_REFRESH_INTERVAL": "3600",
            "TRIA_HEALTH_TTL": "0.2",
        }
    )
    async with serve_in_process(settings) as running:
        set_fault(standin, "hang")
        await asyncio.sleep(0.3)
        started = time.monotonic()
        hung = await running.client.get("/api/v1/health/readiness")
        elapsed = time.monotonic() - started
        set_fault(standin, "none")
        await asyncio.sleep(0.3)
        recovered = await running.client.get("/api/v1/health/readiness")

    assert hung.status_code == 503
    assert hung.headers["content-type"] == HEALTH_JSON
    body = ReadinessBody.model_validate(hung.json(), strict=True).model_dump()
    assert body["status"] == "fail"
    assert body["overall_healthy"] is False
    assert body["description"] == "readiness: not ready: openai unhealthy"
    openai_check = body["checks"]["openai:responseTime"][0]
    assert openai_check["status"] == "fail"
    assert "timed out after 1.0s" in openai_check["output"]
    assert body["checks"]["redis:responseTime"][0]["status"] == "pass"
    assert elapsed < 10  # cut off by the 1 s timeout, not waiting on the hang
    assert recovered.status_code == 200


async def test_shutdown_fails_readiness_at_once_without_probing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(TRIA_HEALTH_REFRESH_INTERVAL="3600", TRIA_HEALTH_TTL="0.01")
    async with serve_in_process(settings) as running:
        running.lifecycle.begin_drain()
        await asyncio.sleep(0.05)
        ready = await running.client.get("/api/v1/health/readiness")
        live = await running.client.get("/health")
        metrics = (await running.client.get("/metrics")).text
        counts = running.monitor.probe_counts()

    assert ready.status_code == 503
    assert ready.json()["overall_healthy"] is False
    assert "shutting down" in ready.json()["description"]
    assert live.status_code == 200
    assert counts == {"database": 0, "redis": 0, "openai": 0, "chroma": 0}
    assert metric(metrics, "tria_ready") == 0.0
    assert metric(metrics, "tria_shutting_down") == 1.0


async def test_registered_components_add_their_section(
    make_settings: Callable[..., Settings],
) -> None:
    async def chat() -> dict[str, Any]:
        return {"status": "pass", "sessions": 0}

    async def broken() -> dict[str, Any]:
        raise RuntimeError("index not loaded")

    async with serve_in_process(make_settings()) as running:
        running.monitor.register_component("chat", chat)
        running.monitor.register_component("knowledge", broken)
        response = await running.client.get("/api/v1/health/diagnostics", headers=running.auth())

    components = response.json()["details"]["components"]
    assert components["chat"] == {"status": "pass", "sessions": 0}
    assert components["knowledge"] == {
        "status": "fail",
        "error": "RuntimeError: index not loaded",
    }


async def test_lifespan_shutdown_stops_the_monitor_then_closes_clients(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve_in_process(make_settings()) as running:
        lifecycle = running.lifecycle
        assert lifecycle.registered == ["clients", "health-monitor"]
    outcomes = await lifecycle.shutdown()  # already run by the lifespan: same outcomes, no rerun
    assert [(o.name, o.outcome) for o in outcomes] == [("health-monitor", "ok"), ("clients", "ok")]
    assert running.monitor.shutting_down


def test_openapi_documents_the_health_responses() -> None:
    schema = create_app(monitor=HealthMonitor(), lifecycle=LifecycleManager()).openapi()
    assert schema["info"] == {
        "title": "Tria AIBPO Platform",
        "description": "Multi-Agent AIBPO System",
        "version": "2.0.0",
    }
    ready = schema["paths"]["/api/v1/health/readiness"]["get"]["responses"]
    assert set(ready) >= {"200", "503"}
    for code in ("200", "503"):
        assert HEALTH_JSON in ready[code]["content"]
    diagnostics = schema["paths"]["/api/v1/health/diagnostics"]["get"]
    assert "application/json" in diagnostics["responses"]["401"]["content"]
    assert diagnostics["security"] == [{"HTTPBearer": []}]
    assert "text/plain" in schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
