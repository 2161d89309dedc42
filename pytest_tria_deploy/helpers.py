"""Small helpers suites use with the client fixtures (kept import-light for the plugin)."""

from __future__ import annotations

import contextlib
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    import asyncpg
    import redis.asyncio as aioredis
    from asyncpg.pool import PoolConnectionProxy

KEY_TTL_SECONDS = 600
MEASURE_DEADLINE_SECONDS = 10.0
MB = 1024 * 1024
DIAGNOSTICS = "/api/v1/health/diagnostics"

# What the ``tria_record`` and ``tria_warn`` fixtures are, for a suite's type hints.
Record = Callable[[str, float | str, str], None]
Warn = Callable[[str], None]
# Properties under this prefix are budget comparisons recorded by ``warn_over_budget``.
BUDGET_PREFIX = "budget."
# Env-file variables whose values are secrets. TOKEN and KEY only as suffixes: TRIA_AGENT_MAX_TOKENS
# is a number, not a credential, and masking it would blank that number in every report.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN$|API_KEY|_KEY$", re.IGNORECASE)


@dataclass(frozen=True)
class Timeouts:
    """How long every client waits for the target, in seconds: a hung dependency fails each
    check that asks it after at most this, saying "timed out after Xs"."""

    connect: float
    request: float

    def of(self, exc: BaseException) -> float:
        """The timeout that ``exc`` (a timeout error) ran into."""
        import httpx

        return self.connect if isinstance(exc, httpx.ConnectTimeout) else self.request


class SecretValues(tuple[str, ...]):
    """Secret values whose repr never shows them: pytest prints a failed test's arguments, and
    shortens a long repr mid-value, past what the redactor can recognise."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} secret values>"


def where(url: str, default_port: int) -> str:
    """``host:port/path`` of ``url``, never its credentials nor its query: how a failure says
    which server did not answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or default_port
    except ValueError:
        port = default_port
    return f"{host}:{port}{parts.path}"


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants ``postgresql://``; the SQLAlchemy-style ``postgresql+asyncpg://`` works too.

    The service has the same conversion (``Settings.asyncpg_dsn``); the plugin keeps its own so
    that it never imports the service it verifies.
    """
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


@contextlib.asynccontextmanager
async def read_only(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy[Any]]:
    """A connection inside a read-only transaction: safe on protected targets."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        yield conn


@contextlib.asynccontextmanager
async def rolled_back(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy[Any]]:
    """A connection inside a READ WRITE transaction that is always rolled back.

    READ WRITE is explicit because the ``pg`` pool defaults to read-only on protected targets; the
    rollback is what makes a write check safe there: nothing it wrote survives, whatever happens.
    """
    async with pool.acquire() as conn:
        await conn.execute("BEGIN READ WRITE")
        try:
            yield conn
        finally:
            await conn.execute("ROLLBACK")


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): always one of the samples, never interpolated,
    so a p99 of 100 round trips is the 99th slowest one."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in 0..100, got {q}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """Durations of repeated calls, in milliseconds."""

    samples_ms: tuple[float, ...]

    @property
    def count(self) -> int:
        return len(self.samples_ms)

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples_ms, 99)

    @property
    def max_ms(self) -> float:
        return max(self.samples_ms)

    def summary(self) -> dict[str, float]:
        """The figures a report shows, rounded to microseconds."""
        return {
            "count": self.count,
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
        }


async def measure(
    call: Callable[[], Awaitable[object]],
    rounds: int,
    deadline_s: float = MEASURE_DEADLINE_SECONDS,
) -> Latency:
    """Time ``rounds`` sequential awaits of ``call``; stops early once ``deadline_s`` has passed
    (at least one call always runs), so a slow target costs seconds, not minutes."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    samples: list[float] = []
    ends = time.perf_counter() + deadline_s
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        finished = time.perf_counter()
        samples.append((finished - started) * 1000)
        if finished >= ends:
            break
    return Latency(tuple(samples))


@dataclass
class Elapsed:
    """What ``stopwatch`` measured; ``ms`` is set when its block ends."""

    ms: float = 0.0


@contextlib.contextmanager
def stopwatch() -> Iterator[Elapsed]:
    """Time the block, in milliseconds (also when it raises)."""
    elapsed = Elapsed()
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.ms = (time.perf_counter() - started) * 1000


