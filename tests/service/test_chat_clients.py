"""Whose budget a request counts against: the peer address by default, a forwarded address only
from a listed proxy, X-Client-Id only when a trusted gateway sets it; message reads count too.

In process, each app's client has an address of its own; over TCP the test binds its own
loopback addresses, so the budgets of the shared Redis are the test's alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import asyncpg
import httpx
import pytest
from tria_service.api.chat import RateLimitedBody
from tria_service.config import Settings

from pytest_tria_deploy.provision.processes import ServiceServer, start_service
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.service.helpers import NO_DRAIN_DELAY, own_loopback, serve_in_process

HELLO = {"message": "Hello"}


@pytest.fixture
async def pg(deps: DependencyEndpoints) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(deps.database_url)
    yield conn
    await conn.close()


async def stored_client(pg: asyncpg.Connection, response: httpx.Response) -> str:
    """The client id a new session was filed under in PostgreSQL."""
    session_id = uuid.UUID(response.json()["session_id"])
    client_id: str = await pg.fetchval(
        "SELECT client_id FROM chat_sessions WHERE id = $1", session_id
    )
    return client_id


def refused_scope(response: httpx.Response) -> str:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    return RateLimitedBody.model_validate(response.json()).scope


def forwarded_address() -> str:
    """A random address of the benchmarking range (198.18.0.0/15), for X-Forwarded-For."""
    return str(ipaddress.IPv4Address((198 << 24) + (18 << 16) + secrets.randbelow(1 << 17)))


async def test_rotating_client_ids_and_new_sessions_from_one_address_share_its_budget(
    chat_settings: Callable[..., Settings], pg: asyncpg.Connection
) -> None:
    settings = chat_settings(TRIA_RATE_LIMIT_PER_CLIENT="3")
    async with serve_in_process(settings) as running:
        responses = [
            await running.client.post(
                "/api/v1/chat", json=HELLO, headers={"X-Client-Id": f"rotated-{n}"}
            )
            for n in range(4)
        ]
        first_client = await stored_client(pg, responses[0])

    assert [r.status_code for r in responses[:3]] == [200, 200, 200]
    assert len({r.json()["session_id"] for r in responses[:3]}) == 3  # each a new session
    assert refused_scope(responses[3]) == "client"
    assert first_client == running.peer  # the header was not believed


async def test_a_trusted_gateways_client_ids_have_budgets_of_their_own(
    chat_settings: Callable[..., Settings], pg: asyncpg.Connection
) -> None:
    settings = chat_settings(TRIA_RATE_LIMIT_PER_CLIENT="2", TRIA_TRUST_CLIENT_ID_HEADER="true")
    alice = {"X-Client-Id": f"alice-{secrets.token_hex(6)}"}
    bob = {"X-Client-Id": f"bob-{secrets.token_hex(6)}"}
    async with serve_in_process(settings) as running:
        client = running.client
        alices = [await client.post("/api/v1/chat", json=HELLO, headers=alice) for _ in range(3)]
        bobs = await client.post("/api/v1/chat", json=HELLO, headers=bob)
        unnamed = await client.post("/api/v1/chat", json=HELLO)  # no header: the peer address
        filed = [await stored_client(pg, r) for r in (alices[0], bobs, unnamed)]
        invalid = [
            await client.post("/api/v1/chat", json=HELLO, headers={"X-Client-Id": value})
            for value in ("c" * 201, "")
        ]

    assert [r.status_code for r in alices[:2]] == [200, 200]
    assert refused_scope(alices[2]) == "client"
    assert bobs.status_code == unnamed.status_code == 200
    assert filed == [alice["X-Client-Id"], bob["X-Client-Id"], running.peer]
    for response in invalid:  # a trusted header names a budget: it must be a usable name
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["header", "X-Client-Id"]
        assert error["msg"] == "X-Client-Id must be 1 to 200 characters"


async def test_reading_messages_counts_against_the_client(
    chat_settings: Callable[..., Settings],
) -> None:
    async with serve_in_process(chat_settings(TRIA_RATE_LIMIT_PER_CLIENT="3")) as running:
        client = running.client
        session_id = (await client.post("/api/v1/chat", json=HELLO)).json()["session_id"]
        listed = await client.get(f"/api/v1/sessions/{session_id}/messages")
        unknown = await client.get(f"/api/v1/sessions/{uuid.uuid4()}/messages")
        scraped = await client.get(f"/api/v1/sessions/{session_id}/messages")
        turn = await client.post("/api/v1/chat", json={**HELLO, "session_id": session_id})

    assert listed.status_code == 200, listed.text
    assert len(listed.json()["messages"]) == 2
    assert (listed.headers["RateLimit-Limit"], listed.headers["RateLimit-Remaining"]) == ("3", "1")
    assert unknown.status_code == 404  # unknown ids count too
    assert unknown.headers["RateLimit-Remaining"] == "0"
    assert refused_scope(scraped) == "client"
    assert refused_scope(turn) == "client"  # reads and turns share the client's budget


def bound_client(server: ServiceServer, address: str) -> httpx.AsyncClient:
    """A client whose connections come from ``address`` (any 127.0.0.0/8 address is local)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=server.url, transport=transport, timeout=30)


