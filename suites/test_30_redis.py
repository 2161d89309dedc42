"""Redis: it answers and authenticates, keeps what it is given, is fast, and says how full it is.

Safe on protected targets: the only key written is namespaced, has a TTL and is deleted.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import allure
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pytest_tria_deploy.baselines import BaselineUpdate
from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import (
    MB,
    KeyNamespace,
    Record,
    Timeouts,
    Warn,
    fail_listing,
    measure,
    timed_out,
    warn_over_budget,
    where,
)
from pytest_tria_deploy.report.attach import attach_json
from pytest_tria_deploy.targets import Budgets

ROUNDS = 100
MEMORY_WARN = 0.9


@contextlib.contextmanager
def redis_call(endpoints: Endpoints, timeouts: Timeouts) -> Iterator[None]:
    """Turn a Redis error into one line naming Redis, the cause and what to check (a hung Redis:
    "timed out after Xs")."""
    address = where(endpoints.redis_url.get_secret_value(), 6379)
    try:
        yield
    except AuthenticationError as exc:
        fail_listing(
            [
                f"Redis at {address} refused the credentials: {exc} — check the "
                "password in REDIS_URL (the target's redis_url)"
            ]
        )
    except (RedisError, OSError) as exc:
        cause = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, RedisTimeoutError):
            connecting = "connecting" in str(exc).lower()
            cause = timed_out(timeouts.connect if connecting else timeouts.request)
        fail_listing(
            [f"Redis at {address} did not answer: {cause} — check REDIS_URL and that Redis runs"]
        )


async def limits(client: aioredis.Redis, memory: dict[str, Any]) -> tuple[Any, Any, str]:
    """(maxmemory, policy, where from): CONFIG GET, else INFO (managed Redis often refuses
    CONFIG)."""
    try:
        config = await client.config_get("maxmemory*")
    except ResponseError:
        config = {}
    if "maxmemory" in config and "maxmemory-policy" in config:
        return config["maxmemory"], config["maxmemory-policy"], "CONFIG GET"
    return memory.get("maxmemory"), memory.get("maxmemory_policy"), "INFO memory"


async def test_redis_connection(
    redis_client: aioredis.Redis,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_record: Record,
) -> None:
    """Redis accepts a connection and authenticates it."""
    with redis_call(tria_endpoints, tria_timeouts):
        await redis_client.ping()
        server = await redis_client.info("server")
    major = str(server.get("redis_version", "0")).split(".")[0]
    tria_record("redis.major_version", int(major) if major.isdigit() else 0, "")


async def test_round_trip(
    redis_keys: KeyNamespace, tria_endpoints: Endpoints, tria_timeouts: Timeouts
) -> None:
    """A namespaced key with a TTL reads back, and is deleted afterwards."""
    value = uuid.uuid4().hex
    with redis_call(tria_endpoints, tria_timeouts):
        key = await redis_keys.set("round-trip", value)
        assert await redis_keys.get("round-trip") == value.encode()
        assert 0 < await redis_keys.client.ttl(key) <= redis_keys.ttl
        assert await redis_keys.client.delete(key) == 1
        assert await redis_keys.client.exists(key) == 0


async def test_latency_baseline(
    redis_client: aioredis.Redis,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_budget: Budgets,
    tria_record: Record,
    tria_warn: Warn,
    latency_baseline: BaselineUpdate,
) -> None:
    """Round-trip p50 and p99 are within the budget (over it: a warning), and compared with the
    last run's."""

    async def ping() -> None:
        await redis_client.ping()

    with allure.step(f"measure: {ROUNDS} PINGs"), redis_call(tria_endpoints, tria_timeouts):
        latency = await measure(ping, ROUNDS)
    tria_record("redis.p50_ms", round(latency.p50_ms, 3), "ms")
    tria_record("redis.p99_ms", round(latency.p99_ms, 3), "ms")
    with allure.step("compare: with the budget and the last run's baseline"):
        previous, current = latency_baseline("redis", latency)
        if previous is not None:
            tria_record("redis.previous_p99_ms", previous.p99_ms, "ms")
        attach_json(
            "redis latency baseline",
            {
                "current": asdict(current),
                "previous": asdict(previous) if previous else None,
                "budget_p99_ms": tria_budget.redis_p99_ms,
            },
        )
        warn_over_budget(
            tria_warn,
            f"Redis: PING p99 over {latency.count} round trips",
            "redis_p99_ms",
            tria_budget.redis_p99_ms,
            latency.p99_ms,
            record=tria_record,
        )


async def test_memory_and_eviction(
    redis_client: aioredis.Redis,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_record: Record,
    tria_warn: Warn,
) -> None:
    """Memory use and the eviction policy are reported."""
    with redis_call(tria_endpoints, tria_timeouts):
        memory = await redis_client.info("memory")
        maxmemory, policy, source = await limits(redis_client, memory)
    if "used_memory" not in memory or maxmemory is None or policy is None:
        fail_listing(["Redis reports neither CONFIG GET maxmemory* nor INFO memory's limits"])
    used, limit = int(memory["used_memory"]), int(maxmemory)
    tria_record("redis.used_memory_mb", round(used / MB, 1), "MB")
    tria_record("redis.maxmemory_mb", round(limit / MB, 1), "MB")
    tria_record("redis.maxmemory_policy", str(policy), "")
    tria_record("redis.limits_source", source, "")
    attach_json(
        "redis memory",
        {"used_bytes": used, "maxmemory_bytes": limit, "policy": policy, "source": source},
    )
    if limit and used / limit > MEMORY_WARN:
        tria_warn(
            f"Redis uses {used / MB:.0f} MB of its {limit / MB:.0f} MB maxmemory "
            f"({used / limit:.0%}); policy {policy}"
        )
