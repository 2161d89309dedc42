"""Startup against real dependencies: healthy, down, hanging, wrong credentials, non-critical.

Down means a free port nobody listens on; hanging means a TCP server that accepts and never
answers. Timing is asserted only where a timeout firing is the behaviour, with generous bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import secrets
import selectors
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from tria_service.chroma_http import ChromaHttp, ChromaNotFoundError
from tria_service.clients import Clients, ClientsError
from tria_service.config import ConfigError, Dependency, Settings
from tria_service.db import SCHEMA_VERSION, verify_schema
from tria_service.production.probes import Probes, ServiceStatus
from tria_service.production.startup_orchestrator import (
    StartupConfigError,
    StartupError,
    StartupOrchestrator,
    get_orchestrator,
    reset_orchestrator,
)

from pytest_tria_deploy.provision.processes import free_port
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.reliability.secrets_canaries import assert_no_secret
from tests.service._env import REQUIRED_AND_REDIS_PORT, clear_service_env, named

SERVICES = ["database", "redis", "openai", "chroma"]
HINT_VARS = {
    "database": "DATABASE_URL",
    "redis": "REDIS_URL",
    "openai": "OPENAI_BASE_URL",
    "chroma": "CHROMA_URL",
}
# The password point_at's URLs carry: a secret like any other, so never shown.
UNUSED_PASSWORD = "pw-unused"


# Collections the tests' settings name, dropped from the shared Chroma after each test.
_collections: list[str] = []


@pytest.fixture(autouse=True)
async def drop_test_collections(deps: DependencyEndpoints) -> AsyncIterator[None]:
    yield
    chroma = ChromaHttp(deps.chroma_url, timeout=10.0)
    try:
        while _collections:
            name = _collections.pop()
            with contextlib.suppress(ChromaNotFoundError):  # the test never created it
                await chroma.delete_collection(name)
    finally:
        await chroma.aclose()


def make_settings(deps: DependencyEndpoints, **overrides: Any) -> Settings:
    """Settings for `deps` with a collection and service id of the test's own."""
    collection = overrides.get("chroma_collection", f"test_{uuid.uuid4().hex[:10]}")
    _collections.append(collection)
    fields: dict[str, Any] = {
        "_env_file": None,
        "database_url": deps.database_url,
        "redis_url": deps.redis_url,
        "openai_base_url": deps.openai_base_url,
        "openai_api_key": deps.openai_api_key,
        "chroma_url": deps.chroma_url,
        "chroma_collection": collection,
        "secret_key": secrets.token_urlsafe(48),
        "tria_diagnostics_token": secrets.token_urlsafe(24),
        "tria_service_id": f"tria-test-{uuid.uuid4().hex[:8]}",
        **{f"tria_timeout_{d.value}": 5.0 for d in Dependency},
    }
    return Settings(**{**fields, **overrides})


