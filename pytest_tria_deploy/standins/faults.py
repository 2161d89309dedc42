"""Injected faults and request counters: the state the ``/_admin`` routes change and report."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pytest_tria_deploy.standins.protocol import APIError, FaultMode

ROUTES = ("chat_completions", "embeddings", "models")
_HANG_POLL_S = 0.05


@dataclass
class Fault:
    """The fault every ``/v1`` request meets; ``remaining`` counts down to automatic recovery."""

    mode: FaultMode = "none"
    latency_ms: int = 1000
    retry_after: int = 1
    remaining: int | None = None

    def describe(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "latency_ms": self.latency_ms,
            "retry_after": self.retry_after,
            "remaining": self.remaining,
        }


@dataclass
class StandinState:
    """Per-app state: the current fault and what has been asked since start or reset."""

    fault: Fault = field(default_factory=Fault)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    generation: int = 0

    def set_fault(self, fault: Fault) -> None:
        """Replace the fault; requests hung by the old one resume."""
        self.fault = fault
        self.generation += 1

    def reset(self) -> None:
        """Clear faults (startup ones too) and counters; hung requests resume."""
        self.set_fault(Fault())
        self.requests.clear()
        self.statuses.clear()
        self.since = datetime.now(UTC)

    def stats(self) -> dict[str, object]:
        counts: dict[str, object] = {route: self.requests[route] for route in ROUTES}
        return {
            **counts,
            "total": sum(self.requests.values()),
            "by_status": {str(code): n for code, n in sorted(self.statuses.items())},
            "fault": self.fault.describe(),
            "since": self.since.isoformat(),
        }

    def _take(self) -> Fault:
        """The fault for this request, counting it against a limited fault."""
        fault = self.fault
        if fault.mode != "none" and fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.fault = Fault()
        return fault

    async def apply(self, disconnected: Callable[[], Awaitable[bool]]) -> bool:
        """Raise or delay as the fault says; False when a hung client went away."""
        fault = self._take()
        if fault.mode == "401":
            raise APIError(
                401,
                "Incorrect API key provided (fault injected by the OpenAI stand-in).",
                code="invalid_api_key",
            )
        if fault.mode == "429":
            headers = {
                "retry-after": str(fault.retry_after),
                "retry-after-ms": str(fault.retry_after * 1000),
                "x-ratelimit-remaining-requests": "0",
            }
            raise APIError(
                429,
                "Rate limit reached (fault injected by the OpenAI stand-in). "
                f"Please try again in {fault.retry_after}s.",
                type="requests",
                code="rate_limit_exceeded",
                headers=headers,
            )
        if fault.mode == "500":
            raise APIError(
                500,
                "The server had an error while processing your request "
                "(fault injected by the OpenAI stand-in).",
                type="server_error",
                code="internal_error",
            )
        if fault.mode == "latency":
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.mode == "hang":
            return await self._hang(disconnected)
        return True

    async def _hang(self, disconnected: Callable[[], Awaitable[bool]]) -> bool:
        """Answer nothing until an admin call replaces the fault or the client gives up."""
        generation = self.generation
        while self.generation == generation:
            if await disconnected():
                return False
            await asyncio.sleep(_HANG_POLL_S)
        return not await disconnected()
