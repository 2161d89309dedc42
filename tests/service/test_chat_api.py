"""The chat API over HTTP (uvicorn in the test process, lifespan run for real) against real
PostgreSQL, Redis, Chroma and the OpenAI stand-in: conversations, citations, escalations, the
cache, RAG switched off, validation and admin routes."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import jsonschema_rs
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis
from structlog.testing import capture_logs
from tria_service.api.body_limit import MAX_BODY_BYTES
from tria_service.api.chat import MESSAGE_PATTERN, ChatRequestBody, MessagesBody, RateLimitedBody
from tria_service.app import create_app
from tria_service.chat.cache import ResponseCache
from tria_service.chat.rate_limit import client_key, session_key
from tria_service.chat.sessions import SESSION_KEY, WINDOW_KEY
from tria_service.config import Settings
from tria_service.production.health_monitor import HealthMonitor
from tria_service.production.lifecycle_manager import LifecycleManager

from pytest_tria_deploy.provision.processes import ServiceServer
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.service.helpers import (
    LIFECYCLE_STEPS,
    eventually,
    hot_window,
    say,
    serve_in_process,
    standin_stats,
)

REFUND_QUESTION = "How long do refunds take to arrive?"


async def completions(deps: DependencyEndpoints) -> int:
    assert deps.servers.openai is not None
    return int((await standin_stats(deps.servers.openai.url))["chat_completions"])


@pytest.fixture
async def pg(deps: DependencyEndpoints) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(deps.database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def redis_client(deps: DependencyEndpoints) -> AsyncIterator[Redis]:
    client = Redis.from_url(deps.redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_a_conversation_keeps_its_history(
    chat_settings: Callable[..., Settings], redis_client: Redis
) -> None:
    turns = ["Hello", REFUND_QUESTION, "My account is locked, what can I do?"]
    settings = chat_settings(TRIA_SESSION_TTL="600")  # not the default: the setting is used
    async with serve_in_process(settings) as running:
        first = await say(running.client, turns[0])
        session_id = first["session_id"]
        for message in turns[1:]:
            assert (await say(running.client, message, session_id))["session_id"] == session_id
        listed = await running.client.get(f"/api/v1/sessions/{session_id}/messages")
        hot = await hot_window(redis_client, session_id)
        ttls = [
            await redis_client.ttl(key.format(id=session_id)) for key in (SESSION_KEY, WINDOW_KEY)
        ]

    assert listed.status_code == 200
    body = MessagesBody.model_validate(listed.json())
    assert [m.role for m in body.messages] == ["user", "assistant"] * 3
    assert [m.content for m in body.messages if m.role == "user"] == turns
    assert [m.id for m in body.messages] == sorted(m.id for m in body.messages)
    assert body.messages[0].intent == "general"
    assert [m["content"] for m in hot] == [m.content for m in body.messages]
    assert all(0 < ttl <= 600 for ttl in ttls), ttls  # hot state expires: PostgreSQL keeps it


async def test_a_knowledge_question_is_answered_citing_the_right_article(
    chat_settings: Callable[..., Settings],
) -> None:
    async with serve_in_process(chat_settings()) as running:
        reply = await say(running.client, "My account is locked after failed sign-in attempts")

    assert reply["intent"] == "technical_support"
    assert reply["sources"] == [{"source_id": "passwords", "title": "Password help"}]
    assert "locked for 30 minutes" in reply["reply"]
    assert not reply["escalated"]
    assert not reply["cached"]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("This is unacceptable, your service is terrible and I am angry", "complaint"),
        ("I want to speak to a real person, a human agent please", "human_handoff"),
        ("xyzzy plugh", "low_confidence"),
    ],
)
async def test_escalations_are_filed_and_said(
    chat_settings: Callable[..., Settings], pg: asyncpg.Connection, message: str, reason: str
) -> None:
    async with serve_in_process(chat_settings()) as running:
        reply = await say(running.client, message)

    assert reply["escalated"]
    assert "human agent" in reply["reply"]
    rows = await pg.fetch(
        "SELECT e.reason, e.intent, m.content FROM escalations e"
        " JOIN chat_messages m ON m.id = e.message_id WHERE e.session_id = $1",
        uuid.UUID(reply["session_id"]),
    )
    assert [(r["reason"], r["intent"], r["content"]) for r in rows] == [
        (reason, reply["intent"], message)
    ]


async def test_a_run_of_unanswered_questions_escalates(
    chat_settings: Callable[..., Settings], pg: asyncpg.Connection
) -> None:
    unanswerable = "Where is my order? I need the tracking number for my parcel"
    async with serve_in_process(chat_settings(TRIA_ESCALATION_MAX_FAILURES="2")) as running:
        first = await say(running.client, unanswerable)
        second = await say(running.client, unanswerable, first["session_id"])
        third = await say(running.client, REFUND_QUESTION, first["session_id"])

    assert (first["intent"], first["sources"], first["escalated"]) == ("order_status", [], False)
    assert "human agent" not in first["reply"]
    assert second["escalated"]
    assert "A human agent will follow up with you shortly." in second["reply"]
    assert third["sources"]
    assert not third["escalated"]  # the run was reset by the escalation
    reasons = await pg.fetch(
        "SELECT reason FROM escalations WHERE session_id = $1", uuid.UUID(first["session_id"])
    )
    assert [r["reason"] for r in reasons] == ["repeated_failures"]


async def test_a_repeated_question_is_served_from_the_cache_without_a_model_call(
    chat_settings: Callable[..., Settings], deps: DependencyEndpoints, redis_client: Redis
) -> None:
    settings = chat_settings(TRIA_CACHE_TTL="120")
    async with serve_in_process(settings) as running:
        first = await say(running.client, REFUND_QUESTION)
        before = await completions(deps)
        again = await say(running.client, "  how long do REFUNDS take to arrive ")
        after = await completions(deps)
        complaint = "This is unacceptable and I am very angry about it"
        await say(running.client, complaint)
        second_complaint = await say(running.client, complaint)
        response = await running.client.get("/api/v1/health/diagnostics", headers=running.auth())
    version = response.json()["details"]["components"]["knowledge"]["version"]
    key = ResponseCache.key(
        REFUND_QUESTION,
        version=version,
        model=settings.openai_model,
        knowledge=settings.chroma_collection,
    )

    assert not first["cached"]
    assert again["cached"]
    assert after == before  # not even the classification ran
    assert again["session_id"] != first["session_id"]
    assert (again["reply"], again["sources"], again["intent"]) == (
        first["reply"],
        first["sources"],
        first["intent"],
    )
    assert second_complaint["escalated"]
    assert not second_complaint["cached"]  # escalations are never cached
    assert 0 < await redis_client.ttl(key) <= 120  # stored under its key, with TRIA_CACHE_TTL


async def test_a_follow_up_is_only_replayed_after_the_same_conversation(
    chat_settings: Callable[..., Settings],
) -> None:
    follow_up = "And when will the refund arrive?"
    async with serve_in_process(chat_settings()) as running:
        client = running.client
        returns = await say(client, REFUND_QUESTION)
        after_returns = await say(client, follow_up, returns["session_id"])
        passwords = await say(client, "How do I reset my password?")
        after_passwords = await say(client, follow_up, passwords["session_id"])
        replayed = await say(client, REFUND_QUESTION)
        after_replayed = await say(client, follow_up, replayed["session_id"])

    assert not after_returns["cached"]
    assert not after_passwords["cached"]  # "that" is something else in this conversation
    assert replayed["cached"]
    assert after_replayed["cached"]  # the same conversation so far: the same answer
    assert after_replayed["reply"] == after_returns["reply"]


async def test_concurrent_turns_of_one_session_are_all_kept_in_order(
    chat_settings: Callable[..., Settings], redis_client: Redis
) -> None:
    async with serve_in_process(chat_settings(TRIA_SESSION_HISTORY="10")) as running:
        client = running.client
        session_id = (await say(client, "Hello"))["session_id"]
        messages = [f"Zebra quokka number {n}" for n in range(8)]
        replies = await asyncio.gather(*(say(client, m, session_id) for m in messages))
        await say(client, "Zebra quokka at last", session_id)  # sees the window they left
        listed = await client.get(f"/api/v1/sessions/{session_id}/messages")
        hot = await hot_window(redis_client, session_id)

    stored = MessagesBody.model_validate(listed.json()).messages
    assert {r["session_id"] for r in replies} == {session_id}
    assert [m.role for m in stored] == ["user", "assistant"] * 10
    assert sorted(m.content for m in stored[2:-2:2]) == sorted(messages)  # none lost
    for question, answer in zip(stored[::2], stored[1::2], strict=True):
        assert question.content in answer.content or question.content == "Hello"
    assert [(m["id"], m["content"]) for m in hot] == [(m.id, m.content) for m in stored[-10:]]


async def test_reindexing_picks_up_a_change_and_new_knowledge_is_not_served_stale(
    chat_settings: Callable[..., Settings],
) -> None:
    settings = chat_settings()
    folder = settings.knowledge_dir()
    async with serve_in_process(settings) as running:
        before = await say(running.client, REFUND_QUESTION)
        (folder / "returns.md").write_text(
            "# Returns and refunds\n\n## Refund timing\nRefunds arrive within 3 working days.\n"
        )
        (folder / "payments.md").unlink()
        reindexed = await running.client.post("/api/v1/knowledge/reindex", headers=running.auth())
        unchanged = await running.client.post("/api/v1/knowledge/reindex", headers=running.auth())
        after = await say(running.client, REFUND_QUESTION)

    assert reindexed.status_code == 200, reindexed.text
    counts = reindexed.json()
    assert {k: counts[k] for k in ("added", "updated", "deleted", "unchanged")} == {
        "added": 0,
        "updated": 1,
        "deleted": 1,
        "unchanged": 1,
    }
    assert unchanged.json()["unchanged"] == 2
    assert unchanged.json()["chunks_written"] == 0
    assert not after["cached"]  # the knowledge version moved, so the old answer is not replayed
    assert "within 3 working days" in after["reply"]
    assert "within 3 working days" not in before["reply"]


async def test_the_rate_limit_answers_429_with_retry_after_and_recovers(
    chat_settings: Callable[..., Settings], redis_client: Redis
) -> None:
    # A window far longer than the test: however slow the turns, the refusals stay refusals.
    settings = chat_settings(
        TRIA_RATE_LIMIT_PER_CLIENT="3", TRIA_RATE_LIMIT_PER_SESSION="2", TRIA_RATE_LIMIT_WINDOW="30"
    )
    async with serve_in_process(settings) as running:
        client = running.client
        first = await client.post("/api/v1/chat", json={"message": "Hello"})
        session_id = first.json()["session_id"]
        second = await client.post(
            "/api/v1/chat", json={"message": "Hello", "session_id": session_id}
        )
        over_session = await client.post(
            "/api/v1/chat", json={"message": "Hello", "session_id": session_id}
        )
        over_client = await client.post("/api/v1/chat", json={"message": "Hello"})
        # End both windows now, as their expiry would: the limiter's keys go from Redis.
        windows = [client_key(running.peer), session_key(uuid.UUID(session_id))]
        for key in windows:
            assert await redis_client.pexpire(key, 1)

        async def ended() -> bool:
            return await redis_client.exists(*windows) == 0

        assert await eventually(ended)
        recovered = await client.post(
            "/api/v1/chat", json={"message": "Hello", "session_id": session_id}
        )

    assert first.status_code == second.status_code == 200
    assert first.headers["RateLimit-Limit"] == "2"  # the most constrained scope: the session
    assert first.headers["RateLimit-Remaining"] == "1"
    assert second.headers["RateLimit-Remaining"] == "0"  # the session's 2nd of 2
    for refused, scope in ((over_session, "session"), (over_client, "client")):
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
        assert refused.headers["RateLimit-Remaining"] == "0"
        body = RateLimitedBody.model_validate(refused.json())
        assert body.scope == scope
        assert body.window_s == 30
        assert body.retry_after_s == int(refused.headers["Retry-After"])
    assert recovered.status_code == 200, recovered.text
    assert recovered.headers["RateLimit-Remaining"] == "1"  # a new window: its 1st of 2


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"message": ""}, "empty"),
        ({"message": " \n\t "}, "empty"),
        ({"message": "x" * 101}, "longer than 100 characters"),
        ({"message": "x" * 100_001}, "longer than 100 characters"),  # the configured limit
        ({"message": "nul \x00 byte"}, "control characters"),
        ({"message": "\ud800 alone"}, "lone surrogate"),  # JSON can escape one
        ({}, "Field required"),
        ({"message": 42}, "valid string"),
        ({"message": "hi", "session_id": "not-a-uuid"}, "UUID"),
    ],
)
async def test_invalid_input_is_a_422_naming_the_problem(
    chat_settings: Callable[..., Settings], body: dict[str, Any], fragment: str
) -> None:
    async with serve_in_process(chat_settings(TRIA_CHAT_MAX_MESSAGE_CHARS="100")) as running:
        # sent as raw JSON, so the unpaired surrogate reaches the service as the client wrote it
        raw = json.dumps(body).encode()
        response = await running.client.post(
            "/api/v1/chat", content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert fragment in json.dumps(detail, ensure_ascii=False)
    assert all("input" not in error for error in detail)  # the client's text is not echoed


def _every_character() -> list[str]:
    """Each code point of the BMP (no lone surrogates: JSON text cannot carry one), and a sample
    of the others, which neither regex class names."""
    bmp = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    return bmp + [chr(c) for c in range(0x10000, sys.maxunicode + 1, 0x1001)]


def _accepted(message: str) -> bool:
    """What the service's model says of a message (the length limit is checked apart)."""
    try:
        ChatRequestBody.model_validate({"message": message})
    except ValidationError:
        return False
    return True


