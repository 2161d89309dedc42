"""Health probes of the four dependencies, written once for the orchestrator and the monitor.

A probe never raises: it returns a ProbeResult whose error is short, names the cause (refused,
timed out, authentication failed, ...) and whose hint names the variable to check. Every text is
redacted with the settings' secrets, and every probe is bounded by its dependency's timeout.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from asyncpg.pool import Pool

from tria_service.chroma_http import ChromaNotFoundError
from tria_service.clients import Clients
from tria_service.config import Dependency, Settings, public_url
from tria_service.production.failures import (
    DISPLAY_NAMES,
    MAX_ERROR_LENGTH,
    ProbeFailure,
    describe_failure,
)
from tria_service.redaction import redact, redact_value

__all__ = [
    "Observation",
    "ProbeFailure",
    "ProbeResult",
    "Probes",
    "ServiceStatus",
    "describe_failure",
    "latency_percentiles",
    "pool_stats",
]

HEALTH_KEY_PREFIX = "tria:health:"
HEALTH_KEY_TTL_S = 30


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


@dataclass(frozen=True)
class Observation:
    """What a successful check saw.

    `latency_ms`, when set, is what the latency budget judges instead of the whole check's time:
    a check that does more than one round trip (a baseline, migrations) must not look slow for it.
    """

    version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None


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
                self.clients.ensure_open()
                seen = await check()
        except Exception as exc:
            error, hint = describe_failure(dep, exc, self.settings)
            return ProbeResult(
                name=dep.value,
                status=ServiceStatus.UNHEALTHY,
                latency_ms=_elapsed_ms(started),
                checked_at=checked_at,
                error=redact(error, secrets)[:MAX_ERROR_LENGTH],
                hint=redact(hint, secrets),
            )
        elapsed_ms = _elapsed_ms(started)
        latency_ms = elapsed_ms if seen.latency_ms is None else seen.latency_ms
        budget_ms = self.settings.latency_budget_ms(dep)
        slow = latency_ms > budget_ms
        details = dict(seen.details)
        if seen.latency_ms is not None:
            details["elapsed_ms"] = elapsed_ms
        return ProbeResult(
            name=dep.value,
            status=ServiceStatus.DEGRADED if slow else ServiceStatus.HEALTHY,
            latency_ms=latency_ms,
            checked_at=checked_at,
            version=redact(seen.version, secrets) if seen.version else None,
            error=f"slow: {latency_ms:.0f} ms over the {budget_ms:.0f} ms budget" if slow else None,
            hint=(
                f"is {DISPLAY_NAMES[dep]} overloaded? raise TRIA_TIMEOUT_{dep.value.upper()} "
                "if this latency is normal"
                if slow
                else None
            ),
            details=redact_value(details, secrets),
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
        """Raw check (raises): SET/GET/DEL round trips, each one network round trip.

        The p99 of one round trip is what is judged against the budget, not the sum of them all.
        """
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
        judged = details["latency_p99_ms"] if round_trips > 1 else None
        return Observation(version=self._redis_version, details=details, latency_ms=judged)

    async def check_openai(self) -> Observation:
        """Raw check (raises): both configured models are offered."""
        probe_client = self.clients.openai.with_options(
            max_retries=0, timeout=self.settings.timeout_for(Dependency.OPENAI)
        )
        page = await probe_client.models.list()
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
                "endpoint": public_url(self.settings.openai_endpoint()),
                "models_offered": len(offered),
                "chat_model": self.settings.openai_model,
                "embedding_model": self.settings.openai_embedding_model,
            },
        )

    async def check_chroma(self, create: bool) -> Observation:
        """Raw check (raises): heartbeat, version, and the collection (created if `create`)."""
        client = self.clients.chroma()
        heartbeat_ns = await client.heartbeat()
        version = await client.version()
        name = self.settings.chroma_collection
        if create:
            collection = await client.get_or_create_collection(name, space="cosine")
        else:
            try:
                collection = await client.get_collection(name)
            except ChromaNotFoundError:
                raise ProbeFailure(
                    f"collection '{name}' does not exist",
                    "startup creates it: restart the service, or check CHROMA_COLLECTION",
                ) from None
        return Observation(
            version=version,
            details={
                "url": public_url(self.settings.chroma_base_url()),
                "heartbeat_ns": heartbeat_ns,
                "collection": name,
                "collection_id": collection.id,
                "documents": await client.count(collection.id),
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


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
