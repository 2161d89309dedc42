"""Clients of the four dependencies, shared by the probes and the application.

The PostgreSQL pool and the Chroma client open lazily, under their dependency's timeout, so that a
dependency that is down (or hangs) at startup is reported by its probe rather than blocking the
others, and is picked up again by the monitor once it comes back. Their own limits (request and
command timeouts, retries) are the application's; probes impose their stricter ones per call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
from openai import AsyncOpenAI
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tria_service.chroma_http import ChromaHttp
from tria_service.config import Dependency, Settings, public_url, url_credentials
from tria_service.production.failures import ClientsClosedError, describe_failure
from tria_service.redaction import redact
from tria_service.redis_guard import RedisGuard

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10


class ClientsError(Exception):
    """Some dependencies could not be connected; names each with the probes' (redacted) wording."""

    def __init__(self, failures: dict[Dependency, str], hints: dict[Dependency, str]) -> None:
        self.failures = failures
        self.hints = hints
        lines = [f"  - {dep.value}: {cause} — {hints[dep]}" for dep, cause in failures.items()]
        super().__init__("\n".join(["could not connect to every dependency:", *lines]))

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.failures, self.hints)


@dataclass
class Clients:
    """One client per dependency; `database()` and `chroma()` connect on first use.

    Probes use ``redis`` itself; the application goes through ``redis_guard``, which gives up fast
    while Redis is failing.
    """

    settings: Settings
    redis: Redis = field(init=False)
    redis_guard: RedisGuard = field(init=False)
    openai: AsyncOpenAI = field(init=False)
    _pool: asyncpg.Pool | None = field(default=None, init=False)
    _chroma: ChromaHttp | None = field(default=None, init=False)
    _pool_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _closed: bool = field(default=False, init=False)

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
        self.redis_guard = RedisGuard(self.redis, self.settings)
        self.openai = AsyncOpenAI(
            api_key=self.settings.openai_api_key.get_secret_value(),
            base_url=self.settings.openai_endpoint(),
            max_retries=self.settings.tria_openai_max_retries,
            timeout=self.settings.tria_openai_request_timeout,
        )

    @classmethod
    async def create(cls, settings: Settings) -> Clients:
        """Clients with every connection opened now; raises ClientsError naming each failure."""
        clients = cls(settings)
        checks = {
            Dependency.DATABASE: clients.database(),
            Dependency.REDIS: clients._ping_redis(),
            Dependency.CHROMA: clients._heartbeat_chroma(),
        }
        outcomes = await asyncio.gather(*checks.values(), return_exceptions=True)
        secrets = settings.secret_values()
        failures: dict[Dependency, str] = {}
        hints: dict[Dependency, str] = {}
        for dep, outcome in zip(checks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                error, hint = describe_failure(dep, outcome, settings)
                failures[dep], hints[dep] = redact(error, secrets), redact(hint, secrets)
        if failures:
            await clients.close()
            raise ClientsError(failures, hints)
        return clients

    @property
    def closed(self) -> bool:
        """Whether close() has run: from then on no client is (re)opened."""
        return self._closed

    def ensure_open(self) -> None:
        """Raise ClientsClosedError once closed, before a use that would reconnect."""
        if self._closed:
            raise ClientsClosedError("the clients are closed")

    async def database(self) -> asyncpg.Pool:
        """The asyncpg pool, created on first use within the database timeout."""
        self.ensure_open()
        if self._pool is None:
            async with self._pool_lock:
                self.ensure_open()
                if self._pool is None:
                    self._pool = await self._create_pool()
        return self._pool

    def chroma(self) -> ChromaHttp:
        """The Chroma client (its connections open on first request)."""
        self.ensure_open()
        if self._chroma is None:
            self._chroma = self._create_chroma()
        return self._chroma

    @property
    def pool(self) -> asyncpg.Pool | None:
        """The pool if it is open (for stats and shutdown), without connecting."""
        return self._pool

    async def close(self) -> None:
        """Release every connection; a pool that will not drain in time is terminated."""
        self._closed = True
        await self.redis.aclose()
        await self.openai.close()
        async with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self.settings.timeout_for(Dependency.DATABASE)):
                    await pool.close()
            except TimeoutError:
                pool.terminate()
        chroma, self._chroma = self._chroma, None
        if chroma is not None:
            await chroma.aclose()

    async def _create_pool(self) -> asyncpg.Pool:
        timeout = self.settings.timeout_for(Dependency.DATABASE)
        async with asyncio.timeout(timeout):
            pool: asyncpg.Pool = await asyncpg.create_pool(
                self.settings.asyncpg_dsn(),
                min_size=POOL_MIN_SIZE,
                max_size=POOL_MAX_SIZE,
                timeout=timeout,
                command_timeout=self.settings.tria_db_command_timeout,
                server_settings={"application_name": self.settings.tria_service_id},
            )
        return pool

    def _create_chroma(self) -> ChromaHttp:
        url = self.settings.chroma_base_url()
        return ChromaHttp(
            public_url(url),
            timeout=self.settings.tria_chroma_request_timeout,
            auth=url_credentials(url),
        )

    async def _ping_redis(self) -> None:
        async with asyncio.timeout(self.settings.timeout_for(Dependency.REDIS)):
            await self.redis.ping()

    async def _heartbeat_chroma(self) -> None:
        async with asyncio.timeout(self.settings.timeout_for(Dependency.CHROMA)):
            await self.chroma().heartbeat()