async def test_the_schema_declares_the_message_rules_the_service_enforces(
    chat_settings: Callable[..., Settings],
) -> None:
    """minLength, maxLength (each app's own TRIA_CHAT_MAX_MESSAGE_CHARS) and a pattern that both
    JSON Schema's engine (jsonschema_rs, what schemathesis judges with) and Python's re (what it
    generates with) read as the service's own rules, for every character alone or after text."""
    probes = [
        "",
        " \u3000",
        "\ufeff",
        "ok\x85",
        "\x85",
        "x" * 100,
        "x" * 101,
        "a\x7f",
        "a\rb",
        "t\tn\n",
    ]
    unknown = str(uuid.uuid4())  # a message that passes validation gets 404, a turn-free answer
    async with (
        serve_in_process(chat_settings(TRIA_CHAT_MAX_MESSAGE_CHARS="100")) as small,
        serve_in_process(chat_settings(TRIA_CHAT_MAX_MESSAGE_CHARS="2000")) as large,
    ):
        schemas = [(await app.client.get("/openapi.json")).json() for app in (small, large)]
        statuses = [
            (
                await small.client.post(
                    "/api/v1/chat", json={"message": probe, "session_id": unknown}
                )
            ).status_code
            for probe in probes
        ]

    declared = [
        s["components"]["schemas"]["ChatRequestBody"]["properties"]["message"] for s in schemas
    ]
    assert [(d["minLength"], d["maxLength"]) for d in declared] == [(1, 100), (1, 2000)]
    assert declared[0]["pattern"] == MESSAGE_PATTERN
    validator = jsonschema_rs.validator_for(declared[0])
    assert statuses == [404 if validator.is_valid(p) else 422 for p in probes]
    assert statuses.count(404) == 5  # the probes cover both answers
    python_re = re.compile(MESSAGE_PATTERN)
    disagreements = [
        (hex(ord(char)), message)
        for char in _every_character()
        for message in (char, f"a{char}")
        if not validator.is_valid(message) == bool(python_re.search(message)) == _accepted(message)
    ]
    assert not disagreements


