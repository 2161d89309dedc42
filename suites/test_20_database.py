"""Database: PostgreSQL answers, is recent enough, holds the expected schema, is fast and has room.

Safe on protected targets: every read runs in the ``pg`` pool (read-only there) and the one write
is rolled back. What the schema must hold comes from ``suites/expected_schema.toml``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import allure
import asyncpg

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import (
    Record,
    Timeouts,
    Warn,
    asyncpg_dsn,
    fail_listing,
    measure,
    read_only,
    rolled_back,
    timed_out,
    warn_over_budget,
    where,
)
from pytest_tria_deploy.report.attach import attach_json
from pytest_tria_deploy.targets import Budgets

CONNECT_ROUNDS = 3
QUERY_ROUNDS = 50
POOL_FAIL, POOL_WARN = 0.90, 0.75
REFUSED = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


@contextlib.contextmanager
def postgres_call(endpoints: Endpoints, seconds: float, doing: str = "answer") -> Iterator[None]:
    """Turn a PostgreSQL error into one line naming PostgreSQL, the cause and what to check; a
    hung server reads "timed out after Xs", ``seconds`` being the timeout the calls run under."""
    address = where(endpoints.database_url.get_secret_value(), 5432)
    try:
        yield
    except REFUSED as exc:
        fail_listing(
            [
                f"PostgreSQL at {address} refused the credentials: {exc} — check the user and "
                "password in DATABASE_URL (the target's database_url)"
            ]
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        cause = timed_out(seconds) if isinstance(exc, TimeoutError) else f"{type(exc).__name__}"
        if not isinstance(exc, TimeoutError) and str(exc):
            cause += f": {exc}"
        fail_listing(
            [
                f"PostgreSQL at {address} did not {doing}: {cause} — check DATABASE_URL and "
                "that the server runs"
            ]
        )


async def connect(endpoints: Endpoints, timeouts: Timeouts) -> asyncpg.Connection:
    """A fresh connection of our own, outside the ``pg`` pool, every call on it bounded."""
    return await asyncpg.connect(
        asyncpg_dsn(endpoints.database_url.get_secret_value()),
        timeout=timeouts.connect,
        command_timeout=timeouts.request,
        server_settings={"application_name": "tria-deploy"},
    )


async def test_database_connection(tria_endpoints: Endpoints, tria_timeouts: Timeouts) -> None:
    """PostgreSQL accepts a connection."""
    with postgres_call(tria_endpoints, tria_timeouts.connect, "accept a connection"):
        conn = await connect(tria_endpoints, tria_timeouts)
    with postgres_call(tria_endpoints, tria_timeouts.request):
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close(timeout=tria_timeouts.connect)


async def test_server_version(
    pg: asyncpg.Pool,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    expected_schema: dict[str, Any],
    tria_record: Record,
) -> None:
    """The server version is at least the supported minimum."""
    with postgres_call(tria_endpoints, tria_timeouts.request):
        number = int(await pg.fetchval("SHOW server_version_num"))
    tria_record("database.server_version_num", number, "")
    minimum = int(expected_schema["server"]["min_version"])
    if number // 10000 < minimum:
        fail_listing(
            [f"PostgreSQL {number // 10000} is older than the supported {minimum} — upgrade it"]
        )


async def test_schema_version(
    pg: asyncpg.Pool,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    expected_schema: dict[str, Any],
    tria_record: Record,
) -> None:
    """The schema is at the expected migration version."""
    with postgres_call(tria_endpoints, tria_timeouts.request):
        async with read_only(pg) as conn:
            if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                fail_listing(
                    [
                        "schema_migrations is missing: the database was never migrated — start "
                        "the service once against it (it migrates at startup)"
                    ]
                )
            version = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
            )
    tria_record("database.schema_version", version, "")
    expected = int(expected_schema["schema"]["version"])
    if version < expected:
        fail_listing(
            [
                f"the schema is at version {version}, {expected} expected — start the release "
                "that brings it (the service migrates at startup)"
            ]
        )
    if version > expected:
        fail_listing(
            [
                f"the schema is at version {version}, newer than the {expected} these suites "
                "expect — run the suites of the deployed release (suites/expected_schema.toml)"
            ]
        )


async def test_schema_objects(
    pg: asyncpg.Pool,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    expected_schema: dict[str, Any],
) -> None:
    """Every expected table, column and index exists."""
    tables: dict[str, list[str]] = expected_schema["tables"]
    indexes: dict[str, str] = expected_schema["indexes"]
    with postgres_call(tria_endpoints, tria_timeouts.request):
        async with read_only(pg) as conn:
            with allure.step("columns: every expected table has its columns"):
                columns = await conn.fetch(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
                    list(tables),
                )
                found: dict[str, set[str]] = {}
                for row in columns:
                    found.setdefault(row["table_name"], set()).add(row["column_name"])
                problems = [f"table {table} is missing" for table in tables if table not in found]
                problems += [
                    f"table {table} lacks column {column}"
                    for table, expected in tables.items()
                    if table in found
                    for column in expected
                    if column not in found[table]
                ]
            with allure.step("indexes: every expected index is on its table"):
                rows = await conn.fetch(
                    "SELECT indexname, tablename FROM pg_indexes"
                    " WHERE schemaname = current_schema()"
                )
                on_table = {row["indexname"]: row["tablename"] for row in rows}
                problems += [
                    f"index {index} on {table} is missing"
                    for index, table in indexes.items()
                    if on_table.get(index) != table
                ]
    if problems:
        fail_listing([*problems, "the schema is not the release's: check that its migrations ran"])


async def test_write_read_round_trip(
    pg: asyncpg.Pool, tria_endpoints: Endpoints, tria_timeouts: Timeouts
) -> None:
    """A write reads back inside a transaction that is rolled back."""
    marker = f"tria-deploy-check-{uuid.uuid4().hex}"
    with postgres_call(tria_endpoints, tria_timeouts.request):
        async with rolled_back(pg) as conn:
            session_id = await conn.fetchval(
                "INSERT INTO chat_sessions (client_id, metadata) VALUES ($1, $2::jsonb)"
                " RETURNING id",
                marker,
                '{"synthetic": true}',
            )
            read = await conn.fetchval(
                "SELECT client_id FROM chat_sessions WHERE id = $1", session_id
            )
            assert read == marker
        left = await pg.fetchval("SELECT count(*) FROM chat_sessions WHERE id = $1", session_id)
    assert left == 0


async def test_connection_latency(
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    pg: asyncpg.Pool,
    tria_budget: Budgets,
    tria_record: Record,
    tria_warn: Warn,
) -> None:
    """Connecting and querying are within the latency budget (over it: a warning)."""

    async def fresh_connection() -> None:
        conn = await connect(tria_endpoints, tria_timeouts)
        await conn.close(timeout=tria_timeouts.connect)

    with allure.step(f"connect: {CONNECT_ROUNDS} fresh connections"):
        with postgres_call(tria_endpoints, tria_timeouts.connect, "accept a connection"):
            connects = await measure(fresh_connection, CONNECT_ROUNDS)
        tria_record("database.connect_ms", round(connects.p50_ms, 3), "ms")
        warn_over_budget(
            tria_warn,
            "PostgreSQL: a fresh connection (p50)",
            "database_connect_ms",
            tria_budget.database_connect_ms,
            connects.p50_ms,
            record=tria_record,
        )
    with allure.step(f"queries: {QUERY_ROUNDS} SELECT 1 on one connection"):
        with postgres_call(tria_endpoints, tria_timeouts.request):
            async with pg.acquire() as conn:
                queries = await measure(lambda: conn.fetchval("SELECT 1"), QUERY_ROUNDS)
        tria_record("database.query_p50_ms", round(queries.p50_ms, 3), "ms")
        tria_record("database.query_p99_ms", round(queries.p99_ms, 3), "ms")
        warn_over_budget(
            tria_warn,
            f"PostgreSQL: SELECT 1 p99 over {queries.count} queries",
            "database_p99_ms",
            tria_budget.database_p99_ms,
            queries.p99_ms,
            record=tria_record,
        )
    attach_json("database latency", {"connect": connects.summary(), "select_1": queries.summary()})


async def test_connection_room(
    pg: asyncpg.Pool,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_record: Record,
    tria_warn: Warn,
) -> None:
    """Connections in use leave room under max_connections."""
    with postgres_call(tria_endpoints, tria_timeouts.request):
        async with read_only(pg) as conn:
            used = int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                )
            )
            limit = int(await conn.fetchval("SELECT current_setting('max_connections')::int"))
    tria_record("database.connections_used", used, "")
    tria_record("database.max_connections", limit, "")
    share = used / limit
    said = f"{used} of max_connections {limit} connections in use ({share:.0%})"
    if share > POOL_FAIL:
        fail_listing([f"{said}, over {POOL_FAIL:.0%} — raise max_connections or shrink the pools"])
    if share > POOL_WARN:
        tria_warn(f"{said}, over {POOL_WARN:.0%}")
