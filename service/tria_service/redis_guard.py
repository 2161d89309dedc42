"""Redis on the request path: every call bounded, and none made for a while after one failed.

The application uses Redis to speed a turn up (hot session window, answer cache, knowledge
version) or to protect itself (rate limits); each use has a fallback. So a dead or hung Redis must
cost a request little: without this, every call of a turn waited out the client's timeout and its
retry in turn (about 90 s a turn with Redis paused). After a connection failure or a timeout the
guard answers with the caller's fallback at once for a cooldown (``cooldown``, TRIA_TIMEOUT_REDIS
seconds unless changed), then lets a single call try Redis again, and only that call's success
ends the outage: a call that began before a failure says nothing about Redis since. The health
monitor's probes use the client directly and never wait on it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.exceptions
import structlog
from redis.asyncio import Redis

from tria_service.config import Dependency, Settings
from tria_service.production.failures import describe_error

T = TypeVar("T")
F = TypeVar("F")

# Redis unreachable or hung: skip it for a cooldown. Any other error (Redis answered, e.g. out of
# memory) only falls back for that call.
_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, TimeoutError)

log = structlog.get_logger(__name__)


class RedisGuard:
    """Runs Redis calls under the Redis timeout; after a failure, skips them for a cooldown."""

    def __init__(self, client: Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.timeout = settings.timeout_for(Dependency.REDIS)
        self.cooldown = self.timeout  # read at each call: a change applies to an outage under way
        self._down_since: float | None = None  # monotonic time of the last failure, while down
        self._trying = False  # one call is finding out whether Redis is back
        self._failures: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._last_error: str | None = None

    @property
    def bypassing(self) -> bool:
        """Whether calls are being skipped now (Redis failed less than a cooldown ago)."""
        if self._trying:
            return True
        down_since = self._down_since
        return down_since is not None and time.monotonic() < down_since + self.cooldown

    async def run(self, action: str, call: Callable[[Redis], Awaitable[T]], fallback: F) -> T | F:
        """``call(redis)``, or ``fallback`` when Redis is down, hung, or being skipped."""
        if self.bypassing:
            self._skipped[action] += 1
            return fallback
        outage = self._down_since
        trial = outage is not None  # the first call after a cooldown
        if trial:
            self._trying = True
        try:
            async with asyncio.timeout(self.timeout):
                result = await call(self.redis)
        except _DOWN as exc:
            self._failed(action, exc, down=True)
            return fallback
        except redis.exceptions.RedisError as exc:
            self._failed(action, exc, down=False)
            return fallback
        finally:
            if trial:
                self._trying = False
        if trial and self._down_since == outage:  # no other call failed meanwhile
            self._down_since = None
            log.info("redis.restored", action=action)
        return result

    async def diagnostics(self) -> dict[str, Any]:
        """Whether Redis is being skipped, and the failures and skipped calls per action."""
        return {
            "status": "warn" if self.bypassing else "pass",
            "bypassing": self.bypassing,
            "timeout_s": self.timeout,
            "cooldown_s": self.cooldown,
            "failures": dict(self._failures),
            "skipped_calls": dict(self._skipped),
            "last_error": self._last_error,
        }

    def _failed(self, action: str, exc: BaseException, *, down: bool) -> None:
        self._last_error = describe_error(exc, self.settings, Dependency.REDIS)
        self._failures[action] += 1
        if down:
            self._down_since = time.monotonic()
        log.warning(
            "redis.bypassed" if down else "redis.failed",
            action=action,
            error=self._last_error,
            retry_in_s=self.cooldown if down else 0,
        )