@pytest.mark.parametrize(
    ("body", "position", "error"),
    [
        (b'{"message": "caf\xe9"}', 16, "the JSON body is not valid UTF-8 (byte 16)"),  # Latin-1
        (b'{"message": "\xed\xa0\x80"}', 13, "the JSON body is not valid UTF-8 (byte 13)"),
        (b'{"message": "\x80"}', 13, "the JSON body is not valid UTF-8 (byte 13)"),
        ('{"message": "hi"}'.encode("utf-16"), 0, "the JSON body is not valid UTF-8 (byte 0)"),
        (b'{"message": ', 12, "Expecting value"),  # JSON that does not parse, for comparison
    ],
    ids=["latin-1", "encoded-surrogate", "lone-continuation-byte", "utf-16", "truncated-json"],
)
async def test_a_json_body_that_is_not_utf8_is_a_422_like_any_unparsable_json(
    running_service: ServiceServer, body: bytes, position: int, error: str
) -> None:
    """Over HTTP: a declared 422 naming the cause, not FastAPI's undeclared 400."""
    async with httpx.AsyncClient(base_url=running_service.url, timeout=10) as client:
        response = await client.post(
            "/api/v1/chat", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": [
            {
                "type": "json_invalid",
                "loc": ["body", position],
                "msg": "JSON decode error",
                "ctx": {"error": error},
            }
        ]
    }


