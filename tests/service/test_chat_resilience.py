"""Chat when things break: a service restart, a Redis flush, OpenAI failing or hanging, OpenAI down
at startup, PostgreSQL lost, no knowledge to load. Real servers; the broken ones are the test's."""

from __future__ import annotations

import asyncio
import json
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
    serve_in_process,
    set_fault_async,
    standin_stats,
)

if TYPE_CHECKING:
    from tests.conftest import FreshDeps

QUESTION = "How long do refunds take to arrive?"
GRACEFUL = "technical problem"


async def turn(
    client: httpx.AsyncClient, message: str, session_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if session_id is not None:
        body["session_id"] = session_id
    response = await client.post("/api/v1/chat", json=body)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


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
    tmp_path: Path,
) -> None:
    settings = chat_settings()
    env = {
        **service_env,
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
            first = await turn(client, "Hello")
            await turn(client, QUESTION, first["session_id"])
    finally:
        await asyncio.to_thread(server.stop)
    embeddings = (await standin_stats(standin))["embeddings"]

    server = await started()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            ready_embeddings = (await standin_stats(standin))["embeddings"]
            third = await turn(client, "My account is locked", first["session_id"])
            listed = await client.get(f"/api/v1/sessions/{first['session_id']}/messages")
            diagnostics = await client.get("/api/v1/health/diagnostics", headers=bearer(env))
    finally:
        await asyncio.to_thread(server.stop)

    assert third["session_id"] == first["session_id"]
    contents = [m["content"] for m in listed.json()["messages"] if m["role"] == "user"]
    assert contents == ["Hello", QUESTION, "My account is locked"]
    knowledge = diagnostics.json()["details"]["components"]["knowledge"]
    assert knowledge["last_ingest"]["unchanged"] == 3
    assert ready_embeddings == embeddings  # the restart re-ingested nothing


async def test_a_session_is_rebuilt_from_postgres_after_a_redis_flush(
    chat_settings: Callable[..., Settings], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("redis")
    async with serve_in_process(chat_settings(REDIS_URL=own.redis_url)) as running:
        client = running.client
        first = await turn(client, "Hello")
        session_id = first["session_id"]
        await turn(client, QUESTION, session_id)
        redis = Redis.from_url(own.redis_url, decode_responses=True)
        try:
            await redis.flushdb()
            after = await turn(client, "My account is locked", session_id)
            hot = await redis.lrange(f"tria:session:{session_id}:messages", 0, -1)
        finally:
            await redis.aclose()
        sessions = (await components(running))["sessions"]

    assert after["session_id"] == session_id
    assert [json.loads(m)["content"] for m in hot][::2] == [
        "Hello",
        QUESTION,
        "My account is locked",
    ]
    assert sessions["rebuilt_from_database"] == 1


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
        answered = await turn(client, QUESTION)
        await set_fault_async(standin, "500")
        failing = await turn(client, "My account is locked, what can I do?")
        await set_fault_async(standin, "hang")
        hanging = await turn(client, "My account is locked, what can I do?")
        await set_fault_async(standin, "none")
        recovered = await turn(client, "My account is locked, what can I do?")
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
        graceful = await turn(client, QUESTION)
        refused = await client.post("/api/v1/knowledge/reindex", headers=running.auth())
        await set_fault_async(standin, "none")
        reindexed = await client.post("/api/v1/knowledge/reindex", headers=running.auth())
        answered = await turn(client, QUESTION)
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
        first = await turn(running.client, "Hello")
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