async def turns_forwarded_for(
    server: ServiceServer, address: str, forwarded: list[str]
) -> list[httpx.Response]:
    """One new-session turn from ``address`` per X-Forwarded-For value (rotating X-Client-Id)."""
    async with bound_client(server, address) as client:
        return [
            await client.post(
                "/api/v1/chat",
                json=HELLO,
                headers={"X-Forwarded-For": value, "X-Client-Id": secrets.token_hex(8)},
            )
            for value in forwarded
        ]


async def test_x_forwarded_for_is_believed_only_from_a_listed_proxy(
    service_env: Mapping[str, str], pg: asyncpg.Connection, tmp_path: Path
) -> None:
    proxy, direct, behind = own_loopback(), own_loopback(), own_loopback()
    env = {
        **service_env,
        **NO_DRAIN_DELAY,
        "TRIA_ENABLE_RAG": "false",  # nothing to ingest: only the limits matter here
        "TRIA_RATE_LIMIT_PER_CLIENT": "1",
    }
    default, proxied = await asyncio.gather(
        asyncio.to_thread(start_service, tmp_path, env),
        asyncio.to_thread(start_service, tmp_path, {**env, "TRIA_FORWARDED_ALLOW_IPS": proxy}),
    )
    a, b, forged = forwarded_address(), forwarded_address(), forwarded_address()
    try:
        spoofing = await turns_forwarded_for(default, direct, [a, b])
        via_proxy = await turns_forwarded_for(proxied, proxy, [a, a, f"{forged}, {b}"])
        around_proxy = await turns_forwarded_for(proxied, behind, [forged, forwarded_address()])
    finally:
        await asyncio.gather(asyncio.to_thread(default.stop), asyncio.to_thread(proxied.stop))

    # No proxy is trusted by default, not even on loopback: the peer is the client.
    assert spoofing[0].status_code == 200, spoofing[0].text
    assert refused_scope(spoofing[1]) == "client"
    assert await stored_client(pg, spoofing[0]) == direct
    # From the listed proxy, the address it forwards is the client (the rightmost untrusted one,
    # so a value the client put in front is not).
    assert via_proxy[0].status_code == via_proxy[2].status_code == 200
    assert refused_scope(via_proxy[1]) == "client"
    assert [await stored_client(pg, via_proxy[i]) for i in (0, 2)] == [a, b]
    # From any other peer, X-Forwarded-For is ignored.
    assert around_proxy[0].status_code == 200
    assert refused_scope(around_proxy[1]) == "client"
    assert await stored_client(pg, around_proxy[0]) == behind