async def test_a_utf8_body_may_still_start_with_a_byte_order_mark(
    running_service: ServiceServer,
) -> None:
    """RFC 8259 lets a parser ignore it, and the service did before bodies had to be UTF-8."""
    async with httpx.AsyncClient(base_url=running_service.url, timeout=10) as client:
        response = await client.post(
            "/api/v1/chat",
            content=b'\xef\xbb\xbf{"message": ""}',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "message"]  # parsed: the message itself is what is wrong
    assert "must not be empty or only whitespace" in problem["msg"]


async def test_a_body_larger_than_any_valid_request_is_refused_before_it_is_read(
    chat_settings: Callable[..., Settings],
) -> None:
    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    headers = {"Content-Type": "application/json"}
    escaped = json.dumps({"message": "\U0001f600" * 4000}).encode()  # 12 bytes a character
    async with serve_in_process(chat_settings()) as running:
        client = running.client
        declared = await client.post(
            "/api/v1/chat", content=b" " * (MAX_BODY_BYTES + 1), headers=headers
        )
        streamed = await client.post("/api/v1/chat", content=chunked(), headers=headers)
        largest = await client.post("/api/v1/chat", content=escaped, headers=headers)

    for refused in (declared, streamed):
        assert refused.status_code == 413
        assert refused.json() == {"detail": f"request body larger than {MAX_BODY_BYTES} bytes"}
    assert largest.status_code == 200, largest.text  # the longest valid message still fits


