"""The IETF health-check bodies (draft-inadarei-api-health-check) built from probe results.

Kept apart from the monitor, which decides *when* to probe: this module only decides how a set
of results reads to an orchestrator (pass, warn or fail) and to a person (checks, description).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from tria_service import __version__
from tria_service.config import Dependency, Settings
from tria_service.production.probes import ProbeResult, ServiceStatus
from tria_service.redaction import redact

HealthStatus = Literal["pass", "warn", "fail"]
Results = Mapping[Dependency, ProbeResult | None]

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
SHUTTING_DOWN = "shutting down, not taking new work"


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as the draft's examples write it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


def worst(statuses: list[HealthStatus]) -> HealthStatus:
    """The IETF rule for an aggregate: fail beats warn beats pass."""
    if "fail" in statuses:
        return "fail"
    return "warn" if "warn" in statuses else "pass"


class HealthBodies:
    """Renders bodies for one service's settings (None before startup has loaded them)."""

    def __init__(self, settings: Settings | None) -> None:
        self._settings = settings
        self._secrets = settings.secret_values() if settings is not None else []

    def base(self, status: HealthStatus, description: str) -> dict[str, Any]:
        settings = self._settings
        return {
            "status": status,
            "version": __version__,
            "releaseId": settings.tria_release_id if settings else "unknown",
            "serviceId": settings.tria_service_id if settings else "tria-aibpo",
            "description": description,
        }

    def check(self, dep: Dependency, result: ProbeResult | None) -> dict[str, Any]:
        """One "checks" entry; a dependency never checked fails."""
        component_type = COMPONENTS[dep][1]
        if result is None:
            return {
                "componentId": dep.value,
                "componentType": component_type,
                "observedValue": None,
                "observedUnit": "ms",
                "status": "fail",
                "time": iso(now()),
                "output": "not checked yet",
            }
        return {
            "componentId": dep.value,
            "componentType": component_type,
            "observedValue": round(result.latency_ms, 3),
            "observedUnit": "ms",
            "status": IETF_STATUS[result.status],
            "time": iso(result.checked_at),
            "output": redact(result.error or "", self._secrets),
        }

    @staticmethod
    def checks(entries: Mapping[Dependency, dict[str, Any]]) -> dict[str, Any]:
        """The "checks" object from rendered entries, keyed "{component}:responseTime"."""
        return {CHECK_KEYS[dep]: [entry] for dep, entry in entries.items()}

    def aggregate(self, results: Results) -> HealthStatus:
        """Critical dependencies decide pass/fail; a failing optional one only warns."""
        statuses: list[HealthStatus] = []
        for dep, result in results.items():
            status: HealthStatus = "fail" if result is None else IETF_STATUS[result.status]
            critical = self._settings is not None and self._settings.is_critical(dep)
            statuses.append(status if critical or status == "pass" else "warn")
        return worst(statuses)

    @staticmethod
    def describe(results: Results, status: HealthStatus) -> str:
        """One line naming every dependency that is not healthy."""
        if status == "pass":
            return "every critical dependency is healthy"
        bad = [
            f"{d.value} {r.status.value if r else 'unchecked'}"
            for d, r in results.items()
            if r is None or r.status is not ServiceStatus.HEALTHY
        ]
        return ("not ready: " if status == "fail" else "degraded: ") + ", ".join(bad)
