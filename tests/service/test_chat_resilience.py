"""Chat when things break: a service restart, Redis flushed or hung, OpenAI failing or hanging,
OpenAI down at startup, PostgreSQL lost, no knowledge to load. Real servers; the broken ones are
the test's."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from tria_service.config import Settings
from tria_service.production.startup_orchestrator import StartupError

from pytest_tria_deploy.provision.processes import ServiceServer, start_service
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.service.helpers import (
    NO_DRAIN_DELAY,
    InProcessApp,
    bearer,
    hot_window,
    say,
    serve_in_process,
    set_fault_async,
    standin_stats,
)

if TYPE_CHECKING:
    from tests.conftest import FreshDeps

QUESTION = "How long do refunds take to arrive?"
GRACEFUL = "technical problem"


async def components(running: InProcessApp) -> dict[str, Any]:
    response = await running.client.get("/api/v1/health/diagnostics", headers=running.auth())
    sections: dict[str, Any] = response.json()["details"]["components"]
    return sections


async def escalation_reasons(database_url: str, session_id: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT reason FROM escalations WHERE session_id = $1 ORDER BY id",
            uuid.UUID(session_id),
        )
    finally:
        await conn.close()
    return [r["reason"] for r in rows]


async def test_sessions_survive_a_restart_of_the_service_process(
    chat_settings: Callable[..., Settings],
    service_env: Mapping[str, str],
    deps: DependencyEndpoints,
    fresh_deps: FreshDeps,
    tmp_path: Path,
) -> None:
    """Redis is flushed between the two processes, so the session can only come from
    PostgreSQL (the Redis is the test's own: flushing the shared one would hit other tests)."""
    settings = chat_settings()
    own = fresh_deps("redis")
    env = {
        **service_env,
        **own.env(),
        **NO_DRAIN_DELAY,
        "CHROMA_COLLECTION": settings.chroma_collection,
        "TRIA_KNOWLEDGE_DIR": str(settings.knowledge_dir()),
    }
    assert deps.servers.openai is not None
    standin = deps.servers.openai.url

    async def started() -> ServiceServer:
        return await asyncio.to_thread(start_service, tmp_path, env)

    server = await started()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            first = await say(client, "Hello")
            await say(client, QUESTION, first["session_id"])
    finally:
        await asyncio.to_thread(server.stop)
    embeddings = (await standin_stats(standin))["embeddings"]
    redis = Redis.from_url(own.redis_url, decode_responses=True)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()

    server = await started()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            ready_embeddings = (await standin_stats(standin))["embeddings"]
            third = await say(client, "My account is locked", first["session_id"])
            listed = await client.get(f"/api/v1/sessions/{first['session_id']}/messages")
            diagnostics = await client.get("/api/v1/health/diagnostics", headers=bearer(env))
    finally:
        await asyncio.to_thread(server.stop)

    assert third["session_id"] == first["session_id"]
    contents = [m["content"] for m in listed.json()["messages"] if m["role"] == "user"]
    assert contents == ["Hello", QUESTION, "My account is locked"]
    components = diagnostics.json()["details"]["components"]
    assert components["sessions"]["rebuilt_from_database"] >= 1
    knowledge = components["knowledge"]
    assert knowledge["last_ingest"]["unchanged"] == 3
    assert ready_embeddings == embeddings  # the restart re-ingested nothing


async def test_a_session_is_rebuilt_from_postgres_after_a_redis_flush(
    chat_settings: Callable[..., Settings], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("redis")
    async with serve_in_process(chat_settings(REDIS_URL=own.redis_url)) as running:
        client = running.client
        first = await say(client, "Hello")
        session_id = first["session_id"]
        await say(client, QUESTION, session_id)
        redis = Redis.from_url(own.redis_url, decode_responses=True)
        try:
            await redis.flushdb()
            after = await say(client, "My account is locked", session_id)
            hot = await hot_window(redis, session_id)
        finally:
            await redis.aclose()
        sessions = (await components(running))["sessions"]

    assert after["session_id"] == session_id
    assert [m["content"] for m in hot][::2] == [
        "Hello",
        QUESTION,
        "My account is locked",
    ]
    assert sessions["rebuilt_from_database"] == 1


async def test_a_hung_redis_costs_one_timeout_not_one_per_call_and_is_used_again_once_back(
    chat_settings: Callable[..., Settings], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("redis")
    server = own.servers.redis
    assert server is not None
    settings = chat_settings(REDIS_URL=own.redis_url, TRIA_TIMEOUT_REDIS="1.5")
    async with serve_in_process(settings) as running:
        client = running.client
        guard = running.app.state.chat.redis_guard
        session_id = (await say(client, "Hello"))["session_id"]
        # However slow the turns are, no call tries Redis again while it is paused.
        guard.cooldown = 3600.0
        server.process.pause()
        try:
            started = time.monotonic()
            same = await say(client, QUESTION, session_id)
            new = await say(client, QUESTION)
            elapsed = time.monotonic() - started
            hung = await guard.diagnostics()  # no I/O: as it is now
        finally:
            server.process.resume()
        guard.cooldown = 0.0  # the cooldown is over: the next call is the trial
        back = await say(client, "My account is locked", session_id)
        healed = await say(client, "Thanks", session_id)
        listed = await client.get(f"/api/v1/sessions/{session_id}/messages")
        sections = await components(running)
        redis = Redis.from_url(own.redis_url, decode_responses=True)
        try:
            hot = await hot_window(redis, session_id)
        finally:
            await redis.aclose()

    assert (same["session_id"], same["sources"][0]["source_id"]) == (session_id, "returns")
    assert new["sources"] == same["sources"]
    # Only the first Redis call waited; every later one was skipped (about ten of them).
    assert hung["bypassing"]
    assert hung["failures"] == {"rate_limit": 1}
    assert sum(hung["skipped_calls"].values()) >= 8
    # one timeout plus two turns' own work, where a wait per call once cost ~20 timeouts
    assert elapsed < 8 * settings.tria_timeout_redis
    assert not back["cached"]
    assert not healed["cached"]
    users = [m["content"] for m in listed.json()["messages"] if m["role"] == "user"]
    assert users == ["Hello", QUESTION, "My account is locked", "Thanks"]
    # the window the outage left short was dropped and rebuilt, not served stale
    assert [m["content"] for m in hot] == [m["content"] for m in listed.json()["messages"]]
    assert {name: sections[name]["status"] for name in ("redis_guard", "sessions", "cache")} == {
        "redis_guard": "pass",
        "sessions": "pass",
        "cache": "pass",
    }
    assert sections["sessions"]["rebuilt_from_database"] >= 2


async def test_openai_failing_or_hanging_gets_a_graceful_escalated_reply(
    chat_settings: Callable[..., Settings], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("openai")
    standin = own.servers.openai
    assert standin is not None
    settings = chat_settings(
        OPENAI_BASE_URL=own.openai_base_url,
        OPENAI_API_KEY=own.openai_api_key,
        TRIA_OPENAI_MAX_RETRIES="0",
        TRIA_OPENAI_REQUEST_TIMEOUT="1",
    )
    async with serve_in_process(settings) as running:
        client = running.client
        answered = await say(client, QUESTION)
        await set_fault_async(standin, "500")
        failing = await say(client, "My account is locked, what can I do?")
        await set_fault_async(standin, "hang")
        hanging = await say(client, "My account is locked, what can I do?")
        await set_fault_async(standin, "none")
        recovered = await say(client, "My account is locked, what can I do?")
        agent = (await components(running))["agent"]

    assert answered["sources"]
    for reply in (failing, hanging):
        assert GRACEFUL in reply["reply"]
        assert reply["escalated"]
        assert (reply["intent"], reply["confidence"], reply["sources"]) == ("general", 0.0, [])
        assert not reply["cached"]
        reasons = await escalation_reasons(settings.asyncpg_dsn(), reply["session_id"])
        assert reasons == ["assistant_unavailable"]
    assert recovered["sources"]
    assert not recovered["escalated"]
    assert not recovered["cached"]  # the failed turns were not cached
    assert agent["assistant_errors"] == 2
    assert "openai" in agent["last_error"] or "timed out" in agent["last_error"]


async def test_openai_down_at_startup_skips_ingestion_until_a_reindex(
    chat_settings: Callable[..., Settings], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("openai")
    standin = own.servers.openai
    assert standin is not None
    await set_fault_async(standin, "500")  # before the service starts
    settings = chat_settings(
        OPENAI_BASE_URL=own.openai_base_url,
        OPENAI_API_KEY=own.openai_api_key,
        TRIA_OPENAI_MAX_RETRIES="0",
        TRIA_CRITICAL_DEPENDENCIES="database,redis,chroma",
    )
    async with serve_in_process(settings) as running:
        client = running.client
        skipped = (await components(running))["knowledge"]
        graceful = await say(client, QUESTION)
        refused = await client.post("/api/v1/knowledge/reindex", headers=running.auth())
        await set_fault_async(standin, "none")
        reindexed = await client.post("/api/v1/knowledge/reindex", headers=running.auth())
        answered = await say(client, QUESTION)
        loaded = (await components(running))["knowledge"]

    assert (skipped["status"], skipped["chunks"]) == ("warn", 0)
    assert skipped["last_error"].startswith("ingestion skipped: openai unhealthy at startup")
    assert graceful["escalated"]
    assert GRACEFUL in graceful["reply"]
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert refused.json()["detail"].startswith("knowledge base unavailable: openai: HTTP 500")
    assert reindexed.status_code == 200, reindexed.text
    assert reindexed.json()["added"] == 3
    assert answered["sources"] == [{"source_id": "returns", "title": "Returns and refunds"}]
    assert (loaded["status"], loaded["chunks"], loaded["last_error"]) == ("pass", 6, None)


async def test_losing_postgres_answers_503_never_500(
    chat_settings: Callable[..., Settings], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("postgres")
    assert own.servers.postgres is not None
    async with serve_in_process(chat_settings(DATABASE_URL=own.database_url)) as running:
        first = await say(running.client, "Hello")
        own.servers.postgres.kill()
        new_session = await running.client.post("/api/v1/chat", json={"message": "Hello"})
        same_session = await running.client.post(
            "/api/v1/chat", json={"message": "Hello", "session_id": first["session_id"]}
        )
        listed = await running.client.get(f"/api/v1/sessions/{first['session_id']}/messages")

    # the session is still hot in Redis, but a turn that cannot be made durable is not answered
    for response in (new_session, same_session, listed):
        assert response.status_code == 503, response.text
        assert response.json()["detail"].startswith("storage unavailable: database:")
        assert response.headers["Retry-After"]


async def test_a_hung_postgres_answers_503_within_the_command_timeout_never_500(
    chat_settings: Callable[..., Settings], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("postgres")
    server = own.servers.postgres
    assert server is not None
    settings = chat_settings(DATABASE_URL=own.database_url, TRIA_DB_COMMAND_TIMEOUT="2")
    async with serve_in_process(settings) as running:
        first = await say(running.client, "Hello")
        server.process.pause()
        try:
            # a read touches only PostgreSQL after the limiter: its time is the storage's bound
            started = time.monotonic()
            listed = await running.client.get(f"/api/v1/sessions/{first['session_id']}/messages")
            elapsed = time.monotonic() - started
            turn = await running.client.post(
                "/api/v1/chat", json={"message": "Hello", "session_id": first["session_id"]}
            )
        finally:
            server.process.resume()
        after = await running.client.post(
            "/api/v1/chat", json={"message": "Hello", "session_id": first["session_id"]}
        )

    for refused in (listed, turn):
        assert refused.status_code == 503, refused.text
        detail = refused.json()["detail"]
        assert detail.startswith("storage unavailable: database: no answer within 2s")
        assert "TRIA_DB_COMMAND_TIMEOUT" in detail
    # one bound for the whole use of the connection: not the statement's, then the release's again
    assert elapsed < 1.75 * settings.tria_db_command_timeout
    assert after.status_code == 200, after.text


async def test_no_knowledge_to_load_refuses_startup_when_openai_and_chroma_are_critical(
    chat_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StartupError) as refused:
        async with serve_in_process(chat_settings(TRIA_KNOWLEDGE_DIR=str(empty))):
            pass
    assert "knowledge: ingestion failed: no articles (*.md)" in str(refused.value)
    assert "TRIA_KNOWLEDGE_DIR" in str(refused.value)

    lenient = chat_settings(TRIA_KNOWLEDGE_DIR=str(empty), TRIA_CRITICAL_DEPENDENCIES="database")
    async with serve_in_process(lenient) as running:
        knowledge = (await components(running))["knowledge"]
    assert knowledge["status"] == "warn"
    assert "no articles" in knowledge["last_error"]
