"""Synthetic traffic over real HTTP: a deployment gate's conversation on a protected target needs
the diagnostics or admin token, counts for its own session only, and leaves PostgreSQL and Redis
exactly as it found them once its sessions are deleted.

The module runs one service on servers of its own (nothing else writes to them), so a snapshot of
every Redis key and value and every table's row count shows anything a conversation left behind.
The rate window is a day long, so no counter of an earlier test expires between two snapshots.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from tria_service.api.chat import SYNTHETIC_UNAUTHORIZED, ChatResponseBody
from tria_service.app import create_app
from tria_service.chat.cache import CLAIMS_KEY, CachedAnswer, ResponseCache
from tria_service.chat.intents import Intent
from tria_service.chat.rate_limit import client_key, session_key
from tria_service.chat.sessions import SESSION_KEY, WINDOW_KEY
from tria_service.config import load_settings
from tria_service.production.health_monitor import HealthMonitor
from tria_service.production.lifecycle_manager import LifecycleManager
from tria_service.redis_guard import RedisGuard

from pytest_tria_deploy.provision.fresh import FreshDeps
from pytest_tria_deploy.provision.processes import start_service
from pytest_tria_deploy.provision.stack import DependencyEndpoints, service_env
from tests.service.helpers import own_loopback

VAT_QUESTION = "How do I get a VAT invoice for my order?"
VAT_ARTICLE = "invoices-vat-receipts"
TRACKING_QUESTION = "How do I track my order?"
COMPLAINT = (
    "This is unacceptable, I am very unhappy with your terrible service and want to complain."
)
PER_SESSION = 30


@dataclass(frozen=True)
class Stack:
    url: str
    deps: DependencyEndpoints
    env: Mapping[str, str]

    def bearer(self, variable: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env[variable]}"}

    def synthetic(self, variable: str = "TRIA_DIAGNOSTICS_TOKEN") -> dict[str, str]:
        return {"X-Tria-Synthetic": "1", **self.bearer(variable)}


# Every user table, its name quoted by the server (format's %I) so it can be queried as it is.
_TABLES = (
    "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
    " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
)


@dataclass(frozen=True)
class Snapshot:
    """Every Redis key with its serialised value, and every table's row count."""

    redis: dict[bytes, bytes | None]
    rows: dict[str, int]


