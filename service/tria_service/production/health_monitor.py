"""Run-time health: liveness without I/O, readiness from a refreshed cache, diagnostics on demand.

Readiness must stay cheap under load, answer well within a kubelet's probe timeout, and not
hammer the dependencies. So each dependency is re-probed by its own background loop (a hanging
one does not hold up the others), and readiness serves the cache. A caller who finds a result
older than the TTL starts a refresh, and every caller shares the one in-flight probe per
dependency (single-flight): a burst of readiness calls costs at most one probe per dependency.
Readiness waits for that probe only briefly, then answers from the latest result; a result older
than a hard limit counts as failed, so a wedged dependency still fails readiness. Every probe is
bounded by its dependency's timeout, and a probe cut off by it counts as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any, Protocol

import structlog

from tria_service import __version__
from tria_service.config import Dependency, Settings
from tria_service.metrics import ServiceMetrics
from tria_service.production.diagnostics import (
    ComponentCheck,
    History,
    PoolStats,
    component_sections,
    dependency_section,
    pool_section,
)
from tria_service.production.failures import describe_failure
from tria_service.production.health_body import (
    SHUTTING_DOWN,
    HealthBodies,
    HealthStatus,
    Results,
    iso,
    now,
)
from tria_service.production.host import host_section
from tria_service.production.probes import ProbeResult, ServiceStatus
from tria_service.redaction import redact_value

# Extra time the monitor allows beyond a probe's own timeout before cutting it off itself.
TIMEOUT_SLACK_SECONDS = 0.5
# How long readiness waits for a refresh before answering from the cache: well under the
# 1 s a kubelet gives a probe by default.
READINESS_WAIT_SECONDS = 0.25
# A cached result older than this many TTLs counts as failed, whatever it said.
STALE_AFTER_TTLS = 3.0

log = structlog.get_logger(__name__)


class ProbeSource(Protocol):
    """What the monitor needs from tria_service.production.probes.Probes."""

    async def probe(self, dep: Dependency) -> ProbeResult: ...


@dataclass
class _DependencyState:
    result: ProbeResult | None = None
    fetched_at: float = float("-inf")
    history: History = field(default_factory=History)
    check: dict[str, Any] | None = None  # the result's IETF check entry, rendered once
    inflight: asyncio.Task[ProbeResult] | None = field(default=None, repr=False)

    def probing(self) -> bool:
        return self.inflight is not None and not self.inflight.done()


class HealthMonitor:
    """Health of the running service, built on the same probes the orchestrator used at startup.

    ``readiness_wait`` bounds how long a readiness call waits on a refresh it needs;
    ``stale_after_ttls`` is the hard limit, in TTLs, on the age of a result readiness trusts.
    """

    def __init__(
        self,
        *,
        readiness_wait: float = READINESS_WAIT_SECONDS,
        stale_after_ttls: float = STALE_AFTER_TTLS,
    ) -> None:
        if readiness_wait < 0 or stale_after_ttls < 1:
            raise ValueError("readiness_wait must be >= 0 and stale_after_ttls >= 1")
        self.readiness_wait = readiness_wait
        self.stale_after_ttls = stale_after_ttls
        self._settings: Settings | None = None
        self._probes: ProbeSource | None = None
        self._metrics: ServiceMetrics | None = None
        self._pool_stats: PoolStats | None = None
        self._bodies = HealthBodies(None)
        self._states: dict[Dependency, _DependencyState] = {
            d: _DependencyState() for d in Dependency
        }
        self._startup_results: dict[Dependency, ProbeResult] = {}
        self._components: dict[str, ComponentCheck] = {}
        self._refreshers: list[asyncio.Task[None]] = []
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

    @property
    def refreshing(self) -> bool:
        """True while the background refresh loops run (between start() and stop())."""
        return any(not task.done() for task in self._refreshers)

    async def start(
        self,
        probes: ProbeSource,
        settings: Settings,
        *,
        initial: Mapping[str, ProbeResult] | None = None,
        metrics: ServiceMetrics | None = None,
        pool_stats: PoolStats | None = None,
    ) -> None:
        """Seed the cache (and metrics) with the startup results and refresh in the background."""
        await self.stop()
        self._probes, self._settings = probes, settings
        self._metrics, self._pool_stats = metrics, pool_stats
        self._bodies = HealthBodies(settings)
        self._states = {d: _DependencyState() for d in Dependency}
        self._startup_results = {Dependency(n): r for n, r in (initial or {}).items()}
        self._shutting_down = False
        self._started_at = time.monotonic()
        self._ready_since = now()
        for dep, result in self._startup_results.items():
            self._store(dep, result, result.latency_ms / 1000)
        self._refreshers = [
            asyncio.create_task(self._refresh_loop(dep), name=f"tria-health-refresh-{dep.value}")
            for dep in Dependency
        ]
        log.info(
            "health_monitor_started",
            refresh_interval_s=settings.tria_health_refresh_interval,
            ttl_s=settings.tria_health_ttl,
        )

    async def stop(self) -> None:
        """Stop the background refresh and any probe still in flight."""
        tasks = [*self._refreshers, *(s.inflight for s in self._states.values() if s.inflight)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._refreshers = []

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
        return {d.value: s.history.probes_run for d, s in self._states.items()}

    # ---------------------------------------------------------------- probing

    def _probe_task(self, dep: Dependency) -> asyncio.Task[ProbeResult] | None:
        """None while the cached result is fresh, else the shared probe (started if need be).

        Synchronous on purpose: between deciding that a result is stale and registering the
        probe there is no await, so no other caller can start a second probe in between.
        """
        if self._fresh(self._states[dep]):
            return None
        return self._shared_probe(dep)

    def _shared_probe(self, dep: Dependency) -> asyncio.Task[ProbeResult]:
        """The probe in flight for this dependency, or a new one."""
        state = self._states[dep]
        if state.inflight is None or state.inflight.done():
            state.inflight = asyncio.create_task(self._probe(dep), name=f"tria-probe-{dep.value}")
        return state.inflight

    async def refresh(self, dep: Dependency) -> ProbeResult:
        """Probe now, or join the probe already in flight for this dependency."""
        return await asyncio.shield(self._shared_probe(dep))

    async def refresh_all(self) -> dict[Dependency, ProbeResult]:
        """Every dependency probed now (joining probes in flight), concurrently."""
        tasks = {dep: self._shared_probe(dep) for dep in Dependency}
        results = await asyncio.gather(*(asyncio.shield(t) for t in tasks.values()))
        return dict(zip(tasks, results, strict=True))

    async def _probe(self, dep: Dependency) -> ProbeResult:
        assert self._probes is not None, "monitor not started"
        assert self._settings is not None, "monitor not started"
        settings = self._settings
        timeout = settings.timeout_for(dep)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout + TIMEOUT_SLACK_SECONDS):
                result = await self._probes.probe(dep)
        except TimeoutError:  # the probe overran its own timeout: the same words, and the hint
            result = self._failed(dep, started, *describe_failure(dep, TimeoutError(), settings))
        except Exception as exc:  # probes should not raise; if one does, it is a failed probe
            result = self._failed(dep, started, f"probe error: {type(exc).__name__}: {exc}")
        self._states[dep].history.probes_run += 1
        if self._metrics is not None:
            self._metrics.count_probe(dep.value)
        self._store(dep, result, time.perf_counter() - started)
        return result

    @staticmethod
    def _failed(
        dep: Dependency, started: float, error: str, hint: str | None = None
    ) -> ProbeResult:
        return ProbeResult(
            name=dep.value,
            status=ServiceStatus.UNHEALTHY,
            latency_ms=(time.perf_counter() - started) * 1000,
            checked_at=now(),
            error=error,
            hint=hint,
            details={},
        )

    def _store(self, dep: Dependency, result: ProbeResult, seconds: float) -> None:
        state = self._states[dep]
        previous = state.result.status if state.result is not None else None
        state.result, state.fetched_at = result, time.monotonic()
        state.check = self._bodies.check(dep, result)
        state.history.record(result)
        if self._metrics is not None:
            self._metrics.record_result(dep.value, seconds, up=result.ok)
        if previous is not None and previous is not result.status:
            log.warning(
                "dependency_status_changed",
                dependency=dep.value,
                previous=previous.value,
                status=result.status.value,
                error=result.error,
            )

    async def _refresh_loop(self, dep: Dependency) -> None:
        """Re-probe one dependency every interval; an unexpected error is logged, not fatal."""
        assert self._settings is not None
        while True:
            await asyncio.sleep(self._settings.tria_health_refresh_interval)
            try:
                await self.refresh(dep)
            except Exception:
                log.exception("health_refresh_failed", dependency=dep.value)

    def _ttl(self) -> float:
        return self._settings.tria_health_ttl if self._settings is not None else 0.0

    def _fresh(self, state: _DependencyState) -> bool:
        return state.result is not None and time.monotonic() - state.fetched_at <= self._ttl()

    def _trusted(self, dep: Dependency) -> ProbeResult | None:
        """The cached result, or a failure in its place once it is older than the hard limit."""
        state = self._states[dep]
        result = state.result
        limit = self.stale_after_ttls * self._ttl()
        age = time.monotonic() - state.fetched_at
        if result is None or age <= limit:
            return result
        waiting = "a probe is still running" if state.probing() else "no probe is running"
        return replace(
            result,
            status=ServiceStatus.UNHEALTHY,
            error=f"stale: the last result is {age:.1f}s old, over the {limit:.1f}s limit "
            f"({waiting})",
        )

    def _checks(self, results: Mapping[Dependency, ProbeResult | None]) -> dict[str, Any]:
        """The checks object, reusing each cached result's entry rendered by _store."""
        entries = {}
        for dep, result in results.items():
            state = self._states[dep]
            cached = state.check if result is not None and result is state.result else None
            entries[dep] = cached or self._bodies.check(dep, result)
        return self._bodies.checks(entries)

    # ---------------------------------------------------------------- bodies

    async def liveness(self) -> dict[str, Any]:
        """The process answers; no dependency I/O, whatever their state."""
        body = self._bodies.base("pass", "liveness: the process is up")
        body["checks"] = {
            "uptime": [
                {
                    "componentType": "system",
                    "observedValue": round(self.uptime_seconds(), 3),
                    "observedUnit": "s",
                    "status": "pass",
                    "time": iso(now()),
                    "output": "",
                }
            ]
        }
        return body

    async def startup(self) -> dict[str, Any]:
        """What startup validation found: fail until it has passed, then its own results."""
        if not self.started:
            return self._bodies.base("fail", "startup: dependency validation has not finished")
        results = self._startup_results
        status = self._bodies.aggregate(results)
        if status == "pass":
            description = "startup: every critical dependency was validated"
        else:  # a failing critical dependency refuses startup, so this is only ever "warn"
            description = f"startup: {self._bodies.describe(results, status)}"
        body = self._bodies.base(status, description)
        body["checks"] = self._bodies.checks(
            {dep: self._bodies.check(dep, result) for dep, result in results.items()}
        )
        return body

    async def readiness(self) -> dict[str, Any]:
        """May this instance take traffic? The cache, after a brief wait on a needed refresh."""
        if not self.started:
            body = self._bodies.base("fail", "readiness: not started")
            body.update(checks={}, overall_healthy=False)
            return body
        if not self._shutting_down:
            tasks = [t for dep in Dependency if (t := self._probe_task(dep)) is not None]
            if tasks:  # asyncio.wait never cancels them: they finish for the next caller
                await asyncio.wait(tasks, timeout=self.readiness_wait)
        results = {dep: self._trusted(dep) for dep in Dependency}
        status, description = self._verdict(results)  # shutdown may have begun while waiting
        body = self._bodies.base(status, f"readiness: {description}")
        body.update(checks=self._checks(results), overall_healthy=status != "fail")
        if self._metrics is not None:
            self._metrics.record_readiness(status != "fail", self._shutting_down)
        return body

    def _verdict(self, results: Results) -> tuple[HealthStatus, str]:
        """Status and description: shutting down fails, whatever the dependencies say."""
        if self._shutting_down:
            return "fail", SHUTTING_DOWN
        status = self._bodies.aggregate(results)
        return status, self._bodies.describe(results, status)

    def readiness_snapshot(self) -> bool:
        """Ready or not from the cache alone, without I/O (for the metrics scrape)."""
        if not self.started or self._shutting_down:
            return False
        results = {dep: self._trusted(dep) for dep in Dependency}
        return self._bodies.aggregate(results) != "fail"

    def uptime_seconds(self) -> float:
        return time.monotonic() - self._started_at

    async def detailed_diagnostics(self) -> dict[str, Any]:
        """Everything needed to troubleshoot, probed fresh (single-flight), secrets redacted."""
        if not self.started:
            body = self._bodies.base("fail", "diagnostics: not started")
            body.update(checks={}, details=None)
            return body
        # The component sections run alongside the probes, not after them: a hung dependency
        # then costs diagnostics one wait (the longer of the two), not its timeout twice over.
        if self._shutting_down:
            components = await component_sections(self._components)
            results = {d: s.result for d, s in self._states.items()}
        else:
            refreshed, components = await asyncio.gather(
                self.refresh_all(), component_sections(self._components)
            )
            results = dict(refreshed)
        status, description = self._verdict(results)
        body = self._bodies.base(status, f"diagnostics: {description}")
        body["checks"] = self._checks(results)
        body["details"] = self._details(components)
        secrets = self._settings.secret_values() if self._settings is not None else []
        redacted: dict[str, Any] = redact_value(body, secrets)
        return redacted

    def _details(self, components: dict[str, Any]) -> dict[str, Any]:
        assert self._settings is not None
        settings = self._settings
        dependencies = {
            dep.value: dependency_section(
                state.result, state.history, critical=settings.is_critical(dep)
            )
            for dep, state in self._states.items()
        }
        return {
            "version": __version__,
            "release_id": settings.tria_release_id,
            "service_id": settings.tria_service_id,
            "environment": str(settings.tria_env),
            "uptime_seconds": round(self.uptime_seconds(), 3),
            "ready_since": iso(self._ready_since) if self._ready_since else None,
            "shutting_down": self._shutting_down,
            "dependencies": dependencies,
            "pools": pool_section(self._pool_stats),
            "components": components,
            "host": host_section(),
            "config": settings.summary(),
        }


@cache
def get_health_monitor() -> HealthMonitor:
    """The process-wide monitor, created on first use."""
    return HealthMonitor()
