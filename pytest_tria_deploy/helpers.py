"""Small helpers suites use with the client fixtures (kept import-light for the plugin)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg
    import redis.asyncio as aioredis
    from asyncpg.pool import PoolConnectionProxy

KEY_TTL_SECONDS = 600


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants ``postgresql://``; the SQLAlchemy-style ``postgresql+asyncpg://`` works too.

    The service has the same conversion (``Settings.asyncpg_dsn``); the plugin keeps its own so
    that it never imports the service it verifies.
    """
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


@contextlib.asynccontextmanager
async def read_only(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy[Any]]:
    """A connection inside a read-only transaction: safe on protected targets."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        yield conn


class KeyNamespace:
    """Keys under one run's prefix, each written with a TTL and all deleted at teardown."""

    def __init__(self, client: aioredis.Redis, ttl: int = KEY_TTL_SECONDS) -> None:
        self.client = client
        self.ttl = ttl
        self.prefix = f"tria-deploy:test:{uuid.uuid4().hex[:12]}:"

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def set(self, name: str, value: str | bytes, ttl: int | None = None) -> str:
        """Write ``value`` under the namespaced key (always with a TTL) and return the key."""
        key = self.key(name)
        await self.client.set(key, value, ex=ttl or self.ttl)
        return key

    async def get(self, name: str) -> bytes | str | None:
        value: bytes | str | None = await self.client.get(self.key(name))
        return value

    async def cleanup(self) -> int:
        """Delete every key of this namespace; returns how many were deleted."""
        keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}*")]
        return int(await self.client.delete(*keys)) if keys else 0
