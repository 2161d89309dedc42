"""Clients of the four dependencies, shared by the probes and the application.

The PostgreSQL pool and the Chroma client open lazily, under their dependency's timeout, so that a
dependency that is down (or hangs) at startup is reported by its probe rather than blocking the
others, and is picked up again by the monitor once it comes back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg
import chromadb
from chromadb.api import AsyncClientAPI
from chromadb.config import Settings as ChromaSettings
from openai import AsyncOpenAI
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tria_service.config import Dependency, Settings
from tria_service.redaction import redact

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10


class ClientsError(Exception):
    """Some dependencies could not be connected; names each with a redacted cause."""

    def __init__(self, failures: dict[Dependency, str]) -> None:
        self.failures = failures
        lines = [f"  - {dep.value}: {cause}" for dep, cause in failures.items()]
        super().__init__("\n".join(["could not connect to every dependency:", *lines]))


@dataclass
class Clients:
    """One client per dependency; `database()` and `chroma()` connect on first use."""

    settings: Settings
    redis: Redis = field(init=False)
    openai: AsyncOpenAI = field(init=False)
    _pool: asyncpg.Pool | None = field(default=None, init=False)
    _chroma: AsyncClientAPI | None = field(default=None, init=False)
    _pool_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _chroma_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        redis_timeout = self.settings.timeout_for(Dependency.REDIS)
        self.redis = Redis.from_url(
            self.settings.redis_dsn(),
            socket_timeout=redis_timeout,
            socket_connect_timeout=redis_timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
            client_name=self.settings.tria_service_id,
        )
        self.openai = AsyncOpenAI(
            api_key=self.settings.openai_api_key.get_secret_value(),
            base_url=self.settings.openai_endpoint(),
            max_retries=0,
            timeout=self.settings.timeout_for(Dependency.OPENAI),
        )

    @classmethod
    async def create(cls, settings: Settings) -> Clients:
        """Clients with every connection opened now; raises ClientsError naming each failure."""
        clients = cls(settings)
        checks = {
            Dependency.DATABASE: clients.database(),
            Dependency.REDIS: clients._ping_redis(),
            Dependency.CHROMA: clients.chroma(),
        }
        outcomes = await asyncio.gather(*checks.values(), return_exceptions=True)
        failures = {
            dep: redact(_cause(outcome, settings.timeout_for(dep)), settings.secret_values())
            for dep, outcome in zip(checks, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        }
        if failures:
            await clients.close()
            raise ClientsError(failures)
        return clients

    async def database(self) -> asyncpg.Pool:
        """The asyncpg pool, created on first use within the database timeout."""
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await self._create_pool()
        return self._pool

    async def chroma(self) -> AsyncClientAPI:
        """The Chroma HTTP client, created on first use within the Chroma timeout."""
        if self._chroma is None:
            async with self._chroma_lock:
                if self._chroma is None:
                    self._chroma = await self._create_chroma()
        return self._chroma

    @property
    def pool(self) -> asyncpg.Pool | None:
        """The pool if it is open (for stats and shutdown), without connecting."""
        return self._pool

    async def close(self) -> None:
        """Release every connection; a pool that will not drain in time is terminated."""
        await self.redis.aclose()
        await self.openai.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self.settings.timeout_for(Dependency.DATABASE)):
                    await pool.close()
            except TimeoutError:
                pool.terminate()
        chroma, self._chroma = self._chroma, None
        if chroma is not None:
            await _close_chroma(chroma)

    async def _create_pool(self) -> asyncpg.Pool:
        timeout = self.settings.timeout_for(Dependency.DATABASE)
        async with asyncio.timeout(timeout):
            pool: asyncpg.Pool = await asyncpg.create_pool(
                self.settings.asyncpg_dsn(),
                min_size=POOL_MIN_SIZE,
                max_size=POOL_MAX_SIZE,
                timeout=timeout,
                command_timeout=timeout,
                server_settings={"application_name": self.settings.tria_service_id},
            )
        return pool

    async def _create_chroma(self) -> AsyncClientAPI:
        parts = urlsplit(self.settings.chroma_base_url())
        ssl = parts.scheme == "https"
        async with asyncio.timeout(self.settings.timeout_for(Dependency.CHROMA)):
            return await chromadb.AsyncHttpClient(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (443 if ssl else 80),
                ssl=ssl,
                settings=ChromaSettings(anonymized_telemetry=False),
            )

    async def _ping_redis(self) -> None:
        async with asyncio.timeout(self.settings.timeout_for(Dependency.REDIS)):
            await self.redis.ping()


def _cause(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:.1f}s"
    return f"{type(error).__name__}: {error}"


async def _close_chroma(client: AsyncClientAPI) -> None:
    """Chroma's async client has no public close; its HTTP transport does."""
    server = getattr(client, "_server", None)
    cleanup = getattr(server, "_cleanup", None)
    if cleanup is not None:
        await cleanup()
