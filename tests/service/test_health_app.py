"""The health endpoints over HTTP (uvicorn in the test process, lifespan run for real) against the
real dependencies."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from tria_service.api.health import DiagnosticsBody, HealthBody, ReadinessBody
from tria_service.app import create_app
from tria_service.clients import Clients
from tria_service.config import Settings, load_settings
from tria_service.metrics import ServiceMetrics
from tria_service.production.health_monitor import HealthMonitor, get_health_monitor
from tria_service.production.lifecycle_manager import LifecycleManager, get_lifecycle_manager
from tria_service.production.startup_orchestrator import StartupOrchestrator

from tests.reliability.secrets_canaries import assert_no_secret
from tests.service.helpers import (
    CHECK_KEYS,
    HEALTH_JSON,
    LIFECYCLE_STEPS,
    assert_ietf_shape,
    eventually,
    metric,
    planted_secrets,
    serve_in_process,
    set_fault_async,
)

if TYPE_CHECKING:
    from tests.conftest import FreshDeps


async def test_healthy_startup_serves_every_endpoint(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve_in_process(make_settings()) as running:
        client = running.client
        metrics = await client.get("/metrics")  # first: seeded from the startup results
        openmetrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        live = await client.get("/health")
        startup = await client.get("/api/v1/health/startup")
        ready = await client.get("/api/v1/health/readiness")
        diagnostics = await client.get("/api/v1/health/diagnostics", headers=running.auth())

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
        assert metric(metrics.text, "tria_probe_duration_seconds_count", dependency=dep) >= 1
        assert metric(metrics.text, "tria_probes_total", dependency=dep) == 0  # none run yet
    assert metric(metrics.text, "tria_ready") == 1.0
    assert metric(metrics.text, "tria_shutting_down") == 0.0
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")
    assert metric(openmetrics.text, "tria_dependency_up", dependency="redis") == 1.0


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
    pools = details["pools"]
    assert set(pools) == {"postgresql", "redis"}
    assert pools["postgresql"]["max"] >= pools["postgresql"]["size"] >= 1
    assert pools["redis"]["max"] >= 1
    assert "pool" not in deps["database"]["details"]  # shown once, under pools
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
    assert_no_secret(
        {
            "the 401 without a token": missing.text,
            "the 401 for a wrong token": wrong.text,
            "the 401 for Basic auth": basic.text,
        },
        {"TRIA_DIAGNOSTICS_TOKEN": token},
    )
    assert right.status_code == 200
    assert "details" in right.json()


async def test_diagnostics_never_show_a_secret(
    service_env: Mapping[str, str], fresh_deps: FreshDeps, canaries: dict[str, str]
) -> None:
    own = fresh_deps("openai")  # its own API key, accepted by its own stand-in
    env = {**service_env, **own.env(), **canaries}
    async with serve_in_process(load_settings(**env)) as running:
        response = await running.client.get("/api/v1/health/diagnostics", headers=running.auth())
    assert response.status_code == 200
    assert env["OPENAI_API_KEY"] == own.openai_api_key
    planted = planted_secrets(env, canaries)
    assert_no_secret(
        {"the diagnostics body": response.text},
        {f"planted secret {n}": secret for n, secret in enumerate(planted)},
    )


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
    # the TTL outlasts the burst: a request served after the shared probe finds a fresh cache;
    # the burst is as wide as the client's connection pool, so every request is in flight at once
    settings = make_settings(TRIA_HEALTH_REFRESH_INTERVAL="3600", TRIA_HEALTH_TTL="2")
    async with serve_in_process(settings) as running:
        before = running.monitor.probe_counts()
        await asyncio.sleep(2.1)  # every cached result is now older than the TTL
        responses = await asyncio.gather(
            *(running.client.get("/api/v1/health/readiness") for _ in range(100))
        )
        after = running.monitor.probe_counts()
        metrics = (await running.client.get("/metrics")).text

    assert {r.status_code for r in responses} == {200}
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


async def test_a_hanging_probe_neither_holds_readiness_nor_passes_for_long(
    service_env: Mapping[str, str], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("openai")
    standin = own.servers.openai
    assert standin is not None
    env = {
        **service_env,
        **own.env(),
        "TRIA_TIMEOUT_OPENAI": "3",
        "TRIA_HEALTH_REFRESH_INTERVAL": "3600",
        "TRIA_HEALTH_TTL": "0.5",  # results older than 1.5 s are no longer trusted
    }
    answers: list[httpx.Response] = []
    slowest = 0.0

    async def readiness() -> httpx.Response:
        nonlocal slowest
        started = time.monotonic()
        response = await running.client.get("/api/v1/health/readiness")
        slowest = max(slowest, time.monotonic() - started)
        answers.append(response)
        return response

    def openai_output(response: httpx.Response) -> str:
        return str(response.json()["checks"]["openai:responseTime"][0]["output"])

    async with serve_in_process(load_settings(**env)) as running:
        await set_fault_async(standin, "hang")
        await asyncio.sleep(0.6)  # stale: the next readiness call starts a probe, which hangs
        # the hanging probe runs for 3 s; readiness answers from the cache meanwhile, until
        # the cached result is too old to trust, and then from the probe's timeout
        stale = await eventually(lambda: _says(readiness, openai_output, "stale:"), within=10)
        stale_body = answers[-1].json()
        timed_out = await eventually(
            lambda: _says(readiness, openai_output, "timed out after 3.0s"), within=15
        )
        timed_out_body = answers[-1].json()
        await set_fault_async(standin, "none")
        recovered = await eventually(
            lambda: _says(readiness, lambda r: str(r.status_code), "200"), within=10
        )

    assert stale, [openai_output(a) for a in answers]
    assert answers[0].status_code == 200  # the cache still vouched for OpenAI
    assert stale_body["status"] == "fail"
    assert "a probe is still running" in stale_body["checks"]["openai:responseTime"][0]["output"]
    assert timed_out
    body = ReadinessBody.model_validate(timed_out_body, strict=True).model_dump()
    assert body["status"] == "fail"
    assert body["overall_healthy"] is False
    assert body["description"] == "readiness: not ready: openai unhealthy"
    assert body["checks"]["openai:responseTime"][0]["status"] == "fail"
    assert body["checks"]["redis:responseTime"][0]["status"] == "pass"
    assert all(a.headers["content-type"] == HEALTH_JSON for a in answers)
    # never held for the 3 s probe: at most the 0.25 s wait (generous bound on a busy machine)
    assert slowest < 2
    assert recovered


async def _says(
    call: Callable[[], Awaitable[httpx.Response]],
    field: Callable[[httpx.Response], str],
    text: str,
) -> bool:
    return text in field(await call())


async def test_a_hanging_dependency_does_not_delay_detecting_another_failure(
    service_env: Mapping[str, str], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("openai", "redis")
    standin, redis_server = own.servers.openai, own.servers.redis
    assert standin is not None
    assert redis_server is not None
    env = {
        **service_env,
        **own.env(),
        "TRIA_TIMEOUT_OPENAI": "30",  # a refresh of all dependencies would wait this long
        "TRIA_TIMEOUT_REDIS": "1",
        "TRIA_HEALTH_REFRESH_INTERVAL": "0.5",
        "TRIA_HEALTH_TTL": "3600",  # only the background refresh probes
    }

    async def redis_failing() -> bool:
        body = (await running.client.get("/api/v1/health/readiness")).json()
        return bool(body["checks"]["redis:responseTime"][0]["status"] == "fail")

    async with serve_in_process(load_settings(**env)) as running:
        await set_fault_async(standin, "hang")
        await asyncio.sleep(1.0)  # OpenAI's background probe is now hanging
        redis_server.kill()
        killed = time.monotonic()
        detected = await eventually(redis_failing, within=20, interval=0.05)
        took = time.monotonic() - killed
        openai_probes = running.monitor.probe_counts()["openai"]

    assert detected
    assert took < 10  # about one interval + Redis's 1 s timeout; not OpenAI's 30 s
    assert openai_probes == 0  # its first background probe was still hanging throughout


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
        assert lifecycle.registered == LIFECYCLE_STEPS
    outcomes = lifecycle.last_outcomes
    assert [(o.name, o.outcome) for o in outcomes] == [(n, "ok") for n in LIFECYCLE_STEPS[::-1]]
    assert [o.name for o in outcomes][-2:] == ["health-monitor", "clients"]  # after the chat's
    assert running.monitor.shutting_down
    assert not running.monitor.refreshing
    assert lifecycle.registered == []  # ready for the next app
    assert await lifecycle.shutdown() == []  # again: nothing left to run


async def test_two_apps_in_sequence_on_the_process_wide_singletons_both_clean_up(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    closed: list[Clients] = []
    for _ in range(2):
        orchestrator = StartupOrchestrator(settings)
        app = create_app(settings, orchestrator=orchestrator)  # default monitor and lifecycle
        async with app.router.lifespan_context(app):
            clients = orchestrator.clients
            assert get_health_monitor().refreshing
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/api/v1/health/readiness")).status_code == 200
        assert clients.closed
        assert not get_health_monitor().refreshing
        closed.append(clients)
        assert [o.outcome for o in get_lifecycle_manager().last_outcomes] == ["ok"] * len(
            LIFECYCLE_STEPS
        )

    assert closed[0] is not closed[1]


class FailsOnce(ServiceMetrics):
    """Metrics whose first probe count for Redis raises: a bug inside the refresh loop."""

    def __init__(self) -> None:
        super().__init__()
        self.raised = 0

    def count_probe(self, dependency: str) -> None:
        if dependency == "redis" and not self.raised:
            self.raised += 1
            raise RuntimeError("metrics backend broke")
        super().count_probe(dependency)


async def test_the_refresh_loop_survives_an_unexpected_error(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(TRIA_HEALTH_REFRESH_INTERVAL="0.1", TRIA_HEALTH_TTL="3600")
    orchestrator = StartupOrchestrator(settings)
    monitor, metrics = HealthMonitor(), FailsOnce()
    results = await orchestrator.startup()
    try:
        await monitor.start(orchestrator.probes, settings, initial=results, metrics=metrics)

        async def redis_probed_again() -> bool:
            return monitor.probe_counts()["redis"] >= 3

        kept_going = await eventually(redis_probed_again, within=20)
        still_refreshing = monitor.refreshing
    finally:
        await monitor.stop()
        await orchestrator.close()

    assert metrics.raised == 1
    assert kept_going
    assert still_refreshing


async def test_startup_reports_the_startup_results_not_the_current_ones(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(TRIA_HEALTH_REFRESH_INTERVAL="3600", TRIA_HEALTH_TTL="3600")
    async with serve_in_process(settings) as running:
        first = (await running.client.get("/api/v1/health/startup")).json()
        await running.monitor.refresh_all()  # newer results, which startup must not show
        ready = (await running.client.get("/api/v1/health/readiness")).json()
        second = (await running.client.get("/api/v1/health/startup")).json()

    assert first == second
    assert first["status"] == "pass"
    assert_ietf_shape(first, CHECK_KEYS)
    for key in CHECK_KEYS:
        assert first["checks"][key][0]["time"] < ready["checks"][key][0]["time"]


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
