"""Migrations against a real PostgreSQL: versioned, idempotent, safe when instances race.

Each test works in its own schema of the shared database (search_path), so tests stay independent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tria_service.db import (
    EXPECTED_INDEXES,
    EXPECTED_TABLES,
    MIGRATIONS,
    SCHEMA_VERSION,
    current_version,
    migrate,
    verify_schema,
)

from pytest_tria_deploy.provision.stack import DependencyEndpoints


@pytest.fixture
async def schema(deps: DependencyEndpoints) -> AsyncIterator[str]:
    """A fresh, empty schema, dropped after the test."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(deps.database_url)
    await conn.execute(f"CREATE SCHEMA {name}")
    yield name
    await conn.execute(f"DROP SCHEMA {name} CASCADE")
    await conn.close()


async def connect(deps: DependencyEndpoints, schema: str) -> asyncpg.Connection:
    return await asyncpg.connect(deps.database_url, server_settings={"search_path": schema})


@pytest.fixture
async def conn(deps: DependencyEndpoints, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection working in the test's own schema, closed before the schema is dropped."""
    connection = await connect(deps, schema)
    yield connection
    await connection.close()


async def recorded(conn: asyncpg.Connection) -> list[tuple[int, str, object]]:
    rows = await conn.fetch("SELECT version, name, applied_at FROM schema_migrations ORDER BY 1")
    return [(r["version"], r["name"], r["applied_at"]) for r in rows]


async def test_fresh_database_is_migrated_and_versioned(
    conn: asyncpg.Connection, schema: str
) -> None:
    before = await verify_schema(conn)
    assert {f"table {t}" for t in EXPECTED_TABLES} <= set(before)
    assert await current_version(conn) == 0

    assert await migrate(conn) == SCHEMA_VERSION
    assert await verify_schema(conn) == []
    assert await current_version(conn) == SCHEMA_VERSION
    assert [(v, n) for v, n, _ in await recorded(conn)] == [(m.version, m.name) for m in MIGRATIONS]
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    assert {r["table_name"] for r in tables} == set(EXPECTED_TABLES)
    indexes = await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema)
    assert set(EXPECTED_INDEXES) <= {r["indexname"] for r in indexes}


async def test_migrate_is_idempotent_and_keeps_data(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    first = await recorded(conn)
    session_id = await conn.fetchval(
        "INSERT INTO chat_sessions (client_id) VALUES ('acme') RETURNING id"
    )
    await conn.execute(
        "INSERT INTO chat_messages (session_id, role, content, intent, confidence)"
        " VALUES ($1, 'user', 'where is my order?', 'order_status', 0.92)",
        session_id,
    )

    assert await migrate(conn) == SCHEMA_VERSION
    assert await migrate(conn) == SCHEMA_VERSION
    assert await recorded(conn) == first
    assert await conn.fetchval("SELECT count(*) FROM chat_messages") == 1
    assert await verify_schema(conn) == []


async def test_concurrent_migrators_take_turns(deps: DependencyEndpoints, schema: str) -> None:
    """Instances starting together: one applies, the others wait on the lock and find it done."""
    conns = [await connect(deps, schema) for _ in range(6)]
    try:
        versions = await asyncio.gather(*(migrate(c) for c in conns))
        assert versions == [SCHEMA_VERSION] * len(conns)
        assert [v for v, _, _ in await recorded(conns[0])] == [m.version for m in MIGRATIONS]
        assert await verify_schema(conns[0]) == []
    finally:
        for conn in conns:
            await conn.close()


async def test_only_pending_migrations_are_applied(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    first_applied = (await recorded(conn))[0]
    await conn.execute("DROP TABLE knowledge_documents")
    await conn.execute("DELETE FROM schema_migrations WHERE version = $1", SCHEMA_VERSION)
    assert await current_version(conn) == SCHEMA_VERSION - 1
    assert "table knowledge_documents" in await verify_schema(conn)

    assert await migrate(conn) == SCHEMA_VERSION
    assert await verify_schema(conn) == []
    assert (await recorded(conn))[0] == first_applied


async def test_verify_schema_names_what_is_missing(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    await conn.execute("DROP INDEX chat_messages_session_id_id_idx")
    await conn.execute("ALTER TABLE chat_messages DROP COLUMN intent")
    assert await verify_schema(conn) == [
        "column chat_messages.intent",
        "index chat_messages_session_id_id_idx on chat_messages",
    ]


async def test_migrate_accepts_a_pool(deps: DependencyEndpoints, schema: str) -> None:
    pool = await asyncpg.create_pool(
        deps.database_url, min_size=1, max_size=2, server_settings={"search_path": schema}
    )
    try:
        assert await migrate(pool) == SCHEMA_VERSION
        assert await verify_schema(pool) == []
    finally:
        await pool.close()


async def test_schema_enforces_its_relations(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO chat_messages (session_id, role, content) VALUES ($1, 'user', 'hi')",
            uuid.uuid4(),
        )
    session_id = await conn.fetchval(
        "INSERT INTO chat_sessions (client_id, metadata)"
        " VALUES ('acme', '{\"channel\": \"web\"}') RETURNING id"
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO chat_messages (session_id, role, content) VALUES ($1, 'robot', 'x')",
            session_id,
        )
    message_id = await conn.fetchval(
        "INSERT INTO chat_messages (session_id, role, content) VALUES ($1, 'user', 'help')"
        " RETURNING id",
        session_id,
    )
    await conn.execute(
        "INSERT INTO escalations (session_id, message_id, reason, intent)"
        " VALUES ($1, $2, 'asked for a human', 'complaint')",
        session_id,
        message_id,
    )
    assert await conn.fetchval("SELECT resolved FROM escalations") is False
    await conn.execute("DELETE FROM chat_sessions WHERE id = $1", session_id)
    assert await conn.fetchval("SELECT count(*) FROM escalations") == 0
