"""The shared fixtures other suites build on: ``deps``, ``service_env`` and ``fresh_deps``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import httpx
import openai
import pytest
import redis

from pytest_tria_deploy.provision.fresh import FreshDeps
from pytest_tria_deploy.provision.managed import wait_gone
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.reliability.secrets_canaries import assert_no_secret


async def test_deps_answer_on_every_protocol(deps: DependencyEndpoints) -> None:
    conn = await asyncpg.connect(deps.database_url)
    assert await conn.fetchval("SELECT current_database()") == "tria"
    await conn.close()
    assert redis.Redis.from_url(deps.redis_url).ping()
    async with httpx.AsyncClient() as client:
        heartbeat = await client.get(f"{deps.chroma_url}/api/v2/heartbeat")
    assert heartbeat.status_code == 200
    models = openai.AsyncOpenAI(base_url=deps.openai_base_url, api_key=deps.openai_api_key)
    assert "text-embedding-3-small" in {model.id async for model in models.models.list()}
    assert_no_secret(
        {"repr(deps)": repr(deps)},
        {f"deps secret {n}": secret for n, secret in enumerate(deps.secrets())},
    )


def test_service_env_is_complete_and_read_only(
    service_env: Mapping[str, str], deps: DependencyEndpoints
) -> None:
    assert {key: service_env[key] for key in deps.env()} == deps.env()
    assert len(service_env["SECRET_KEY"]) >= 32
    assert len(service_env["TRIA_DIAGNOSTICS_TOKEN"]) >= 32
    assert service_env["TRIA_ENV"] == "development"
    shared: Any = service_env
    with pytest.raises(TypeError):
        shared["REDIS_URL"] = "redis://elsewhere"


def test_fresh_deps_own_one_server_and_borrow_the_rest(
    fresh_deps: FreshDeps, deps: DependencyEndpoints
) -> None:
    mine = fresh_deps("redis")
    assert mine.redis_url != deps.redis_url
    assert mine.database_url == deps.database_url
    assert mine.servers.postgres is None
    assert mine.env()["REDIS_URL"] == mine.redis_url
    assert redis.Redis.from_url(mine.redis_url).ping()
    own_redis = mine.servers.redis
    assert own_redis is not None
    own_redis.kill()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(mine.redis_url, retry=None).ping()
    assert redis.Redis.from_url(deps.redis_url).ping()
    own_redis.restart()
    assert redis.Redis.from_url(mine.redis_url).ping()


def test_fresh_deps_are_stopped_at_teardown(fresh_deps: FreshDeps) -> None:
    mine = fresh_deps("redis", "openai")
    pids = [server.process.pid for server in mine.servers.running()]
    assert len(pids) == 2
    fresh_deps.stop_all()  # what the fixture's teardown runs
    assert all(wait_gone(pid, 5.0) for pid in pids)