async def test_unknown_or_malformed_session_ids_and_headers(
    chat_settings: Callable[..., Settings],
) -> None:
    unknown = str(uuid.uuid4())
    async with serve_in_process(chat_settings()) as running:
        client = running.client
        chat_unknown = await client.post(
            "/api/v1/chat", json={"message": "Hello", "session_id": unknown}
        )
        messages_unknown = await client.get(f"/api/v1/sessions/{unknown}/messages")
        messages_malformed = await client.get("/api/v1/sessions/12345/messages")
        # not trusted (the default), so ignored: neither believed nor validated
        ignored_client_id = await client.post(
            "/api/v1/chat", json={"message": "Hello"}, headers={"X-Client-Id": "c" * 201}
        )

    assert chat_unknown.status_code == 404
    assert chat_unknown.json() == {"detail": "session not found"}
    assert "RateLimit-Remaining" in chat_unknown.headers
    assert messages_unknown.status_code == 404
    assert messages_malformed.status_code == 422
    assert ignored_client_id.status_code == 200, ignored_client_id.text


async def test_a_synthetic_session_is_marked_and_deleted_everywhere_by_an_admin(
    chat_settings: Callable[..., Settings], pg: asyncpg.Connection, redis_client: Redis
) -> None:
    admin_token = secrets.token_urlsafe(24)
    async with serve_in_process(chat_settings(TRIA_ADMIN_TOKEN=admin_token)) as running:
        client = running.client
        created = await client.post(
            "/api/v1/chat",
            json={"message": "This is unacceptable, I want to complain"},
            headers={"X-Tria-Synthetic": "1", **running.auth()},
        )
        session_id = created.json()["session_id"]
        path = f"/api/v1/sessions/{session_id}"
        anonymous = await client.delete(path)
        wrong = await client.delete(path, headers={"Authorization": "Bearer wrong-token-123456"})
        metadata = await pg.fetchval(
            "SELECT metadata FROM chat_sessions WHERE id = $1", uuid.UUID(session_id)
        )
        deleted = await client.delete(path, headers={"Authorization": f"Bearer {admin_token}"})
        again = await client.delete(path, headers=running.auth())  # the diagnostics token too
        listed = await client.get(f"{path}/messages")
        hot = await redis_client.exists(
            SESSION_KEY.format(id=session_id), WINDOW_KEY.format(id=session_id)
        )

    assert created.json()["escalated"]
    assert json.loads(metadata) == {"synthetic": True}
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"session_id": session_id, "messages": 2, "escalations": 1}
    assert again.status_code == 404
    assert listed.status_code == 404
    assert hot == 0
    rows = await pg.fetchval(
        "SELECT count(*) FROM escalations WHERE session_id = $1", uuid.UUID(session_id)
    )
    assert rows == 0


async def test_reindex_needs_a_token(chat_settings: Callable[..., Settings]) -> None:
    admin_token = secrets.token_urlsafe(24)
    async with serve_in_process(chat_settings(TRIA_ADMIN_TOKEN=admin_token)) as running:
        anonymous = await running.client.post("/api/v1/knowledge/reindex")
        wrong = await running.client.post(
            "/api/v1/knowledge/reindex", headers={"Authorization": "Bearer not-the-token-000"}
        )
        admin = await running.client.post(
            "/api/v1/knowledge/reindex", headers={"Authorization": f"Bearer {admin_token}"}
        )
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json() == {"detail": "unauthorized"}
    assert admin.status_code == 200, admin.text
    assert (admin.json()["unchanged"], admin.json()["chunks_written"]) == (3, 0)


