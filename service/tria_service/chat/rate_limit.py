"""Per-session and per-client rate limits in Redis: fixed windows, checked in one atomic script.

A window starts with its first request and lasts TRIA_RATE_LIMIT_WINDOW seconds; every request in
it counts, so a client that keeps hammering stays limited until the window ends and then recovers.
Both counters move in one script, so concurrent requests (on any instance) cannot slip past a
limit. When Redis itself fails, requests are let through (the guard counts and logs it): limiting
is a protection, not a reason to refuse service.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import structlog

from tria_service.config import Settings
from tria_service.redis_guard import RedisGuard

log = structlog.get_logger(__name__)

Scope = Literal["session", "client"]
SESSION_KEY = "tria:ratelimit:session:{id}"
CLIENT_KEY = "tria:ratelimit:client:{id}"

# KEYS: the counters to hit; ARGV[1]: window in ms. Returns count and ms left, per key.
_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local left = redis.call('PTTL', key)
  if left < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    left = tonumber(ARGV[1])
  end
  out[#out + 1] = count
  out[#out + 1] = left
end
return out
"""


@dataclass(frozen=True)
class RateDecision:
    """The outcome for the most constrained scope: what the RateLimit-* headers report."""

    allowed: bool
    scope: Scope
    limit: int
    remaining: int
    reset: int
    window: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset)
        return headers


@dataclass
class _Counters:
    allowed: int = 0
    rejected: int = 0
    unchecked: int = 0


class RateLimiter:
    """Counts requests per session and per client and says whether one more may go through."""

    def __init__(self, guard: RedisGuard, settings: Settings) -> None:
        self.per_session = settings.tria_rate_limit_per_session
        self.per_client = settings.tria_rate_limit_per_client
        self.window = settings.tria_rate_limit_window
        self._guard = guard
        self._hit = guard.redis.register_script(_HIT)
        self._counters = _Counters()

    async def hit(
        self, client_id: str, session_id: UUID | None = None, *, client_scope: bool = True
    ) -> RateDecision | None:
        """Count one request against the client, and the session when there is one (a read of a
        session's messages counts for the client only); None when Redis could not be asked (the
        request goes through). ``client_scope=False`` counts the session alone: for a gate's
        synthetic traffic, authenticated by token, whose counter DELETE of the session removes."""
        if not client_scope and session_id is None:
            raise ValueError("a request not counted for its client must count for a session")
        scopes: list[tuple[Scope, str, int]] = []
        if client_scope:
            scopes.append(("client", client_key(client_id), self.per_client))
        if session_id is not None:
            scopes.append(("session", session_key(session_id), self.per_session))
        keys = [key for _, key, _ in scopes]
        raw: list[int] | None = await self._guard.run(
            "rate_limit",
            lambda redis: self._hit(keys=keys, args=[self.window * 1000], client=redis),
            None,
        )
        if raw is None:
            self._counters.unchecked += 1
            return None
        decisions = [
            _decide(scope, limit, int(raw[2 * i]), int(raw[2 * i + 1]), self.window)
            for i, (scope, _, limit) in enumerate(scopes)
        ]
        refused = [d for d in decisions if not d.allowed]
        decision = (
            max(refused, key=lambda d: d.reset)
            if refused
            else min(decisions, key=lambda d: (d.remaining, -d.reset))
        )
        if decision.allowed:
            self._counters.allowed += 1
        else:
            self._counters.rejected += 1
        return decision

    async def forget(self, session_id: UUID) -> None:
        """Drop a deleted session's counter (it would expire with its window anyway)."""
        key = session_key(session_id)
        await self._guard.run("rate_limit_forget", lambda redis: redis.delete(key), None)

    async def close(self) -> None:
        """The shutdown step: the windows stay in Redis until they end, but the counters end with
        the process, so their final figures go to the log (how much was refused, or let through
        unchecked while Redis failed)."""
        log.info("rate_limiter.closed", **self._figures())

    async def diagnostics(self) -> dict[str, Any]:
        return {
            "status": "warn" if self._guard.bypassing else "pass",
            "algorithm": "fixed window",
            "window_s": self.window,
            "per_session": self.per_session,
            "per_client": self.per_client,
            **self._figures(),
        }

    def _figures(self) -> dict[str, int]:
        counters = self._counters
        return {
            "allowed": counters.allowed,
            "rejections": counters.rejected,
            "let_through_unchecked": counters.unchecked,
        }


def _decide(scope: Scope, limit: int, count: int, left_ms: int, window: int) -> RateDecision:
    reset = max(1, math.ceil(left_ms / 1000)) if left_ms > 0 else window
    return RateDecision(
        allowed=count <= limit,
        scope=scope,
        limit=limit,
        remaining=max(0, limit - count),
        reset=reset,
        window=window,
    )


def client_key(client_id: str) -> str:
    """The Redis key counting a client's window; the id may come from a gateway's header, so it
    is hashed: any text makes a short, safe key."""
    digest = hashlib.sha256(client_id.encode("utf-8", "replace")).hexdigest()[:32]
    return CLIENT_KEY.format(id=digest)


def session_key(session_id: UUID) -> str:
    """The Redis key counting a session's window."""
    return SESSION_KEY.format(id=session_id)
