"""Is a started stack ready? The same checks as the local stack's, made from the test host.

PostgreSQL answers ``SELECT 1``, Redis answers PING, Chroma's v2 heartbeat answers, the OpenAI
stand-in lists its models for the stack's key, and the service's readiness answers 200. The
containers and compose providers run them against published ports, so they also prove that what
the fixtures will connect to is reachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import asyncpg_dsn
from pytest_tria_deploy.provision.errors import ComponentStartError, redact_text
from pytest_tria_deploy.provision.server import run_async

PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Check:
    """One component's readiness probe: raises while the component does not answer."""

    component: str
    probe: Callable[[], None]


def select_one(database_url: str) -> None:
    import asyncpg

    async def query() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=PROBE_TIMEOUT)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    run_async(query)


def ping(redis_url: str) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        redis_url,
        socket_connect_timeout=PROBE_TIMEOUT,
        socket_timeout=PROBE_TIMEOUT,
        retry=Retry(NoBackoff(), 0),  # the caller's backoff decides; no hidden retries
    )
    try:
        if not client.ping():
            raise ConnectionError("PING did not answer PONG")
    finally:
        client.close()


def heartbeat(chroma_url: str) -> None:
    url = f"{chroma_url.rstrip('/')}/api/v2/heartbeat"
    httpx.get(url, timeout=PROBE_TIMEOUT).raise_for_status()


def models(base_url: str, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    url = f"{base_url.rstrip('/')}/models"
    httpx.get(url, headers=headers, timeout=PROBE_TIMEOUT).raise_for_status()


def service_ready(service_url: str) -> None:
    url = f"{service_url.rstrip('/')}/api/v1/health/readiness"
    response = httpx.get(url, timeout=PROBE_TIMEOUT)
    if response.status_code != 200:
        raise ConnectionError(f"readiness answered {response.status_code}")


def stack_checks(endpoints: Endpoints) -> list[Check]:
    """The dependencies first, then the service, so a failure names the deepest cause."""
    database = endpoints.database_url.get_secret_value()
    redis_url = endpoints.redis_url.get_secret_value()
    key = endpoints.openai_api_key.get_secret_value()
    openai_url = endpoints.openai_base_url or ""
    return [
        Check("postgres", lambda: select_one(database)),
        Check("redis", lambda: ping(redis_url)),
        Check("chroma", lambda: heartbeat(endpoints.chroma_url)),
        Check("openai", lambda: models(openai_url, key)),
        *(Check("service", partial(service_ready, url)) for url in endpoints.service_urls),
    ]


def first_failure(checks: Sequence[Check]) -> tuple[str, str] | None:
    """(component, redacted cause) of the first check that fails, or None when all pass."""
    for check in checks:
        try:
            check.probe()
        except Exception as exc:
            text = str(exc).strip().splitlines()
            cause = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
            return check.component, redact_text(cause)
    return None


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
    logs: Callable[[str], list[str]],
    secrets: Iterable[str] = (),
    exited: Callable[[], tuple[str, str] | None] = _never_exited,
) -> None:
    """Poll every check with bounded exponential backoff until all pass.

    ``exited()`` names a component that has stopped running and how ((component, cause)): the
    wait then fails at once instead of polling a process that cannot come back. On failure,
    ComponentStartError names the component, the cause (or its last error after ``timeout``) and
    the last lines of its log (``logs(component)``, redacted by the error).
    """
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.05, min=0.05, max=1.0),
        retry=retry_if_exception_type(_NotReady),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                dead = exited()
                if dead is not None:
                    component, cause = dead
                    raise ComponentStartError(component, cause, logs(component), secrets=secrets)
                failure = first_failure(checks)
                if failure is not None:
                    raise _NotReady(*failure)
    except _NotReady as exc:
        raise ComponentStartError(
            exc.component,
            f"not ready after {timeout:g}s (last error: {exc.cause})",
            logs(exc.component),
            secrets=secrets,
        ) from None
