"""Is a component ready? Each readiness probe and the one bounded wait, for every provider.

PostgreSQL answers ``SELECT 1``, Redis answers PING, Chroma's v2 heartbeat answers, the OpenAI
stand-in lists its models for the stack's key, and the service's readiness answers 200. The local
servers probe themselves with these while they start; the containers and compose providers run
them against published ports, which also proves that what the fixtures will connect to is
reachable from the test host.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import asyncpg_dsn
from pytest_tria_deploy.provision.aio import run_async
from pytest_tria_deploy.provision.errors import ComponentStartError, redact_text

PROBE_TIMEOUT = 2.0
# Past the wait's deadline a probe still gets this long: the last look is a real one.
LAST_LOOK = 0.1
Exited = Callable[[], tuple[str, str] | None]
"""Names a component that has stopped running and how: (component, cause), else None."""
Failure = Callable[[str, str], ComponentStartError]
"""Builds the error for (component, cause), with that component's redacted log tail."""


def select_one(database_url: str, timeout: float = PROBE_TIMEOUT) -> None:
    import asyncpg

    async def query() -> None:
        async with asyncio.timeout(timeout):
            conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=timeout)
            try:
                await conn.fetchval("SELECT 1")
            finally:
                await conn.close()

    run_async(query)


def ping(redis_url: str, timeout: float = PROBE_TIMEOUT) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # the caller's backoff decides; no hidden retries
    )
    try:
        if not client.ping():
            raise ConnectionError("PING did not answer PONG")
    finally:
        client.close()


def heartbeat(chroma_url: str, timeout: float = PROBE_TIMEOUT) -> None:
    url = f"{chroma_url.rstrip('/')}/api/v2/heartbeat"
    httpx.get(url, timeout=timeout).raise_for_status()


def models(base_url: str, api_key: str, timeout: float = PROBE_TIMEOUT) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    url = f"{base_url.rstrip('/')}/models"
    httpx.get(url, headers=headers, timeout=timeout).raise_for_status()


def service_ready(service_url: str, timeout: float = PROBE_TIMEOUT) -> None:
    url = f"{service_url.rstrip('/')}/api/v1/health/readiness"
    response = httpx.get(url, timeout=timeout)
    if response.status_code != 200:
        raise ConnectionError(f"readiness answered {response.status_code}")


@dataclass(frozen=True)
class Check:
    """One component's readiness probe: raises while the component does not answer within
    the timeout (seconds) it is given."""

    component: str
    probe: Callable[[float], object]


def stack_checks(endpoints: Endpoints) -> list[Check]:
    """The dependencies first, then the service, so a failure names the deepest cause."""
    database = endpoints.database_url.get_secret_value()
    redis_url = endpoints.redis_url.get_secret_value()
    key = endpoints.openai_api_key.get_secret_value()
    openai_url = endpoints.openai_base_url or ""
    return [
        Check("postgres", partial(select_one, database)),
        Check("redis", partial(ping, redis_url)),
        Check("chroma", partial(heartbeat, endpoints.chroma_url)),
        Check("openai", partial(models, openai_url, key)),
        *(Check("service", partial(service_ready, url)) for url in endpoints.service_urls),
    ]


def describe_error(exc: BaseException) -> str:
    """``Type: first line`` of an exception, unredacted (callers redact)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def probe_budget(deadline: float | None) -> float:
    """How long one probe may take: PROBE_TIMEOUT, cut to what is left before ``deadline``
    (a ``time.monotonic()`` value), but never below LAST_LOOK."""
    if deadline is None:
        return PROBE_TIMEOUT
    return max(LAST_LOOK, min(PROBE_TIMEOUT, deadline - time.monotonic()))


def first_failure(checks: Sequence[Check], deadline: float | None = None) -> tuple[str, str] | None:
    """(component, redacted cause) of the first check that fails, or None when all pass; each
    probe is bounded by ``probe_budget(deadline)``, so a pass ends by the deadline."""
    for check in checks:
        try:
            check.probe(probe_budget(deadline))
        except Exception as exc:
            return check.component, redact_text(describe_error(exc))
    return None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between polls, from ``first`` up to ``most`` seconds."""

    first: float
    most: float


LOCAL = Backoff(0.01, 0.1)  # a process on this machine: answers within milliseconds of binding
REMOTE = Backoff(0.05, 1.0)  # containers behind port forwarding: polling fast buys nothing


class _NotReady(Exception):
    def __init__(self, component: str, cause: str) -> None:
        self.component = component
        self.cause = cause
        super().__init__(f"{component}: {cause}")


def _never_exited() -> tuple[str, str] | None:
    return None


def wait_until_ready(
    checks: Sequence[Check],
    timeout: float,
    failure: Failure,
    exited: Exited = _never_exited,
    *,
    backoff: Backoff = REMOTE,
) -> None:
    """Poll every check with bounded exponential backoff until all pass.

    When ``exited()`` names a component that stopped running, the wait fails at once instead of
    polling a process that cannot come back. Either way, and after ``timeout`` (with the last
    error as the cause), ``failure(component, cause)`` is raised. Probes and pauses are cut to
    the time left, so the wait ends within ``timeout`` plus a last look (LAST_LOOK per probe).
    """
    deadline = time.monotonic() + timeout
    names = [check.component for check in checks]
    answered: set[str] = set()
    blamed: _NotReady | None = None
    backoff_wait = wait_exponential(multiplier=backoff.first, min=backoff.first, max=backoff.most)

    def pause(state: RetryCallState) -> float:
        return max(0.0, min(backoff_wait(state), deadline - time.monotonic()))

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=pause,
        retry=retry_if_exception_type(_NotReady),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                dead = exited()
                if dead is not None:
                    raise failure(*dead)
                failed = first_failure(checks, deadline)
                if failed is not None:
                    answered.update(names[: names.index(failed[0])])
                    # A component that answered earlier and fails only on a probe cut short by
                    # the deadline is not the cause: the one that never answered is.
                    if failed[0] not in answered or blamed is None:
                        blamed = _NotReady(*failed)
                    raise blamed
    except _NotReady as exc:
        cause = f"not ready after {timeout:g}s (last error: {exc.cause})"
        raise failure(exc.component, cause) from None
