"""Sections of the diagnostics body: each dependency's history, pools, registered components.

Pools and components are best effort: a broken stats reader or a failing component check is
reported in its own section and never keeps diagnostics from answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tria_service.production.health_body import iso
from tria_service.production.probes import ProbeResult

ComponentCheck = Callable[[], Awaitable[dict[str, Any]]]
PoolStats = Callable[[], dict[str, Any]]

COMPONENT_CHECK_TIMEOUT_SECONDS = 5.0
# The database probe's details repeat the pool figures that diagnostics shows under "pools".
POOL_DETAIL_KEY = "pool"


@dataclass
class History:
    """What diagnostics tells about a dependency beyond its latest result."""

    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    probes_run: int = 0

    def record(self, result: ProbeResult) -> None:
        """Note a result; a degraded one counts as a success that still carries its warning."""
        if result.ok:
            self.last_success = result.checked_at
        if result.error:
            self.last_error, self.last_error_at = result.error, result.checked_at


def dependency_section(
    result: ProbeResult | None, history: History, *, critical: bool
) -> dict[str, Any]:
    """One dependency: status, latency, version, last error and success, probe details."""
    details = dict(result.details) if result else {}
    details.pop(POOL_DETAIL_KEY, None)  # shown once, under "pools"
    return {
        "status": result.status.value if result else "unknown",
        "critical": critical,
        "latency_ms": round(result.latency_ms, 3) if result else None,
        "version": result.version if result else None,
        "checked_at": iso(result.checked_at) if result else None,
        "last_error": history.last_error,
        "last_error_at": iso(history.last_error_at) if history.last_error_at else None,
        "last_success": iso(history.last_success) if history.last_success else None,
        "hint": result.hint if result else None,
        "probes_run": history.probes_run,
        "details": details,
    }


def pool_section(pool_stats: PoolStats | None) -> dict[str, Any]:
    """Connection pool figures, or the error that kept them from being read."""
    if pool_stats is None:
        return {}
    try:
        return pool_stats()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


async def component_sections(components: Mapping[str, ComponentCheck]) -> dict[str, Any]:
    """Every registered component's own section, run concurrently, each under a timeout."""

    async def run(name: str, check: ComponentCheck) -> tuple[str, dict[str, Any]]:
        try:
            async with asyncio.timeout(COMPONENT_CHECK_TIMEOUT_SECONDS):
                return name, await check()
        except TimeoutError:
            timeout = COMPONENT_CHECK_TIMEOUT_SECONDS
            return name, {"status": "fail", "error": f"timed out after {timeout:.1f}s"}
        except Exception as exc:
            return name, {"status": "fail", "error": f"{type(exc).__name__}: {exc}"}

    pairs = await asyncio.gather(*(run(n, c) for n, c in components.items()))
    return dict(pairs)