def point_at(dep: str, port: int) -> dict[str, str]:
    """Overrides sending one dependency to 127.0.0.1:port."""
    return {
        "database": {"database_url": f"postgresql://tria:{UNUSED_PASSWORD}@127.0.0.1:{port}/tria"},
        "redis": {"redis_url": f"redis://:{UNUSED_PASSWORD}@127.0.0.1:{port}/0"},
        "openai": {"openai_base_url": f"http://127.0.0.1:{port}/v1"},
        "chroma": {"chroma_url": f"http://127.0.0.1:{port}"},
    }[dep]


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def serve() -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            while not stop.is_set():
                if selector.select(timeout=0.05):
                    accepted.append(listener.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


async def start(settings: Settings) -> tuple[StartupOrchestrator, dict[str, Any]]:
    orchestrator = StartupOrchestrator(settings)
    return orchestrator, await orchestrator.startup()


async def failed_startup(settings: Settings) -> StartupError:
    with pytest.raises(StartupError) as caught:
        await StartupOrchestrator(settings).startup()
    return caught.value


async def app_connections(deps: DependencyEndpoints, settings: Settings) -> int:
    conn = await asyncpg.connect(deps.database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            settings.tria_service_id,
        )
    finally:
        await conn.close()
    return count


async def test_healthy_startup(deps: DependencyEndpoints) -> None:
    settings = make_settings(deps)
    orchestrator, services = await start(settings)
    try:
        assert list(services) == SERVICES
        assert services["openai"].status.value == "healthy"
        assert all(r.status is ServiceStatus.HEALTHY for r in services.values()), services
        assert orchestrator.completed
        assert orchestrator.results == services

        database = services["database"]
        assert database.version
        assert database.version[0].isdigit()
        assert database.details["schema_version"] == SCHEMA_VERSION
        assert database.details["pool"]["max"] == 10
        redis_result = services["redis"]
        assert redis_result.details["round_trips"] == settings.tria_redis_baseline_round_trips
        p50, p99 = redis_result.details["latency_p50_ms"], redis_result.details["latency_p99_ms"]
        assert 0 < p50 <= p99
        assert services["openai"].version == settings.openai_model
        assert services["chroma"].details["collection"] == settings.chroma_collection

        for dep in Dependency:
            again = await orchestrator.probes.probe(dep)
            assert again.status is ServiceStatus.HEALTHY, again
    finally:
        await orchestrator.close()

    conn = await asyncpg.connect(deps.database_url)
    try:
        assert await verify_schema(conn) == []
    finally:
        await conn.close()
    probe_keys = aioredis.Redis.from_url(deps.redis_url)
    try:
        assert [k async for k in probe_keys.scan_iter(match="tria:health:*")] == []
    finally:
        await probe_keys.aclose()
    assert await app_connections(deps, settings) == 0


@pytest.mark.parametrize("dep", SERVICES)
async def test_a_dependency_down_is_named(deps: DependencyEndpoints, dep: str) -> None:
    port = free_port()
    settings = make_settings(deps, **point_at(dep, port))
    error = await failed_startup(settings)
    assert [r.name for r in error.failures] == [dep]
    line = f"{dep}: connection refused at 127.0.0.1:{port} — "
    assert line in str(error)
    assert f"check {HINT_VARS[dep]}" in str(error)
    assert all(r.status is ServiceStatus.HEALTHY for r in error.results.values() if r.name != dep)
    assert await app_connections(deps, settings) == 0  # the pool it opened is closed again


async def test_two_dependencies_down_are_both_named(deps: DependencyEndpoints) -> None:
    redis_port, chroma_port = free_port(), free_port()
    settings = make_settings(
        deps, **point_at("redis", redis_port), **point_at("chroma", chroma_port)
    )
    error = await failed_startup(settings)
    text = str(error)
    assert text.splitlines()[0] == "Startup failed: 2 critical dependencies unhealthy"
    assert f"redis: connection refused at 127.0.0.1:{redis_port} — is Redis running?" in text
    assert f"chroma: connection refused at 127.0.0.1:{chroma_port} — is Chroma running?" in text


@pytest.mark.parametrize("dep", SERVICES)
async def test_a_hanging_dependency_is_bounded_by_its_timeout(
    deps: DependencyEndpoints, hanging_port: int, dep: str
) -> None:
    settings = make_settings(deps, **point_at(dep, hanging_port), **{f"tria_timeout_{dep}": 0.5})
    started = time.perf_counter()
    error = await failed_startup(settings)
    elapsed = time.perf_counter() - started
    assert f"{dep}: timed out after 0.5s — " in str(error)
    assert f"TRIA_TIMEOUT_{dep.upper()}" in str(error)
    assert elapsed < 5.0


async def test_checks_run_concurrently(deps: DependencyEndpoints, hanging_port: int) -> None:
    """Four hanging dependencies with 1 s each take about 1 s in all, not 4 (bound generous)."""
    overrides: dict[str, Any] = {}
    for dep in SERVICES:
        overrides |= point_at(dep, hanging_port) | {f"tria_timeout_{dep}": 1.0}
    started = time.perf_counter()
    error = await failed_startup(make_settings(deps, **overrides))
    elapsed = time.perf_counter() - started
    assert [r.name for r in error.failures] == SERVICES
    assert all(r.error == "timed out after 1.0s" for r in error.failures)
    assert elapsed < 3.5


async def test_a_hanging_non_critical_dependency_costs_one_timeout(
    deps: DependencyEndpoints, hanging_port: int
) -> None:
    settings = make_settings(
        deps,
        **point_at("chroma", hanging_port),
        tria_timeout_chroma=1.0,
        tria_critical_dependencies="database,redis,openai",
    )
    orchestrator, services = await start(settings)
    try:
        assert orchestrator.completed
        assert services["chroma"].status is ServiceStatus.UNHEALTHY
        assert services["chroma"].error == "timed out after 1.0s"
        assert all(services[d].status is ServiceStatus.HEALTHY for d in SERVICES[:3])
    finally:
        await orchestrator.close()


async def test_wrong_database_password_is_an_auth_error(deps: DependencyEndpoints) -> None:
    wrong = "Wr0ng-Passw0rd-4e1f"
    parts = urlsplit(deps.database_url)
    url = parts._replace(netloc=f"{parts.username}:{wrong}@{parts.hostname}:{parts.port}").geturl()
    settings = make_settings(deps, database_url=url)
    error = await failed_startup(settings)
    assert (
        'database: authentication failed for user "tria" — check the password in DATABASE_URL'
        in str(error)
    )
    assert_no_secret(
        {
            "str(error)": str(error),
            "repr(error)": repr(error),
            "repr(error.results)": repr(error.results),
            "str(error.failures)": str(error.failures),
        },
        {"the wrong database password": wrong},
    )


async def test_wrong_redis_password_is_an_auth_error(deps: DependencyEndpoints) -> None:
    wrong = "Wr0ng-Redis-Pass-9c2d"
    url = f"redis://:{wrong}@{deps.redis_url.rsplit('@', 1)[1]}"
    error = await failed_startup(make_settings(deps, redis_url=url))
    assert (
        'redis: authentication failed for user "default" — check the password in REDIS_URL'
        in str(error)
    )
    assert_no_secret(
        {"str(error)": str(error), "repr(error.results)": repr(error.results)},
        {"the wrong redis password": wrong},
    )


async def test_rejected_openai_key_is_an_auth_error(fresh_deps: Any) -> None:
    own = fresh_deps("openai")
    wrong = f"sk-wrong-{secrets.token_hex(8)}"
    error = await failed_startup(make_settings(own, openai_api_key=wrong))
    assert "openai: authentication failed (HTTP 401): the API key was rejected — " in str(error)
    assert "check OPENAI_API_KEY" in str(error)
    assert_no_secret(
        {"str(error)": str(error), "repr(error.results)": repr(error.results)},
        {"the rejected OPENAI_API_KEY": wrong},
    )


async def test_missing_model_is_named(deps: DependencyEndpoints) -> None:
    error = await failed_startup(make_settings(deps, openai_model="gpt-9-ultra"))
    assert "openai: model 'gpt-9-ultra' not offered by" in str(error)
    assert "check OPENAI_MODEL" in str(error)


async def test_non_critical_dependency_down_still_starts(deps: DependencyEndpoints) -> None:
    port = free_port()
    settings = make_settings(
        deps, **point_at("openai", port), tria_critical_dependencies="database,redis,chroma"
    )
    orchestrator, services = await start(settings)
    try:
        assert orchestrator.completed
        assert services["openai"].status is ServiceStatus.UNHEALTHY
        assert services["openai"].error == f"connection refused at 127.0.0.1:{port}"
        assert [d for d in SERVICES if services[d].status is ServiceStatus.HEALTHY] == [
            "database",
            "redis",
            "chroma",
        ]
    finally:
        await orchestrator.close()


async def test_invalid_configuration_lists_every_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clear_service_env(monkeypatch, tmp_path)
    monkeypatch.setenv("REDIS_PORT", "0")
    with pytest.raises(StartupError) as caught:
        await StartupOrchestrator().startup()
    assert isinstance(caught.value, ConfigError)
    assert named(caught.value.problems) == REQUIRED_AND_REDIS_PORT


async def test_runtime_probes_follow_a_dependency_that_dies_and_returns(fresh_deps: Any) -> None:
    own = fresh_deps("redis")
    orchestrator, _ = await start(make_settings(own))
    try:
        own.servers.redis.kill()
        down = await orchestrator.probes.redis()
        assert down.status is ServiceStatus.UNHEALTHY
        assert down.error is not None
        assert "connection refused" in down.error
        own.servers.redis.restart()
        up = await orchestrator.probes.redis()
        assert up.status is ServiceStatus.HEALTHY, up
    finally:
        await orchestrator.close()


async def test_runtime_chroma_probe_checks_but_never_creates(deps: DependencyEndpoints) -> None:
    orchestrator, _ = await start(make_settings(deps))
    try:
        other = make_settings(deps, chroma_collection=f"absent_{uuid.uuid4().hex[:8]}")
        probes = type(orchestrator.probes)(other, orchestrator.clients)
        for _ in range(2):
            result = await probes.chroma()
            assert result.status is ServiceStatus.UNHEALTHY
            assert result.error == f"collection '{other.chroma_collection}' does not exist"
    finally:
        await orchestrator.close()


async def test_slow_dependency_is_degraded(fresh_deps: Any) -> None:
    own = fresh_deps("openai")
    settings = make_settings(own, tria_timeout_openai=4.0, tria_degraded_fraction=0.25)
    orchestrator, _ = await start(settings)
    try:
        async with httpx.AsyncClient(base_url=own.servers.openai.url) as admin:
            response = await admin.post(
                "/_admin/fault", json={"mode": "latency", "latency_ms": 1300}
            )
            response.raise_for_status()
        slow = await orchestrator.probes.openai()
        assert slow.status is ServiceStatus.DEGRADED, slow
        assert slow.error is not None
        assert slow.error.startswith("slow: ")
        assert slow.latency_ms >= 1000
    finally:
        await orchestrator.close()


def test_get_orchestrator_is_a_singleton() -> None:
    reset_orchestrator()
    try:
        assert get_orchestrator() is get_orchestrator()
        assert not get_orchestrator().completed
    finally:
        reset_orchestrator()


async def test_startup_twice_reuses_the_first_result(deps: DependencyEndpoints) -> None:
    settings = make_settings(deps)
    orchestrator, first = await start(settings)
    try:
        clients = orchestrator.clients
        assert await orchestrator.startup() is first
        assert orchestrator.clients is clients
    finally:
        await orchestrator.close()
    with pytest.raises(RuntimeError, match="startup\\(\\) has not completed"):
        _ = orchestrator.probes


async def test_clients_create_connects_everything(deps: DependencyEndpoints) -> None:
    settings = make_settings(deps)
    clients = await Clients.create(settings)
    try:
        assert clients.pool is not None
        assert clients.pool.get_size() >= 1
        assert await clients.redis.ping()
        assert await clients.chroma().heartbeat() > 0
        assert await app_connections(deps, settings) >= 1
    finally:
        await clients.close()
    assert clients.pool is None
    assert await app_connections(deps, settings) == 0


async def test_clients_create_is_bounded_and_names_failures(
    deps: DependencyEndpoints, hanging_port: int
) -> None:
    refused = free_port()
    settings = make_settings(
        deps,
        **point_at("database", hanging_port),
        **point_at("redis", refused),
        tria_timeout_database=0.5,
    )
    started = time.perf_counter()
    with pytest.raises(ClientsError) as caught:
        await Clients.create(settings)
    assert time.perf_counter() - started < 5.0
    assert set(caught.value.failures) == {Dependency.DATABASE, Dependency.REDIS}
    assert caught.value.failures[Dependency.DATABASE] == "timed out after 0.5s"
    text = str(caught.value)
    assert_no_secret({"the clients error": text}, {"the URLs' password": UNUSED_PASSWORD})
    # The same wording, hint included, as the probes give for the same failures.
    clients = Clients(settings)
    try:
        probes = Probes(settings, clients)
        for result in (await probes.database(), await probes.redis()):
            assert f"  - {result.describe()}" in text.splitlines()
    finally:
        await clients.close()
    assert f"is PostgreSQL at 127.0.0.1:{hanging_port} hung or unreachable?" in text


async def test_closing_one_clients_leaves_another_chroma_working(deps: DependencyEndpoints) -> None:
    """Each Clients owns its Chroma connections: closing one never cuts another's requests."""
    settings = make_settings(deps)
    first, second = Clients(settings), Clients(settings)
    try:
        await first.chroma().heartbeat()
        collection = await second.chroma().get_or_create_collection(settings.chroma_collection)
        in_flight = asyncio.create_task(second.chroma().count(collection.id))
        await asyncio.sleep(0)
        await first.close()
        assert await in_flight == 0
        assert await second.chroma().heartbeat() > 0
        assert first.closed
        assert not second.closed
    finally:
        await second.close()


async def test_probes_after_close_report_closed_clients(deps: DependencyEndpoints) -> None:
    """A probe after close() must not reopen a pool that nobody would close again."""
    settings = make_settings(deps)
    orchestrator, _ = await start(settings)
    probes, clients = orchestrator.probes, orchestrator.clients
    await orchestrator.close()
    for dep in Dependency:
        result = await probes.probe(dep)
        assert result.status is ServiceStatus.UNHEALTHY
        assert result.error == "client closed"
    assert clients.pool is None
    assert await app_connections(deps, settings) == 0
    with pytest.raises(RuntimeError, match="closed"):
        await clients.database()
    with pytest.raises(RuntimeError, match="closed"):
        clients.chroma()


async def test_concurrent_startups_share_one_run(deps: DependencyEndpoints) -> None:
    settings = make_settings(deps)
    orchestrator = StartupOrchestrator(settings)
    first, second = await asyncio.gather(orchestrator.startup(), orchestrator.startup())
    try:
        assert first is second
        assert first is orchestrator.results
        assert await app_connections(deps, settings) == 1  # one pool, min size 1
    finally:
        await orchestrator.close()


async def test_baseline_latency_is_per_round_trip_and_migrations_are_not_timed(
    deps: DependencyEndpoints,
) -> None:
    """The budget judges one Redis round trip (p99) and the database query, not the whole step."""
    orchestrator, services = await start(make_settings(deps))
    try:
        redis_result, database = services["redis"], services["database"]
        assert redis_result.latency_ms == redis_result.details["latency_p99_ms"]
        assert redis_result.details["elapsed_ms"] >= redis_result.latency_ms
        assert database.details["elapsed_ms"] >= database.latency_ms
    finally:
        await orchestrator.close()


async def test_shared_clients_have_application_limits_and_probes_their_own(
    fresh_deps: Any,
) -> None:
    own = fresh_deps("openai")
    settings = make_settings(own, tria_db_command_timeout=0.5)
    clients = Clients(settings)
    try:
        assert clients.openai.max_retries == settings.tria_openai_max_retries == 2
        assert clients.openai.timeout == settings.tria_openai_request_timeout == 30.0
        pool = await clients.database()
        with pytest.raises(TimeoutError):
            await pool.execute("SELECT pg_sleep(3)")  # the command timeout firing is the point

        async with httpx.AsyncClient(base_url=own.servers.openai.url) as admin:
            (await admin.post("/_admin/reset")).raise_for_status()
            (await admin.post("/_admin/fault", json={"mode": "500"})).raise_for_status()
            result = await Probes(settings, clients).openai()
            stats = (await admin.get("/_admin/stats")).json()
        assert result.status is ServiceStatus.UNHEALTHY
        assert result.error is not None
        assert result.error.startswith("HTTP 500")
        assert stats["models"] == 1  # the probe does not retry, whatever the shared client does
    finally:
        await clients.close()


def test_startup_errors_survive_pickling(deps: DependencyEndpoints) -> None:
    config = ConfigError(["SECRET_KEY: is not set — set SECRET_KEY"], ".env")
    wrapped = StartupConfigError(config)
    for error in (config, wrapped):
        again = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
        assert type(again) is type(error)
        assert again.problems == error.problems
        assert str(again) == str(error)
    clients_error = ClientsError({Dependency.REDIS: "refused"}, {Dependency.REDIS: "check it"})
    assert str(pickle.loads(pickle.dumps(clients_error)))  # noqa: S301 == str(clients_error)


async def test_startup_error_survives_pickling(deps: DependencyEndpoints) -> None:
    error = await failed_startup(make_settings(deps, **point_at("redis", free_port())))
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(again) is StartupError
    assert str(again) == str(error)
    assert again.failures == error.failures
    assert again.results == error.results
