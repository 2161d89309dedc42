"""Health probes of the four dependencies, written once for the orchestrator and the monitor.

A probe never raises: it returns a ProbeResult whose error is short, names the cause (refused,
timed out, authentication failed, ...) and whose hint names the variable to check. Every text is
redacted with the settings' secrets, and every probe is bounded by its dependency's timeout.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import chromadb.errors
import openai
import redis.exceptions
from asyncpg.pool import Pool

from tria_service.clients import Clients
from tria_service.config import Dependency, Settings
from tria_service.redaction import redact, redact_value

HEALTH_KEY_PREFIX = "tria:health:"
HEALTH_KEY_TTL_S = 30
_MAX_ERROR_LENGTH = 300
_DISPLAY_NAMES = {
    Dependency.DATABASE: "PostgreSQL",
    Dependency.REDIS: "Redis",
    Dependency.OPENAI: "the OpenAI endpoint",
    Dependency.CHROMA: "Chroma",
}
_REFUSED_TEXT = ("connection refused", "[errno 111]", "all connection attempts failed")
_REDIS_AUTH_TEXT = ("noauth", "wrongpass", "invalid password", "invalid username-password")


class ServiceStatus(StrEnum):
    """Health of one dependency; DEGRADED works but slower than its budget."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class ProbeResult:
    """One observation of one dependency; safe to log or serve (already redacted)."""

    name: str
    status: ServiceStatus
    latency_ms: float
    checked_at: datetime
    version: str | None = None
    error: str | None = None
    hint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Usable: healthy or merely degraded."""
        return self.status is not ServiceStatus.UNHEALTHY

    def describe(self) -> str:
        """ "name: error — hint", the one line a failure is reported as."""
        text = f"{self.name}: {self.error or self.status.value}"
        return f"{text} — {self.hint}" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["status"] = self.status.value
        data["checked_at"] = self.checked_at.isoformat()
        return data


@dataclass(frozen=True)
class Observation:
    """What a successful check saw."""

    version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class ProbeFailure(Exception):
    """The dependency answered, but not as required; carries the exact error and hint to report."""

    def __init__(self, error: str, hint: str) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint


Check = Callable[[], Awaitable[Observation]]


class Probes:
    """Checks of each dependency through the shared clients."""

    def __init__(self, settings: Settings, clients: Clients) -> None:
        self.settings = settings
        self.clients = clients
        self._redis_version: str | None = None

    async def probe(self, dep: Dependency) -> ProbeResult:
        """The runtime probe of one dependency."""
        checks: dict[Dependency, Callable[[], Awaitable[ProbeResult]]] = {
            Dependency.DATABASE: self.database,
            Dependency.REDIS: self.redis,
            Dependency.OPENAI: self.openai,
            Dependency.CHROMA: self.chroma,
        }
        return await checks[dep]()

    async def database(self) -> ProbeResult:
        """Server version through the pool, with pool statistics; does not migrate."""
        return await self.run(Dependency.DATABASE, self.check_database)

    async def redis(self) -> ProbeResult:
        """One write/read/delete round trip on a namespaced key with a TTL."""
        return await self.run(Dependency.REDIS, lambda: self.check_redis(round_trips=1))

    async def redis_baseline(self) -> ProbeResult:
        """The startup check: many round trips, with p50/p99 latency as the baseline."""
        rounds = self.settings.tria_redis_baseline_round_trips
        return await self.run(Dependency.REDIS, lambda: self.check_redis(round_trips=rounds))

    async def openai(self) -> ProbeResult:
        """The models list offers the configured chat and embedding models."""
        return await self.run(Dependency.OPENAI, self.check_openai)

    async def chroma(self) -> ProbeResult:
        """Heartbeat, version, and the knowledge collection exists (never created here)."""
        return await self.run(Dependency.CHROMA, lambda: self.check_chroma(create=False))

    async def chroma_prepare(self) -> ProbeResult:
        """The startup check: as chroma(), creating the knowledge collection if it is absent."""
        return await self.run(Dependency.CHROMA, lambda: self.check_chroma(create=True))

    async def run(self, dep: Dependency, check: Check) -> ProbeResult:
        """Run one check under the dependency's timeout and turn any failure into a result."""
        timeout = self.settings.timeout_for(dep)
        secrets = self.settings.secret_values()
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                seen = await check()
        except Exception as exc:
            error, hint = describe_failure(dep, exc, self.settings)
            return ProbeResult(
                name=dep.value,
                status=ServiceStatus.UNHEALTHY,
                latency_ms=_elapsed_ms(started),
                checked_at=checked_at,
                error=redact(error, secrets)[:_MAX_ERROR_LENGTH],
                hint=redact(hint, secrets),
            )
        latency_ms = _elapsed_ms(started)
        budget_ms = self.settings.latency_budget_ms(dep)
        slow = latency_ms > budget_ms
        return ProbeResult(
            name=dep.value,
            status=ServiceStatus.DEGRADED if slow else ServiceStatus.HEALTHY,
            latency_ms=latency_ms,
            checked_at=checked_at,
            version=redact(seen.version, secrets) if seen.version else None,
            error=f"slow: {latency_ms:.0f} ms over the {budget_ms:.0f} ms budget" if slow else None,
            hint=(
                f"is {_DISPLAY_NAMES[dep]} overloaded? raise TRIA_TIMEOUT_{dep.value.upper()} "
                "if this latency is normal"
                if slow
                else None
            ),
            details=redact_value(seen.details, secrets),
        )

    async def check_database(self) -> Observation:
        """Raw check (raises): server version and pool statistics."""
        pool = await self.clients.database()
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT current_setting('server_version') AS version, version() AS banner,"
                " current_database() AS database"
            )
        if row is None:
            raise ProbeFailure(
                "the server returned no row for SELECT version()", "check DATABASE_URL"
            )
        return Observation(
            version=row["version"],
            details={
                "server": row["banner"],
                "database": row["database"],
                "pool": pool_stats(pool),
            },
        )

    async def check_redis(self, round_trips: int) -> Observation:
        """Raw check (raises): SET/GET/DEL round trips, each one network round trip."""
        client = self.clients.redis
        key = f"{HEALTH_KEY_PREFIX}{uuid.uuid4().hex}"
        samples: list[float] = []
        for _ in range(round_trips):
            token = uuid.uuid4().hex
            started = time.perf_counter()
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(key, token, ex=HEALTH_KEY_TTL_S)
                pipe.get(key)
                pipe.delete(key)
                _, read_back, _ = await pipe.execute()
            samples.append(_elapsed_ms(started))
            if read_back != token:
                raise ProbeFailure(
                    "read-back mismatch: the value written was not the value read",
                    f"is another client writing {HEALTH_KEY_PREFIX}* keys? check "
                    f"{self.settings.config_vars(Dependency.REDIS)} and REDIS_DB",
                )
        if self._redis_version is None:
            info = await client.info("server")
            self._redis_version = str(info.get("redis_version", "unknown"))
        details: dict[str, Any] = {"round_trips": round_trips, "key_prefix": HEALTH_KEY_PREFIX}
        details.update(latency_percentiles(samples))
        return Observation(version=self._redis_version, details=details)

    async def check_openai(self) -> Observation:
        """Raw check (raises): both configured models are offered."""
        page = await self.clients.openai.models.list()
        offered = {model.id for model in page.data}
        wanted = {
            "OPENAI_MODEL": self.settings.openai_model,
            "OPENAI_EMBEDDING_MODEL": self.settings.openai_embedding_model,
        }
        missing = {var: model for var, model in wanted.items() if model not in offered}
        if missing:
            names = ", ".join(f"'{m}'" for m in missing.values())
            some = ", ".join(sorted(offered)[:8]) or "none"
            raise ProbeFailure(
                f"model {names} not offered by {self.settings.address(Dependency.OPENAI)}",
                f"check {' and '.join(missing)} (offered: {some})",
            )
        return Observation(
            version=self.settings.openai_model,
            details={
                "endpoint": self.settings.openai_endpoint(),
                "models_offered": len(offered),
                "chat_model": self.settings.openai_model,
                "embedding_model": self.settings.openai_embedding_model,
            },
        )

    async def check_chroma(self, create: bool) -> Observation:
        """Raw check (raises): heartbeat, version, and the collection (created if `create`)."""
        client = await self.clients.chroma()
        heartbeat_ns = await client.heartbeat()
        version = await client.get_version()
        name = self.settings.chroma_collection
        if create:
            collection = await client.get_or_create_collection(
                name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        else:
            try:
                collection = await client.get_collection(name, embedding_function=None)
            except chromadb.errors.NotFoundError:
                raise ProbeFailure(
                    f"collection '{name}' does not exist",
                    "startup creates it: restart the service, or check CHROMA_COLLECTION",
                ) from None
        return Observation(
            version=version,
            details={
                "url": self.settings.chroma_base_url(),
                "heartbeat_ns": heartbeat_ns,
                "collection": name,
                "collection_id": str(collection.id),
                "documents": await collection.count(),
            },
        )


def pool_stats(pool: Pool) -> dict[str, int]:
    """Size and idle connections of an asyncpg pool, against its bounds."""
    return {
        "size": pool.get_size(),
        "idle": pool.get_idle_size(),
        "min": pool.get_min_size(),
        "max": pool.get_max_size(),
    }


def latency_percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p99 of round-trip times in ms (one sample stands for both)."""
    if len(samples) == 1:
        return {"latency_p50_ms": samples[0], "latency_p99_ms": samples[0]}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"latency_p50_ms": round(cuts[49], 3), "latency_p99_ms": round(cuts[98], 3)}


def describe_failure(dep: Dependency, exc: BaseException, settings: Settings) -> tuple[str, str]:
    """(error, hint) for a failed check: the cause in a few words, and the variable to check."""
    name = _DISPLAY_NAMES[dep]
    address = settings.address(dep)
    where = settings.config_vars(dep)
    if isinstance(exc, ProbeFailure):
        return exc.error, exc.hint
    if _is_timeout(exc):
        return (
            f"timed out after {settings.timeout_for(dep):.1f}s",
            f"is {name} at {address} hung or unreachable? check {where}, or raise "
            f"TRIA_TIMEOUT_{dep.value.upper()}",
        )
    auth = _auth_failure(dep, exc, settings)
    if auth is not None:
        return auth, f"check {settings.credential_vars(dep)}"
    if _is_refused(exc):
        return f"connection refused at {address}", f"is {name} running? check {where}"
    if any(isinstance(e, socket.gaierror) for e in _chain(exc)):
        host = address.rsplit(":", 1)[0]
        return f"cannot resolve host {host}", f"check the host in {where}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        database = urlsplit(settings.asyncpg_dsn()).path.strip("/")
        return f'database "{database}" does not exist', "create it, or fix the name in DATABASE_URL"
    if isinstance(exc, openai.RateLimitError):
        return "rate limited (HTTP 429)", "check the quota of the account behind OPENAI_API_KEY"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} from {address}", f"check {where}"
    first_line = (str(exc).strip().splitlines() or [""])[0]
    cause = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return cause, f"is {name} at {address} healthy? check {where}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes, as drivers wrap socket errors in their own types."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            yield from (e for sub in current.exceptions for e in _chain(sub))
        current = current.__cause__ or current.__context__


def _is_timeout(exc: BaseException) -> bool:
    timeouts = (TimeoutError, openai.APITimeoutError, redis.exceptions.TimeoutError)
    return isinstance(exc, timeouts)


def _is_refused(exc: BaseException) -> bool:
    for error in _chain(exc):
        if isinstance(error, ConnectionRefusedError):
            return True
        if isinstance(error, OSError) and error.errno == errno.ECONNREFUSED:
            return True
        if any(text in str(error).lower() for text in _REFUSED_TEXT):
            return True
    return False


def _auth_failure(dep: Dependency, exc: BaseException, settings: Settings) -> str | None:
    """An authentication error, named with the user but never the password."""
    if dep is Dependency.DATABASE and isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        user = unquote(urlsplit(settings.asyncpg_dsn()).username or "") or "(default)"
        return f'authentication failed for user "{user}"'
    if dep is Dependency.REDIS:
        auth_types = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)
        text = str(exc).lower()
        if isinstance(exc, auth_types) or any(t in text for t in _REDIS_AUTH_TEXT):
            user = unquote(urlsplit(settings.redis_dsn()).username or "") or "default"
            return f'authentication failed for user "{user}"'
    if dep is Dependency.OPENAI and isinstance(
        exc, openai.AuthenticationError | openai.PermissionDeniedError
    ):
        return f"authentication failed (HTTP {exc.status_code}): the API key was rejected"
    if dep is Dependency.CHROMA and isinstance(
        exc, chromadb.errors.AuthorizationError | chromadb.errors.ChromaAuthError
    ):
        return "authentication failed: Chroma rejected the client's credentials"
    return None


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
