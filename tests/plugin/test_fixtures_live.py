"""The client fixtures against real servers: PostgreSQL, Redis, Chroma and the OpenAI stand-in.

An ``external`` target in a pytester-written tria.toml points at the shared ``deps`` through
``${ENV}`` references, so the fixtures are built exactly as for a real remote deployment.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from pytest_tria_deploy.provision.processes import ServiceServer, start_service
from pytest_tria_deploy.provision.stack import (
    DependencyEndpoints,
    external_target_env,
    external_target_toml,
)
from tests.plugin.conftest import QUIET_INI, activate, read_verdict
from tests.reliability.secrets_canaries import assert_no_secret

SUITE = {
    "test_03_database": """
import asyncpg
import httpx
import pytest
from pytest_tria_deploy import read_only

async def test_query(pg):
    assert await pg.fetchval("SELECT 1") == 1

async def test_protected_is_read_only(pg, tria_target, request):
    async with read_only(pg) as conn:
        assert await conn.fetchval("SHOW transaction_read_only") == "on"
    allowed = request.config.getoption("tria_allow_destructive")
    if tria_target.protected and not allowed:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await pg.execute("CREATE TEMP TABLE tria_plugin_probe (i int)")
    else:
        await pg.execute("CREATE TEMP TABLE tria_plugin_probe (i int)")
        assert await pg.fetchval("SHOW default_transaction_read_only") == "off"
""",
    "test_04_redis": """
import time

async def test_namespaced_keys(redis_client, redis_keys, tria_budget, tria_record):
    key = await redis_keys.set("probe", "value")
    assert key.startswith(redis_keys.prefix)
    assert await redis_keys.get("probe") == b"value"
    assert 0 < await redis_client.ttl(key) <= redis_keys.ttl
    with open("redis_key.txt", "w") as handle:
        handle.write(key)
    started = time.perf_counter()
    await redis_client.ping()
    tria_record("redis_ping_ms", (time.perf_counter() - started) * 1000, "ms")
    assert tria_budget.redis_p99_ms == 250
""",
    "test_05_external": """
async def test_openai_models(openai_client, tria_endpoints):
    models = [m.id async for m in openai_client.models.list()]
    assert tria_endpoints.openai_model in models

def test_chroma_heartbeat(chroma_client):
    assert chroma_client.heartbeat() > 0
""",
    "test_07_health": """
async def test_service_answers(service, tria_endpoints):
    key = tria_endpoints.openai_api_key.get_secret_value()
    response = await service.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