@contextlib.contextmanager
def soft_step(title: str, problems: list[str]) -> Iterator[None]:
    """An Allure step whose failed assertion marks the step failed and is collected in
    ``problems`` (its first line) instead of ending the test: every case of a table is checked
    and shown before the test fails once, listing them all."""
    import allure

    try:
        with allure.step(title):
            yield
    except AssertionError as exc:
        problems.append(str(exc).partition("\n")[0])


def timed_out(seconds: float) -> str:
    """The one wording of a call that got no answer in time, so a hung dependency reads the same
    in every stage: "timed out after 1.5s"."""
    return f"timed out after {seconds:g}s"


def warn_over_budget(
    warn: Warn,
    what: str,
    budget: str,
    budget_ms: float,
    measured_ms: float,
    *,
    record: Record,
) -> None:
    """A latency over its budget is a warning, not a failure: the dependency works, only slower
    than the target wants. The warning names the budget and both figures.

    Every comparison, within the budget or over it, is also recorded as the properties
    ``budget.<budget>.measured_ms``, ``.limit_ms`` and ``.check`` (``what``): the run's summary
    reads them to show each budget against what was measured, with no mapping kept by hand.
    Check a budget once per test: a second check of it in the same test replaces the first's.
    """
    measured = round(measured_ms, 3)
    record(f"{BUDGET_PREFIX}{budget}.measured_ms", measured, "ms")
    record(f"{BUDGET_PREFIX}{budget}.limit_ms", budget_ms, "ms")
    record(f"{BUDGET_PREFIX}{budget}.check", what, "")
    if measured > budget_ms:
        warn(
            f"{what} is over the {budget} budget: budget {budget_ms:g} ms, "
            f"measured {measured_ms:.1f} ms"
        )


def fail_listing(problems: Sequence[str]) -> NoReturn:
    """Fail with one line per problem and no traceback.

    Checks of configuration word each problem to name the variable and the fix, never its value;
    a traceback's assertion introspection (or ``--showlocals``) could show the value itself.
    """
    pytest.fail("\n".join(problems), pytrace=False)


@dataclass(frozen=True)
class EnvFile:
    """An env file as the service would read it, and what is wrong with its lines.

    Problems are line numbers and names only: a line may hold a secret.
    """

    path: Path
    values: dict[str, str]
    duplicates: dict[str, list[int]]
    unparsed: list[int]


def read_env_file(path: Path) -> EnvFile:
    """Parse ``path`` with python-dotenv, which silently keeps the last of duplicate keys and
    skips lines it cannot parse: both are found here. Names are compared upper-cased, as the
    service's settings read them. Raises OSError when the file cannot be read."""
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    lines: dict[str, list[int]] = {}
    unparsed: list[int] = []
    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.error:
                unparsed.append(binding.original.line)
            elif binding.key is not None:
                lines.setdefault(binding.key.upper(), []).append(binding.original.line)
    read = dotenv_values(path, encoding="utf-8")
    values = {key.upper(): value for key, value in read.items() if value is not None}
    duplicates = {key: found for key, found in lines.items() if len(found) > 1}
    return EnvFile(path, values, duplicates, unparsed)


class KeyNamespace:
    """Keys under one run's prefix, each written with a TTL and all deleted at teardown."""

    def __init__(self, client: aioredis.Redis, ttl: int = KEY_TTL_SECONDS) -> None:
        self.client = client
        self.ttl = ttl
        self.prefix = f"tria-deploy:test:{uuid.uuid4().hex[:12]}:"

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def set(self, name: str, value: str | bytes, ttl: int | None = None) -> str:
        """Write ``value`` under the namespaced key (always with a TTL) and return the key."""
        key = self.key(name)
        await self.client.set(key, value, ex=ttl or self.ttl)
        return key

    async def get(self, name: str) -> bytes | str | None:
        value: bytes | str | None = await self.client.get(self.key(name))
        return value

    async def cleanup(self) -> int:
        """Delete every key of this namespace; returns how many were deleted.

        A Redis that cannot be reached deletes nothing and raises nothing: every key has a TTL,
        so nothing outlives it for long, and the tests that needed Redis have already failed
        (an error here would land on whichever unrelated test ran last).
        """
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}*")]
            return int(await self.client.delete(*keys)) if keys else 0
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return 0