async def test_with_rag_off_a_knowledge_question_is_answered_without_searching(
    chat_settings: Callable[..., Settings], deps: DependencyEndpoints
) -> None:
    assert deps.servers.openai is not None
    standin = deps.servers.openai.url
    async with serve_in_process(chat_settings(TRIA_ENABLE_RAG="false")) as running:
        # the articles are in the collection, so a search would find them
        reindexed = await running.client.post("/api/v1/knowledge/reindex", headers=running.auth())
        before = (await standin_stats(standin))["embeddings"]
        reply = await say(running.client, REFUND_QUESTION)
        after = (await standin_stats(standin))["embeddings"]
        agent = (
            await running.client.get("/api/v1/health/diagnostics", headers=running.auth())
        ).json()["details"]["components"]["agent"]

    assert reindexed.json()["added"] == 3
    assert reply["sources"] == []
    assert after == before  # a search embeds the question first: none was made
    assert agent["features"]["rag"] is False


async def test_diagnostics_show_every_component_section_and_shutdown_logs_the_counters(
    chat_settings: Callable[..., Settings],
) -> None:
    with capture_logs() as logs:
        async with serve_in_process(chat_settings()) as running:
            await say(running.client, REFUND_QUESTION)
            await say(running.client, REFUND_QUESTION)
            response = await running.client.get(
                "/api/v1/health/diagnostics", headers=running.auth()
            )
            lifecycle = running.lifecycle.registered
    closed = {e["event"]: e for e in logs if e["event"] in {"cache.closed", "rate_limiter.closed"}}

    components = response.json()["details"]["components"]
    assert set(components) == {
        "knowledge",
        "intent_classifier",
        "sessions",
        "cache",
        "rate_limiter",
        "agent",
        "redis_guard",
    }
    classifier = components["intent_classifier"]
    assert (classifier["status"], classifier["classified"], classifier["fallbacks"]) == (
        "pass",
        1,  # the repeated question came from the cache, unclassified
        0,
    )
    assert classifier["last_fallback_reason"] is None
    knowledge = components["knowledge"]
    assert (knowledge["status"], knowledge["chunks"], knowledge["documents"]) == ("pass", 6, 3)
    assert knowledge["last_ingest"]["added"] == 3
    assert knowledge["version"] == knowledge["last_ingest"]["version"]
    cache = components["cache"]
    assert (cache["hits"], cache["misses"], cache["hit_ratio"]) == (1, 1, 0.5)
    limiter = components["rate_limiter"]
    assert (limiter["per_client"], limiter["window_s"], limiter["allowed"]) == (120, 60, 2)
    assert limiter["rejections"] == 0
    assert components["agent"]["turns"] == 2
    assert components["sessions"]["created"] == 2
    guard = components["redis_guard"]
    assert (guard["status"], guard["failures"], guard["skipped_calls"]) == ("pass", {}, {})
    assert lifecycle == LIFECYCLE_STEPS
    # the cache's and the limiter's shutdown steps: their final counters, which die with the app
    cache_closed = closed["cache.closed"]
    assert (cache_closed["hits"], cache_closed["misses"], cache_closed["hit_ratio"]) == (1, 1, 0.5)
    limiter_closed = closed["rate_limiter.closed"]
    assert (limiter_closed["allowed"], limiter_closed["rejections"]) == (2, 0)


def test_openapi_declares_every_response_a_client_can_cause() -> None:
    schema = create_app(monitor=HealthMonitor(), lifecycle=LifecycleManager()).openapi()
    paths = schema["paths"]
    chat = paths["/api/v1/chat"]["post"]["responses"]
    assert set(chat) == {"200", "401", "404", "413", "422", "429", "503"}
    assert "X-Tria-Synthetic" in chat["401"]["description"]
    assert "Retry-After" in chat["429"]["headers"]
    assert "RateLimit-Remaining" in chat["200"]["headers"]
    messages = paths["/api/v1/sessions/{session_id}/messages"]["get"]["responses"]
    assert set(messages) == {"200", "401", "404", "422", "429", "503"}
    assert "Retry-After" in messages["429"]["headers"]
    assert "RateLimit-Remaining" in messages["200"]["headers"]
    delete = paths["/api/v1/sessions/{session_id}"]["delete"]
    assert set(delete["responses"]) == {"200", "401", "404", "422", "503"}
    assert delete["security"] == [{"AdminBearer": []}]
    assert set(paths["/api/v1/knowledge/reindex"]["post"]["responses"]) == {"200", "401", "503"}
