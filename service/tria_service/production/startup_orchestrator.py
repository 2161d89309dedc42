"""Startup in the deployment flow's order: validate the environment, then check every dependency.

The dependency steps are independent, so they run concurrently, each under its own timeout:
startup takes about as long as the slowest one. Any critical dependency left unhealthy fails
startup with one error naming every failure; non-critical ones are logged and reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

import structlog

from tria_service.clients import Clients
from tria_service.config import ConfigError, Dependency, Settings, load_settings
from tria_service.db import SCHEMA_VERSION, migrate, verify_schema
from tria_service.logging import ensure_redacted_logging
from tria_service.production.probes import Observation, ProbeFailure, ProbeResult, Probes
from tria_service.redaction import register_secrets

log = structlog.get_logger(__name__)


class StartupError(Exception):
    """Startup failed; str() names every failed critical dependency with its cause and hint."""

    def __init__(
        self,
        failures: Sequence[ProbeResult],
        results: dict[str, ProbeResult] | None = None,
    ) -> None:
        self.failures = list(failures)
        self.results = dict(results or {})
        super().__init__(self.message())

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt from its fields, so it survives pickling (xdist, multiprocessing)."""
        return type(self), (self.failures, self.results)

    def message(self) -> str:
        count = len(self.failures)
        noun = "dependencies" if count != 1 else "dependency"
        header = f"Startup failed: {count} critical {noun} unhealthy"
        return "\n".join([header, *(f"  - {r.describe()}" for r in self.failures)])

    def __str__(self) -> str:
        return self.message()


class StartupConfigError(StartupError, ConfigError):
    """Invalid configuration found by startup: both a StartupError and a ConfigError."""

    def __init__(self, error: ConfigError) -> None:
        self.failures = []
        self.results = {}
        self.problems = list(error.problems)
        self.source = error.source
        Exception.__init__(self, ConfigError.message(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (ConfigError(self.problems, self.source),)

    def message(self) -> str:
        return ConfigError.message(self)


class StartupOrchestrator:
    """Runs the startup flow once and keeps what it built for the monitor and the app."""

    def __init__(self, settings: Settings | None = None) -> None:
        ensure_redacted_logging()
        self._settings: Settings | None = settings
        self._startup_lock = asyncio.Lock()
        self._clients: Clients | None = None
        self._probes: Probes | None = None
        self.results: dict[str, ProbeResult] = {}
        self.completed = False

    @property
    def settings(self) -> Settings:
        """The validated settings; only valid once startup has passed step 1."""
        if self._settings is None:
            raise RuntimeError("settings are not loaded yet: call startup() first")
        return self._settings

    @property
    def clients(self) -> Clients:
        """The clients startup opened; only after a successful startup()."""
        if self._clients is None:
            raise RuntimeError("no clients: startup() has not completed")
        return self._clients

    @property
    def probes(self) -> Probes:
        """The probes over those clients, for the health monitor; only after startup()."""
        if self._probes is None:
            raise RuntimeError("no probes: startup() has not completed")
        return self._probes

    async def startup(self) -> dict[str, ProbeResult]:
        """Validate, then check all dependencies; raise StartupError if a critical one failed.

        Concurrent calls run it once: the others wait and get the first call's results (after a
        failure, the next call tries again).
        """
        async with self._startup_lock:
            if self.completed:
                return self.results
            return await self._startup()

    async def _startup(self) -> dict[str, ProbeResult]:
        settings = self._validate_environment()
        register_secrets(settings.secret_values())
        clients = Clients(settings)
        probes = Probes(settings, clients)
        started = asyncio.get_running_loop().time()
        try:
            results = await self._check_dependencies(settings, probes)
        except BaseException:
            await clients.close()
            raise
        self.results = results
        for dep in Dependency:
            self._log_result(settings, results[dep.value])
        failures = [
            results[d.value]
            for d in Dependency
            if settings.is_critical(d) and not results[d.value].ok
        ]
        if failures:
            await clients.close()
            log.error("startup.failed", failed=[r.name for r in failures])
            raise StartupError(failures, results)
        self._clients, self._probes, self.completed = clients, probes, True
        elapsed = round(asyncio.get_running_loop().time() - started, 3)
        log.info("startup.complete", seconds=elapsed, schema_version=SCHEMA_VERSION)
        return results

    async def close(self) -> None:
        """Release the clients startup opened (registered with the lifecycle manager)."""
        clients, self._clients = self._clients, None
        self._probes, self.completed = None, False
        if clients is not None:
            await clients.close()

    def _validate_environment(self) -> Settings:
        """Step 1: every configuration problem at once."""
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                log.error("startup.config_invalid", problems=exc.problems)
                raise StartupConfigError(exc) from None
        log.info("startup.environment_valid", **self._settings.summary())
        return self._settings

    async def _check_dependencies(
        self, settings: Settings, probes: Probes
    ) -> dict[str, ProbeResult]:
        """Steps 2-5, concurrently."""
        async with asyncio.TaskGroup() as group:
            tasks = {
                Dependency.DATABASE: group.create_task(self._database_step(settings, probes)),
                Dependency.REDIS: group.create_task(probes.redis_baseline()),
                Dependency.OPENAI: group.create_task(probes.openai()),
                Dependency.CHROMA: group.create_task(probes.chroma_prepare()),
            }
        return {dep.value: task.result() for dep, task in tasks.items()}

    async def _database_step(self, settings: Settings, probes: Probes) -> ProbeResult:
        """Step 2: connect, migrate, and verify every expected table, column and index.

        Only the connect-and-query part is judged against the latency budget: migrating a fresh
        database takes what it takes and says nothing about the server's health.
        """

        async def prepare() -> Observation:
            started = time.perf_counter()
            seen = await probes.check_database()
            query_ms = round((time.perf_counter() - started) * 1000.0, 3)
            pool = await probes.clients.database()
            version = await migrate(pool)
            missing = await verify_schema(pool)
            if missing:
                raise ProbeFailure(
                    f"schema incomplete after migrating: missing {', '.join(missing)}",
                    "check that the DATABASE_URL user may create tables in its schema",
                )
            details = {**seen.details, "schema_version": version}
            return Observation(seen.version, details, latency_ms=query_ms)

        return await probes.run(Dependency.DATABASE, prepare)

    @staticmethod
    def _log_result(settings: Settings, result: ProbeResult) -> None:
        fields = {
            "dependency": result.name,
            "status": result.status.value,
            "latency_ms": result.latency_ms,
            "version": result.version,
            "critical": settings.is_critical(Dependency(result.name)),
        }
        if result.ok:
            log.info("startup.dependency", **fields, error=result.error)
        else:
            log.warning("startup.dependency", **fields, error=result.error, hint=result.hint)


@cache
def get_orchestrator() -> StartupOrchestrator:
    """The process-wide orchestrator, created on first use."""
    return StartupOrchestrator()


def reset_orchestrator() -> None:
    """Forget the process-wide orchestrator (tests); close() it first if it opened clients."""
    get_orchestrator.cache_clear()
