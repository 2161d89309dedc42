"""The Redis guard's cooldown against a real Redis of the test's own: which call may end it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from tria_service.clients import Clients
from tria_service.config import Settings

if TYPE_CHECKING:
    from tests.conftest import FreshDeps


async def test_a_call_begun_before_a_failure_does_not_end_the_cooldown_the_failure_set(
    make_settings: Callable[..., Settings], fresh_deps: FreshDeps
) -> None:
    own = fresh_deps("redis")
    server = own.servers.redis
    assert server is not None
    clients = Clients(make_settings(REDIS_URL=own.redis_url))
    guard = clients.redis_guard
    guard.cooldown = 600.0  # the outage lasts until the test says otherwise
    answered, finish = asyncio.Event(), asyncio.Event()

    async def answered_then_held(redis: Redis) -> bool:
        pong: bool = await redis.ping()
        answered.set()
        await finish.wait()  # still in flight when Redis goes down
        return pong

    try:
        early = asyncio.create_task(guard.run("early", answered_then_held, False))
        await answered.wait()
        server.kill()
        failed = await guard.run("late", lambda redis: redis.ping(), False)
        finish.set()
        early_result = await early
        after_early = guard.bypassing
        skipped = await guard.run("skipped", lambda redis: redis.ping(), False)
        await asyncio.to_thread(server.restart)
        guard.cooldown = 0.0  # the next call is the trial
        trial = await guard.run("trial", lambda redis: redis.ping(), False)
        diagnostics = await guard.diagnostics()
    finally:
        await clients.close()

    assert early_result is True  # Redis answered it, before it went down
    assert failed is False  # the fallback: connection refused
    assert after_early  # the early call's success did not cancel the late call's cooldown
    assert skipped is False
    assert trial is True
    assert not diagnostics["bypassing"]  # the trial call's success ended the outage
    assert diagnostics["failures"] == {"late": 1}
    assert diagnostics["skipped_calls"] == {"skipped": 1}