def _no_shared_deps() -> DependencyEndpoints:
    raise AssertionError("this module starts all four dependencies itself")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A service on its own PostgreSQL, Redis, Chroma and stand-in."""
    workdir = tmp_path_factory.mktemp("synthetic")
    fresh = FreshDeps(workdir, _no_shared_deps)
    try:
        deps = fresh()
        env = {
            **service_env(
                deps,
                secret_key=secrets.token_urlsafe(32),
                diagnostics_token=secrets.token_urlsafe(24),
            ),
            "TRIA_ADMIN_TOKEN": secrets.token_urlsafe(24),
            "TRIA_RATE_LIMIT_PER_SESSION": str(PER_SESSION),
            "TRIA_RATE_LIMIT_WINDOW": "86400",
        }
        server = start_service(workdir, env)
        try:
            yield Stack(server.url, deps, env)
        finally:
            server.stop()
    finally:
        fresh.stop_all()


@dataclass(frozen=True)
class Caller:
    client: httpx.AsyncClient
    peer: str  # the address the service sees, and counts the client's rate limit under


@pytest.fixture
async def caller(stack: Stack) -> AsyncIterator[Caller]:
    """An HTTP client connecting from a loopback address of its own."""
    peer = own_loopback()
    transport = httpx.AsyncHTTPTransport(local_address=peer)
    async with httpx.AsyncClient(base_url=stack.url, transport=transport, timeout=30) as client:
        yield Caller(client, peer)


@pytest.fixture
async def redis(stack: Stack) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.deps.redis_url)  # bytes: DUMP values are binary
    yield client
    await client.aclose()


@pytest.fixture
async def pg(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.deps.database_url)
    yield conn
    await conn.close()


async def snapshot(redis: Redis, pg: asyncpg.Connection) -> Snapshot:
    keys = [key async for key in redis.scan_iter(count=1000)]
    values = {key: await redis.dump(key) for key in keys}
    rows = {}
    for (table,) in await pg.fetch(_TABLES):
        rows[table] = await pg.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 (quoted)
    assert rows, "the service's tables should exist"
    return Snapshot(values, rows)


async def turn(
    client: httpx.AsyncClient,
    message: str,
    headers: Mapping[str, str],
    session_id: str | None = None,
) -> httpx.Response:
    """One chat turn that must succeed, its body checked against the declared model."""
    body: dict[str, Any] = {"message": message}
    if session_id is not None:
        body["session_id"] = session_id
    response = await client.post("/api/v1/chat", json=body, headers=dict(headers))
    assert response.status_code == 200, response.text
    ChatResponseBody.model_validate(response.json())
    return response


def remaining(response: httpx.Response) -> int:
    return int(response.headers["RateLimit-Remaining"])


async def test_the_synthetic_header_without_a_valid_token_is_refused_and_counts_nothing(
    stack: Stack, caller: Caller, redis: Redis, pg: asyncpg.Connection
) -> None:
    wrong = f"not-the-token-{secrets.token_hex(8)}"
    attempts = [
        {"X-Tria-Synthetic": "1"},
        {"X-Tria-Synthetic": "true", "Authorization": f"Bearer {wrong}"},
        {"X-Tria-Synthetic": "yes", "Authorization": f"Basic {wrong}"},
    ]
    before = await snapshot(redis, pg)
    refused = []
    for headers in attempts:
        refused.append(
            await caller.client.post(
                "/api/v1/chat", json={"message": VAT_QUESTION}, headers=headers
            )
        )
        refused.append(
            await caller.client.get(f"/api/v1/sessions/{uuid.uuid4()}/messages", headers=headers)
        )
    after = await snapshot(redis, pg)

    for response in refused:
        assert response.status_code == 401, response.text
        assert response.json() == {"detail": SYNTHETIC_UNAUTHORIZED}
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert wrong not in response.text
    assert "TRIA_DIAGNOSTICS_TOKEN" in SYNTHETIC_UNAUTHORIZED
    assert "TRIA_ADMIN_TOKEN" in SYNTHETIC_UNAUTHORIZED
    assert after == before  # refused before anything was counted or stored


async def test_a_synthetic_turn_counts_for_its_session_and_never_for_the_client(
    stack: Stack, caller: Caller, redis: Redis, pg: asyncpg.Connection
) -> None:
    client, counter = caller.client, client_key(caller.peer)
    first = await turn(client, TRACKING_QUESTION, stack.synthetic())
    session_id = first.json()["session_id"]
    second = await turn(client, "Thanks, and on Sunday?", stack.synthetic(), session_id)
    read = await client.get(
        f"/api/v1/sessions/{session_id}/messages", headers=stack.synthetic("TRIA_ADMIN_TOKEN")
    )
    counted_for_client = await redis.get(counter)
    counted_for_session = await redis.get(session_key(uuid.UUID(session_id)))
    metadata = await pg.fetchval(
        "SELECT metadata FROM chat_sessions WHERE id = $1", uuid.UUID(session_id)
    )
    plain = await turn(client, TRACKING_QUESTION, {})  # no header, no token: as before
    plain_id = plain.json()["session_id"]
    plain_metadata = await pg.fetchval(
        "SELECT metadata FROM chat_sessions WHERE id = $1", uuid.UUID(plain_id)
    )
    counted_after_plain = await redis.get(counter)
    for deleted in (session_id, plain_id):
        gone = await client.delete(
            f"/api/v1/sessions/{deleted}", headers=stack.bearer("TRIA_DIAGNOSTICS_TOKEN")
        )
        assert gone.status_code == 200, gone.text

    assert first.headers["RateLimit-Limit"] == str(PER_SESSION)
    assert [remaining(first), remaining(second)] == [PER_SESSION - 1, PER_SESSION - 2]
    assert read.status_code == 200, read.text
    assert len(read.json()["messages"]) == 4
    assert remaining(read) == PER_SESSION - 3  # the read counted for the session
    assert counted_for_client is None
    assert counted_for_session == b"3"
    assert metadata == '{"synthetic": true}'
    assert plain_metadata == "{}"
    assert counted_after_plain == b"1"  # the same address, counted once it sent a plain turn


async def test_a_synthetic_conversation_leaves_nothing_behind_once_deleted(
    stack: Stack, caller: Caller, redis: Redis, pg: asyncpg.Connection
) -> None:
    client = caller.client
    before = await snapshot(redis, pg)

    asked = await turn(client, VAT_QUESTION, stack.synthetic("TRIA_DIAGNOSTICS_TOKEN"))
    first_id = asked.json()["session_id"]
    again = await turn(client, VAT_QUESTION, stack.synthetic("TRIA_ADMIN_TOKEN"))
    second_id = again.json()["session_id"]
    complained = await turn(client, COMPLAINT, stack.synthetic(), second_id)
    during = await snapshot(redis, pg)
    claimed = await redis.smembers(CLAIMS_KEY.format(id=first_id))
    not_claimed = await redis.exists(CLAIMS_KEY.format(id=second_id))

    second_gone = await client.delete(
        f"/api/v1/sessions/{second_id}", headers=stack.bearer("TRIA_DIAGNOSTICS_TOKEN")
    )
    still_cached = [key for key in claimed if await redis.exists(key)]
    first_gone = await client.delete(
        f"/api/v1/sessions/{first_id}", headers=stack.bearer("TRIA_ADMIN_TOKEN")
    )
    after = await snapshot(redis, pg)

    assert VAT_ARTICLE in [s["source_id"] for s in asked.json()["sources"]]
    assert not asked.json()["cached"]
    assert again.json()["cached"]
    assert again.json()["sources"] == asked.json()["sources"]
    assert complained.json()["escalated"]
    new_keys = {key.decode() for key in set(during.redis) - set(before.redis)}
    for session_id in (first_id, second_id):
        assert SESSION_KEY.format(id=session_id) in new_keys
        assert WINDOW_KEY.format(id=session_id) in new_keys
        assert session_key(uuid.UUID(session_id)) in new_keys
    assert CLAIMS_KEY.format(id=first_id) in new_keys
    assert len(claimed) == 1  # the answer the first session created
    assert not_claimed == 0  # a cache hit and an escalation create no entry
    assert client_key(caller.peer) not in new_keys
    assert {"public.chat_sessions", "public.chat_messages", "public.escalations"} <= set(
        before.rows
    )
    assert during.rows != before.rows
    assert second_gone.json() == {"session_id": second_id, "messages": 4, "escalations": 1}
    assert still_cached == list(claimed)  # not the second session's to delete
    assert first_gone.json() == {"session_id": first_id, "messages": 2, "escalations": 0}
    assert after.rows == before.rows
    assert set(after.redis) == set(before.redis)
    assert after == before


async def test_an_answer_that_real_traffic_cached_is_left_in_place(
    stack: Stack, caller: Caller, redis: Redis
) -> None:
    client = caller.client
    real = await turn(client, "Can I pay in instalments with Klarna?", {})
    keys_before = {key async for key in redis.scan_iter(match="tria:answer:*")}
    values_before = {key: await redis.get(key) for key in keys_before}
    synthetic = await turn(client, "Can I pay in instalments with Klarna?", stack.synthetic())
    session_id = synthetic.json()["session_id"]
    claims = await redis.exists(CLAIMS_KEY.format(id=session_id))
    for deleted in (session_id, real.json()["session_id"]):
        gone = await client.delete(
            f"/api/v1/sessions/{deleted}", headers=stack.bearer("TRIA_DIAGNOSTICS_TOKEN")
        )
        assert gone.status_code == 200, gone.text
    values_after = {key: await redis.get(key) for key in keys_before}

    assert synthetic.json()["cached"]
    assert claims == 0
    assert values_after == values_before  # the entry real traffic made outlives the deletions


async def test_a_claim_never_overwrites_an_entry_and_forgetting_deletes_only_its_own(
    stack: Stack,
) -> None:
    """The race a hit cannot show: the entry appears between the session's miss and its store."""
    settings = load_settings(**stack.env, TRIA_CACHE_TTL="600")
    client = Redis.from_url(stack.deps.redis_url, decode_responses=True)
    cache = ResponseCache(RedisGuard(client, settings), settings)
    session_id = uuid.uuid4()
    claims = CLAIMS_KEY.format(id=session_id)
    theirs = f"tria:answer:test-{secrets.token_hex(8)}"
    ours = f"tria:answer:test-{secrets.token_hex(8)}"

    def answer(text: str) -> CachedAnswer:
        return CachedAnswer(reply=text, intent=Intent.GENERAL, confidence=0.9, sources=[])

    try:
        await client.set(theirs, answer("theirs").model_dump_json(), ex=600)
        await cache.put(theirs, answer("ours"), claim_for=session_id)
        await cache.put(ours, answer("ours"), claim_for=session_id)
        kept = await cache.get(theirs)
        stored = await cache.get(ours)
        claimed = await client.smembers(claims)
        claims_ttl = await client.ttl(claims)
        await cache.forget(session_id)
        left = await client.exists(theirs, ours, claims)
    finally:
        await client.delete(theirs, ours, claims)
        await client.aclose()

    assert kept is not None
    assert kept.reply == "theirs"
    assert stored is not None
    assert stored.reply == "ours"
    assert claimed == {ours}
    assert 0 < claims_ttl <= 600
    assert left == 1  # theirs


def test_openapi_documents_the_synthetic_header_and_its_token() -> None:
    schema = create_app(monitor=HealthMonitor(), lifecycle=LifecycleManager()).openapi()
    for path, method in [
        ("/api/v1/chat", "post"),
        ("/api/v1/sessions/{session_id}/messages", "get"),
    ]:
        operation = schema["paths"][path][method]
        (header,) = [p for p in operation["parameters"] if p["name"] == "X-Tria-Synthetic"]
        assert header["in"] == "header"
        assert "TRIA_DIAGNOSTICS_TOKEN" in header["description"]
        assert "TRIA_ADMIN_TOKEN" in header["description"]
        assert operation["security"] == [{"AdminBearer": []}, {}]  # the token is optional
        assert "X-Tria-Synthetic" in operation["responses"]["401"]["description"]
        assert "X-Tria-Synthetic" in operation["description"]
