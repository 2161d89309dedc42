"""Apply pending migrations under an advisory lock, and check that nothing expected is missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from tria_service.db.schema import EXPECTED_INDEXES, EXPECTED_TABLES, MIGRATIONS, SCHEMA_VERSION

# Any fixed 64-bit key works; every instance of the service must use the same one.
MIGRATION_LOCK_KEY = 0x7472_6961_6D69_6772  # "triamigr"

Connection = asyncpg.Connection | PoolConnectionProxy
Target = asyncpg.Pool | Connection

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

log = structlog.get_logger(__name__)


@asynccontextmanager
async def _connection(target: Target) -> AsyncIterator[Connection]:
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            yield conn
    else:
        yield target


async def migrate(target: Target) -> int:
    """Apply every pending migration in one transaction; returns the schema version now recorded.

    The transaction-scoped advisory lock makes instances that start together take turns: the
    first applies, the others then find nothing left to do.
    """
    async with _connection(target) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_CREATE_LEDGER)
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            log.info("db.migration_applied", version=migration.version, name=migration.name)
        version: int = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return version


async def current_version(target: Target) -> int:
    """The highest recorded migration, 0 for a database never migrated."""
    async with _connection(target) as conn:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            return 0
        version: int | None = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return version or 0


async def verify_schema(target: Target) -> list[str]:
    """Everything expected but absent (tables, columns, indexes, version); empty when complete."""
    async with _connection(target) as conn:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
            list(EXPECTED_TABLES),
        )
        indexes = {
            r["indexname"]
            for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
        }
    columns: dict[str, set[str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], set()).add(row["column_name"])
    missing: list[str] = []
    for table, expected in EXPECTED_TABLES.items():
        if table not in columns:
            missing.append(f"table {table}")
            continue
        missing += [f"column {table}.{c}" for c in expected if c not in columns[table]]
    missing += [
        f"index {name} on {table}"
        for name, table in EXPECTED_INDEXES.items()
        if name not in indexes
    ]
    if "schema_migrations" in columns:
        version = await current_version(target)
        if version < SCHEMA_VERSION:
            missing.append(f"migration {SCHEMA_VERSION} (schema is at version {version})")
    return missing
