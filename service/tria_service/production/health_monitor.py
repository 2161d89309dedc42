"""Run-time health: liveness without I/O, readiness from a refreshed cache, diagnostics on demand.

Readiness must stay cheap under load and must not hammer the dependencies, so results are
refreshed in the background and served from a cache. A caller who finds a result older than the
TTL refreshes it, and concurrent callers share one in-flight probe per dependency (single-flight):
a burst of readiness calls costs at most one probe per dependency. Every probe is bounded by the
dependency's timeout, and a probe cut off by it counts as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import structlog

from tria_service import __version__
from tria_service.config import Dependency, Settings
from tria_service.metrics import ServiceMetrics
from tria_service.production.probes import ProbeResult, ServiceStatus
from tria_service.redaction import redact, redact_value

HealthStatus = Literal["pass", "warn", "fail"]
ComponentCheck = Callable[[], Awaitable[dict[str, Any]]]
PoolStats = Callable[[], dict[str, Any]]

IETF_STATUS: dict[ServiceStatus, HealthStatus] = {
    ServiceStatus.HEALTHY: "pass",
    ServiceStatus.DEGRADED: "warn",
    ServiceStatus.UNHEALTHY: "fail",
}
# Dependency -> (IETF component name, componentType)
COMPONENTS: dict[Dependency, tuple[str, str]] = {
    Dependency.DATABASE: ("postgresql", "datastore"),
    Dependency.REDIS: ("redis", "datastore"),
    Dependency.OPENAI: ("openai", "component"),
    Dependency.CHROMA: ("chroma", "datastore"),
}
CHECK_KEYS = {dep: f"{name}:responseTime" for dep, (name, _) in COMPONENTS.items()}
# Extra time the monitor allows beyond a probe's own timeout before cutting it off itself.
TIMEOUT_SLACK_SECONDS = 0.5
COMPONENT_CHECK_TIMEOUT_SECONDS = 5.0

log = structlog.get_logger(__name__)


class ProbeSource(Protocol):
    """What the monitor needs from tria_service.production.probes.Probes."""

    async def probe(self, dep: Dependency) -> ProbeResult: ...


@dataclass
class _DependencyState:
    result: ProbeResult | None = None
    fetched_at: float = float("-inf")
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    probes_run: int = 0
    check: dict[str, Any] | None = None  # the result's IETF check entry, rendered once
    inflight: asyncio.Task[ProbeResult] | None = field(default=None, repr=False)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC)


def worst(statuses: list[HealthStatus]) -> HealthStatus:
    """The IETF rule for an aggregate: fail beats warn beats pass."""
    if "fail" in statuses:
        return "fail"
    return "warn" if "warn" in statuses else "pass"


class HealthMonitor:
    """Health of the running service, built on the same probes the orchestrator used at startup."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._probes: ProbeSource | None = None
        self._metrics: ServiceMetrics | None = None
        self._pool_stats: PoolStats | None = None
        self._states: dict[Dependency, _DependencyState] = {
            d: _DependencyState() for d in Dependency
        }
        self._components: dict[str, ComponentCheck] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._started_at = time.monotonic()
        self._shutting_down = False
        self._ready_since: datetime | None = None

    @property
    def started(self) -> bool:
        """True once start() has run, i.e. the orchestrator has validated every dependency."""
        return self._settings is not None

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    async def start(
        self,
        probes: ProbeSource,
        settings: Settings,
        *,
        initial: Mapping[str, ProbeResult] | None = None,
        metrics: ServiceMetrics | None = None,
        pool_stats: PoolStats | None = None,
    ) -> None:
        """Seed the cache with the startup results and begin refreshing in the background."""
        await self.stop()
        self._probes, self._settings = probes, settings
        self._metrics, self._pool_stats = metrics, pool_stats
        self._states = {d: _DependencyState() for d in Dependency}
        self._shutting_down = False
        self._started_at = time.monotonic()
        self._ready_since = _now()
        for name, result in (initial or {}).items():
            self._store(Dependency(name), result)
        self._refresher = asyncio.create_task(self._refresh_loop(), name="tria-health-refresh")
        log.info(
            "health_monitor_started",
            refresh_interval_s=settings.tria_health_refresh_interval,
            ttl_s=settings.tria_health_ttl,
        )

    async def stop(self) -> None:
        """Stop the background refresh and any probe still in flight."""
        tasks = [self._refresher] + [s.inflight for s in self._states.values()]
        for task in tasks:
            if task is not None and not task.done():
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._refresher = None

    def begin_shutdown(self) -> None:
        """Fail readiness from now on; synchronous so a signal handler can call it."""
        if not self._shutting_down:
            self._shutting_down = True
            log.info("readiness_failing", reason="shutting down")
        if self._metrics is not None:
            self._metrics.record_readiness(ready=False, shutting_down=True)

    def register_component(self, name: str, check: ComponentCheck) -> None:
        """Let a component (e.g. the chat agent) add its own section to the diagnostics."""
        self._components[name] = check

    def probe_counts(self) -> dict[str, int]:
        """Probes actually run per dependency since start (shared probes count once)."""
        return {d.value: s.probes_run for d, s in self._states.items()}

    # ---------------------------------------------------------------- probing

    async def refresh(self, dep: Dependency) -> ProbeResult:
        """Probe now, or join the probe already in flight for this dependency."""
        state = self._states[dep]
        if state.inflight is None or state.inflight.done():
            state.inflight = asyncio.create_task(self._probe(dep), name=f"tria-probe-{dep.value}")
        return await asyncio.shield(state.inflight)

    async def refresh_all(self) -> dict[Dependency, ProbeResult]:
        deps = list(Dependency)
        results = await asyncio.gather(*(self.refresh(d) for d in deps))
        return dict(zip(deps, results, strict=True))

    async def _refresh_stale(self) -> None:
        """Refresh (shared) every result older than the TTL; nothing to await when all are fresh."""
        now, ttl = time.monotonic(), self._ttl()
        stale = [d for d, s in self._states.items() if s.result is None or now - s.fetched_at > ttl]
        if stale:
            await asyncio.gather(*(self.refresh(d) for d in stale))

    async def _probe(self, dep: Dependency) -> ProbeResult:
        assert self._probes is not None, "monitor not started"
        assert self._settings is not None, "monitor not started"
        timeout = self._settings.timeout_for(dep)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout + TIMEOUT_SLACK_SECONDS):
                result = await self._probes.probe(dep)
        except TimeoutError:
            result = self._failed(dep, started, f"timed out after {timeout}s")
        except Exception as exc:  # probes should not raise; if one does, it is a failed probe
            result = self._failed(dep, started, f"probe error: {type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        self._states[dep].probes_run += 1
        self._store(dep, result)
        if self._metrics is not None:
            up = result.status is not ServiceStatus.UNHEALTHY
            self._metrics.record_probe(dep.value, seconds, up)
        return result

    def _failed(self, dep: Dependency, started: float, error: str) -> ProbeResult:
        return ProbeResult(
            name=dep.value,
            status=ServiceStatus.UNHEALTHY,
            latency_ms=(time.perf_counter() - started) * 1000,
            checked_at=_now(),
            error=error,
            details={},
        )

    def _store(self, dep: Dependency, result: ProbeResult) -> None:
        state = self._states[dep]
        previous = state.result.status if state.result is not None else None
        state.result, state.fetched_at = result, time.monotonic()
        state.check = self._check(dep, result)
        if result.status is ServiceStatus.UNHEALTHY:
            state.last_error, state.last_error_at = result.error, result.checked_at
        else:
            state.last_success = result.checked_at
            if result.error:
                state.last_error, state.last_error_at = result.error, result.checked_at
        if previous is not None and previous is not result.status:
            log.warning(
                "dependency_status_changed",
                dependency=dep.value,
                previous=previous.value,
                status=result.status.value,
                error=result.error,
            )

    async def _refresh_loop(self) -> None:
        assert self._settings is not None
        while True:
            await asyncio.sleep(self._settings.tria_health_refresh_interval)
            await self.refresh_all()

    def _ttl(self) -> float:
        return self._settings.tria_health_ttl if self._settings is not None else 0.0

    # ---------------------------------------------------------------- bodies

    def _base(self, status: HealthStatus, description: str) -> dict[str, Any]:
        settings = self._settings
        return {
            "status": status,
            "version": __version__,
            "releaseId": settings.tria_release_id if settings else "unknown",
            "serviceId": settings.tria_service_id if settings else "tria-aibpo",
            "description": description,
        }

    def _secrets(self) -> list[str]:
        return self._settings.secret_values() if self._settings is not None else []

    def _check(self, dep: Dependency, result: ProbeResult | None) -> dict[str, Any]:
        component_type = COMPONENTS[dep][1]
        if result is None:
            return {
                "componentId": dep.value,
                "componentType": component_type,
                "observedValue": None,
                "observedUnit": "ms",
                "status": "fail",
                "time": _iso(_now()),
                "output": "not checked yet",
            }
        return {
            "componentId": dep.value,
            "componentType": component_type,
            "observedValue": round(result.latency_ms, 3),
            "observedUnit": "ms",
            "status": IETF_STATUS[result.status],
            "time": _iso(result.checked_at),
            "output": redact(result.error or "", self._secrets()),
        }

    def _checks(self, results: Mapping[Dependency, ProbeResult | None]) -> dict[str, Any]:
        checks = {}
        for dep, result in results.items():
            state = self._states[dep]
            cached = state.check if result is not None and result is state.result else None
            checks[CHECK_KEYS[dep]] = [cached or self._check(dep, result)]
        return checks

    def _critical(self, dep: Dependency) -> bool:
        return self._settings is not None and self._settings.is_critical(dep)

    def _aggregate(self, results: Mapping[Dependency, ProbeResult | None]) -> HealthStatus:
        """Critical dependencies decide pass/fail; a failing optional one only warns."""
        statuses: list[HealthStatus] = []
        for dep, result in results.items():
            status: HealthStatus = "fail" if result is None else IETF_STATUS[result.status]
            statuses.append(status if self._critical(dep) or status == "pass" else "warn")
        return worst(statuses)

    async def liveness(self) -> dict[str, Any]:
        """The process answers; no dependency I/O, whatever their state."""
        body = self._base("pass", "liveness: the process is up")
        body["checks"] = {
            "uptime": [
                {
                    "componentType": "system",
                    "observedValue": round(self.uptime_seconds(), 3),
                    "observedUnit": "s",
                    "status": "pass",
                    "time": _iso(_now()),
                    "output": "",
                }
            ]
        }
        return body

    async def startup(self) -> dict[str, Any]:
        """pass once the orchestrator has validated every dependency, fail until then."""
        if not self.started:
            return self._base("fail", "startup: dependency validation has not finished")
        results = {d: s.result for d, s in self._states.items() if s.result is not None}
        body = self._base("pass", "startup: every critical dependency was validated")
        body["checks"] = self._checks(results)
        return body

    async def readiness(self) -> dict[str, Any]:
        """May this instance take traffic? Served from the cache, refreshed when stale."""
        if not self.started:
            body = self._base("fail", "readiness: not started")
            body.update(checks={}, overall_healthy=False)
            return body
        if self._shutting_down:
            cached = {d: s.result for d, s in self._states.items()}
            body = self._base("fail", "readiness: shutting down, not taking new work")
            body.update(checks=self._checks(cached), overall_healthy=False)
            return body
        await self._refresh_stale()
        results = {d: s.result for d, s in self._states.items()}
        # shutdown may have begun while the probes ran
        status = "fail" if self._shutting_down else self._aggregate(results)
        body = self._base(status, f"readiness: {self._describe(results, status)}")
        body.update(checks=self._checks(results), overall_healthy=status != "fail")
        if self._metrics is not None:
            self._metrics.record_readiness(status != "fail", self._shutting_down)
        return body

    def _describe(
        self, results: Mapping[Dependency, ProbeResult | None], status: HealthStatus
    ) -> str:
        if self._shutting_down:
            return "shutting down, not taking new work"
        if status == "pass":
            return "every critical dependency is healthy"
        bad = [
            f"{d.value} {r.status.value if r else 'unchecked'}"
            for d, r in results.items()
            if r is None or r.status is not ServiceStatus.HEALTHY
        ]
        return ("not ready: " if status == "fail" else "degraded: ") + ", ".join(bad)

    def readiness_snapshot(self) -> bool:
        """Ready or not from the cache alone, without I/O (for the metrics scrape)."""
        if not self.started or self._shutting_down:
            return False
        return self._aggregate({d: s.result for d, s in self._states.items()}) != "fail"

    def uptime_seconds(self) -> float:
        return time.monotonic() - self._started_at

    async def detailed_diagnostics(self) -> dict[str, Any]:
        """Everything needed to troubleshoot, probed fresh (single-flight), secrets redacted."""
        if not self.started:
            body = self._base("fail", "diagnostics: not started")
            body.update(checks={}, details=None)
            return body
        if self._shutting_down:
            results = {d: s.result for d, s in self._states.items()}
        else:
            results = dict(await self.refresh_all())
        status = "fail" if self._shutting_down else self._aggregate(results)
        body = self._base(status, f"diagnostics: {self._describe(results, status)}")
        body["checks"] = self._checks(results)
        body["details"] = await self._details()
        redacted: dict[str, Any] = redact_value(body, self._secrets())
        return redacted

    async def _details(self) -> dict[str, Any]:
        assert self._settings is not None
        settings = self._settings
        dependencies = {}
        for dep, state in self._states.items():
            result = state.result
            dependencies[dep.value] = {
                "status": result.status.value if result else "unknown",
                "critical": settings.is_critical(dep),
                "latency_ms": round(result.latency_ms, 3) if result else None,
                "version": result.version if result else None,
                "checked_at": _iso(result.checked_at) if result else None,
                "last_error": state.last_error,
                "last_error_at": _iso(state.last_error_at) if state.last_error_at else None,
                "last_success": _iso(state.last_success) if state.last_success else None,
                "hint": result.hint if result else None,
                "probes_run": state.probes_run,
                "details": dict(result.details) if result else {},
            }
        return {
            "version": __version__,
            "release_id": settings.tria_release_id,
            "service_id": settings.tria_service_id,
            "environment": str(settings.tria_env),
            "uptime_seconds": round(self.uptime_seconds(), 3),
            "ready_since": _iso(self._ready_since) if self._ready_since else None,
            "shutting_down": self._shutting_down,
            "dependencies": dependencies,
            "pools": self._pools(),
            "components": await self._component_sections(),
            "config": settings.summary(),
        }

    def _pools(self) -> dict[str, Any]:
        if self._pool_stats is None:
            return {}
        try:
            return self._pool_stats()
        except Exception as exc:  # stats are best effort; diagnostics must still answer
            return {"error": f"{type(exc).__name__}: {exc}"}

    async def _component_sections(self) -> dict[str, Any]:
        async def run(name: str, check: ComponentCheck) -> tuple[str, dict[str, Any]]:
            try:
                async with asyncio.timeout(COMPONENT_CHECK_TIMEOUT_SECONDS):
                    return name, await check()
            except TimeoutError:
                return name, {
                    "status": "fail",
                    "error": f"timed out after {COMPONENT_CHECK_TIMEOUT_SECONDS}s",
                }
            except Exception as exc:
                return name, {"status": "fail", "error": f"{type(exc).__name__}: {exc}"}

        pairs = await asyncio.gather(*(run(n, c) for n, c in self._components.items()))
        return dict(pairs)


_health_monitor: HealthMonitor | None = None


def get_health_monitor() -> HealthMonitor:
    """The process-wide monitor, created on first use."""
    global _health_monitor
    if _health_monitor is None:
        _health_monitor = HealthMonitor()
    return _health_monitor


def reset_health_monitor() -> None:
    """Forget the process-wide monitor (tests that build several apps in one process)."""
    global _health_monitor
    _health_monitor = None