""",
}


def live_target(protected: bool) -> str:
    """Target ``live`` on the shared ``deps``; its service is the stand-in (see ``live``), so it
    has no service secrets."""
    return external_target_toml(
        "live",
        "LIVE_",
        settings={"protected": protected},
        tables={"budgets": {"redis_p99_ms": 250}},
        without=("diagnostics_token", "secret_key"),
    )


@pytest.fixture
def live(
    pytester: pytest.Pytester,
    deps: DependencyEndpoints,
    service_env: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> pytest.Pytester:
    endpoints = deps.endpoints(
        deps.openai_base_url.removesuffix("/v1"),
        diagnostics_token=service_env["TRIA_DIAGNOSTICS_TOKEN"],
        secret_key=service_env["SECRET_KEY"],
    )
    for name, value in external_target_env("LIVE_", endpoints).items():
        monkeypatch.setenv(name, value)
    pytester.makeini(QUIET_INI)
    pytester.makepyfile(**SUITE)
    return pytester


@pytest.mark.parametrize(
    ("protected", "extra"),
    [(True, []), (True, ["--tria-allow-destructive"]), (False, [])],
    ids=["protected", "protected-allowed", "unprotected"],
)
def test_fixtures_against_real_services(
    live: pytest.Pytester, deps: DependencyEndpoints, protected: bool, extra: list[str]
) -> None:
    live.makefile(".toml", tria=live_target(protected))
    args = ["--tria-target=live", "-v", "--junitxml=junit.xml", *extra]
    result = live.runpytest_subprocess(*args)
    result.assert_outcomes(passed=6)
    verdict = read_verdict(live)
    assert verdict["verdict"] == "PASS"
    assert verdict["provider"] == "external"
    redis_test = verdict["targets"][0]["stages"][3]["tests"][0]
    assert redis_test["properties"]["redis_ping_ms.unit"] == "ms"
    assert '<property name="redis_ping_ms" value=' in (live.path / "junit.xml").read_text()
    key = Path(live.path, "redis_key.txt").read_text()
    assert not asyncio.run(_exists(deps.redis_url, key))


async def _exists(url: str, key: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return int(await client.exists(key))
    finally:
        await client.aclose()


def test_local_target_starts_a_stack_on_demand_and_stops_it(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(
        test_07_health="""
        async def test_liveness(service, pg, tria_endpoints):
            with open("service_url.txt", "w") as handle:
                handle.write(tria_endpoints.service_urls[0])
            assert (await service.get("/health")).status_code == 200
            assert await pg.fetchval("SELECT 1") == 1
        """
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1)
    url = Path(pytester.path, "service_url.txt").read_text()
    assert url.startswith("http://127.0.0.1:")
    # A plain socket, not httpx: httpx imports httpcore on first use, and pytester would drop
    # that import after this test while httpx kept its exception map of httpcore's classes, so a
    # later in-process run would see raw httpcore errors.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", urlsplit(url).port or 80), timeout=5).close()


def test_unreachable_chroma_is_named(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI)
    pytester.makefile(
        ".toml",
        tria="""
        [targets.down]
        service_url = "http://127.0.0.1:9"
        database_url = "postgresql://u:p@127.0.0.1:9/db"
        redis_url = "redis://127.0.0.1:9"
        openai_api_key = "k"
        chroma_url = "http://127.0.0.1:9"
        """,
    )
    pytester.makepyfile(test_05_external="def test_chroma(chroma_client):\n    pass\n")
    result = pytester.runpytest("--tria-target=down")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["VERDICT: FAIL - external failed: *chroma at http://127.0.0.1:9 did not answer its *"]
    )


@pytest.fixture
def own_service(
    pytester: pytest.Pytester,
    deps: DependencyEndpoints,
    service_env: Mapping[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ServiceServer]:
    """A service of this test's own on the shared ``deps``, as the ``chat`` target of a pytester
    suite (it may be stopped)."""
    server = start_service(tmp_path / "service", service_env)
    endpoints = deps.endpoints(
        server.url,
        diagnostics_token=service_env["TRIA_DIAGNOSTICS_TOKEN"],
        secret_key=service_env["SECRET_KEY"],
    )
    for name, value in external_target_env("CHAT_", endpoints).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHAT_SERVICE_PID", str(server.process.pid))
    pytester.makeini(QUIET_INI)
    pytester.makefile(".toml", tria=external_target_toml("chat", "CHAT_"))
    yield server
    server.stop()


async def _session_rows(url: str, session_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        query = "SELECT count(*) FROM chat_sessions WHERE id = $1::uuid"
        return int(await conn.fetchval(query, session_id))
    finally:
        await conn.close()


async def _delete_session(url: str, session_id: str) -> int:
    """Remove a session the test left in the shared database; how many rows went."""
    conn = await asyncpg.connect(url)
    try:
        done = await conn.execute("DELETE FROM chat_sessions WHERE id = $1::uuid", session_id)
        return int(done.split()[-1])
    finally:
        await conn.close()


def test_tria_chat_marks_its_sessions_and_deletes_them_after_a_failed_test(
    pytester: pytest.Pytester, own_service: ServiceServer, deps: DependencyEndpoints
) -> None:
    pytester.makepyfile(
        test_70_smoke="""
        async def test_fails_after_a_turn(tria_chat, pg):
            turn = await tria_chat.turn("How do I track my order?")
            with open("session.txt", "w") as handle:
                handle.write(turn.session_id)
            marked = await pg.fetchval(
                "SELECT metadata->>'synthetic' FROM chat_sessions WHERE id = $1::uuid",
                turn.session_id,
            )
            assert marked == "true"
            assert turn.rate_limit is not None
            raise AssertionError("failing on purpose")
        """
    )
    result = pytester.runpytest_subprocess("--tria-target=chat")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: failing on purpose*"])
    session_id = Path(pytester.path, "session.txt").read_text()
    assert asyncio.run(_session_rows(deps.database_url, session_id)) == 0


def test_a_session_tria_chat_cannot_delete_is_an_error_naming_it(
    pytester: pytest.Pytester,
    own_service: ServiceServer,
    deps: DependencyEndpoints,
    service_env: Mapping[str, str],
) -> None:
    pytester.makepyfile(
        test_70_smoke="""
        import asyncio
        import os
        import signal

        import httpx

        async def test_the_service_goes_away(tria_chat):
            turn = await tria_chat.turn("How do I track my order?")
            with open("session.txt", "w") as handle:
                handle.write(turn.session_id)
            os.kill(int(os.environ["CHAT_SERVICE_PID"]), signal.SIGTERM)
            for _ in range(200):
                try:
                    await tria_chat.client.get("/health", timeout=1)
                except httpx.HTTPError:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the service did not stop")
        """
    )
    result = pytester.runpytest_subprocess("--tria-target=chat")
    result.assert_outcomes(passed=1, errors=1)
    session_id = Path(pytester.path, "session.txt").read_text()
    result.stdout.fnmatch_lines(
        [f"*CleanupError: synthetic sessions left on {own_service.url}*{session_id}*"]
    )
    assert read_verdict(pytester)["verdict"] == "FAIL"
    assert result.ret == 1
    assert_no_secret(
        {"stdout": result.stdout.str(), "stderr": result.stderr.str()},
        {"diagnostics token": service_env["TRIA_DIAGNOSTICS_TOKEN"]},
    )
    assert asyncio.run(_delete_session(deps.database_url, session_id)) == 1  # it was left behind
