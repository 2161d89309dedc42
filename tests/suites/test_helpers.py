"""The plugin helpers the suites measure and read with: percentiles, timed rounds, env files,
and the rolled-back write transaction (against a real PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from pytest_tria_deploy.helpers import (
    KeyNamespace,
    SecretValues,
    measure,
    percentile,
    read_env_file,
    rolled_back,
    stopwatch,
    where,
)
from pytest_tria_deploy.provision.stack import (
    DependencyEndpoints,
    external_target_env,
    external_target_toml,
)
from pytest_tria_deploy.targets import load_config
from tests.conftest import FreshDeps
from tests.reliability.secrets_canaries import assert_no_secret

# Created only inside rolled-back transactions, so it never exists for anyone else.
TABLE = "tria_rolled_back_check"


def test_percentiles_are_nearest_rank_samples() -> None:
    samples = [float(n) for n in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile(samples, 0) == 1.0
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize(("samples", "q"), [([], 50), ([1.0], 101), ([1.0], -1)])
def test_percentile_refuses_what_has_no_answer(samples: list[float], q: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile(samples, q)


async def test_measure_times_every_round() -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1

    latency = await measure(call, 20)
    assert calls == latency.count == 20
    assert all(sample >= 0 for sample in latency.samples_ms)
    assert latency.p50_ms <= latency.p99_ms <= latency.max_ms
    assert latency.summary()["count"] == 20


async def test_measure_stops_at_its_deadline() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.05)

    latency = await measure(slow, 1000, deadline_s=0.2)
    assert 1 <= latency.count < 1000


def test_an_env_file_reads_as_the_service_would(tmp_path: Path) -> None:
    path = tmp_path / ".env.docker"
    path.write_text(
        "# comment\n"
        "DATABASE_URL=postgresql://u:p@db:5432/tria\n"
        'export secret_key="first"\n'
        "OPENAI_MODEL=gpt-4o-mini\n"
        "this line is not an assignment\n"
        "SECRET_KEY=second\n"
    )
    parsed = read_env_file(path)
    assert parsed.values["SECRET_KEY"] == "second"  # the last wins, names upper-cased
    assert parsed.values["DATABASE_URL"] == "postgresql://u:p@db:5432/tria"
    assert parsed.duplicates == {"SECRET_KEY": [3, 6]}
    assert parsed.unparsed == [5]


def test_a_clean_env_file_has_no_problems(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\nB='two words'\n\n")
    parsed = read_env_file(path)
    assert (parsed.values, parsed.duplicates, parsed.unparsed) == (
        {"A": "1", "B": "two words"},
        {},
        [],
    )


async def test_rolled_back_writes_on_a_read_only_pool_and_leaves_nothing(
    deps: DependencyEndpoints,
) -> None:
    pool = await asyncpg.create_pool(
        deps.database_url,
        min_size=1,
        max_size=1,
        server_settings={"default_transaction_read_only": "on"},
    )
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await pool.execute("CREATE TABLE tria_rolled_back_check (n int)")
        async with rolled_back(pool) as conn:
            await conn.execute("CREATE TABLE tria_rolled_back_check (n int)")
            await conn.execute("INSERT INTO tria_rolled_back_check VALUES (1)")
            assert await conn.fetchval("SELECT n FROM tria_rolled_back_check") == 1
        assert await pool.fetchval("SELECT to_regclass($1)", TABLE) is None
    finally:
        await pool.close()


async def test_rolled_back_rolls_back_when_the_check_fails(deps: DependencyEndpoints) -> None:
    pool = await asyncpg.create_pool(deps.database_url, min_size=1, max_size=1)

    async def create_then_fail() -> None:
        async with rolled_back(pool) as conn:
            await conn.execute("CREATE TABLE tria_rolled_back_check (n int)")
            raise RuntimeError("check failed")

    try:
        with pytest.raises(RuntimeError, match="check failed"):
            await create_then_fail()
        assert await pool.fetchval("SELECT to_regclass($1)", TABLE) is None
        assert await pool.fetchval("SELECT 1") == 1  # the connection went back usable
    finally:
        await pool.close()


async def test_key_cleanup_on_an_unreachable_redis_raises_nothing(fresh_deps: FreshDeps) -> None:
    """Its keys expire anyway; an error would land on whichever test ran last."""
    own = fresh_deps("redis")
    client = aioredis.Redis.from_url(own.redis_url, socket_connect_timeout=5)
    namespace = KeyNamespace(client)
    await namespace.set("left", "behind")
    assert own.servers.redis is not None
    own.servers.redis.stop()
    try:
        assert await namespace.cleanup() == 0
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("url", "port", "said"),
    [
        ("postgresql://tria:s3cret-pw@db.internal/tria", 5432, "db.internal:5432/tria"),
        ("redis://:s3cret-pw@127.0.0.1:6390/0?ssl=1", 6379, "127.0.0.1:6390/0"),
        ("http://user:s3cret-pw@[::1]:8000", 8000, "[::1]:8000"),
        ("https://api.openai.com/v1", 443, "api.openai.com:443/v1"),
    ],
)
def test_where_names_the_server_never_its_credentials(url: str, port: int, said: str) -> None:
    assert where(url, port) == said


async def test_stopwatch_times_its_block_also_when_it_raises() -> None:
    async def failing_check() -> None:
        await asyncio.sleep(0.02)
        raise RuntimeError("the check failed")

    with stopwatch() as took, pytest.raises(RuntimeError):
        await failing_check()
    assert took.ms >= 20


def test_secret_values_never_show_in_a_repr() -> None:
    values = SecretValues(["a-secret-value-4471", "another-one-9913"])
    assert repr(values) == "<2 secret values>"
    assert list(values) == ["a-secret-value-4471", "another-one-9913"]


def test_an_external_target_reads_every_endpoint_from_the_environment(
    deps: DependencyEndpoints, tmp_path: Path
) -> None:
    """The template and the variables agree: the target resolves to the same endpoints."""
    endpoints = deps.endpoints(
        "http://127.0.0.1:9", diagnostics_token="token-" * 4, secret_key="key-" * 10
    )
    text = external_target_toml(
        "ext",
        "EXT_",
        settings={"protected": True, "env_file": "x.env"},
        tables={"budgets": {"redis_p99_ms": 7}},
    )
    assert_no_secret(
        {"the template": text}, {f"secret {n}": v for n, v in enumerate(endpoints.secrets())}
    )
    (tmp_path / "tria.toml").write_text(text)
    config = load_config(tmp_path, None, tmp_path)
    assert config.problems == []
    target = config.targets["ext"].resolve(external_target_env("EXT_", endpoints))
    assert target.endpoints() == endpoints.model_copy(update={"env_file": "x.env"})
    assert (target.protected, target.budgets.redis_p99_ms) == (True, 7)
    without = external_target_toml("ext", "EXT_", without=("secret_key",))
    assert "secret_key" not in without


def test_a_found_secret_is_named_and_never_shown() -> None:
    secret = "a-planted-secret-value-8812"
    assert_no_secret({"out": "nothing here"}, {"the password": secret})
    with pytest.raises(pytest.fail.Exception) as caught:
        assert_no_secret({"out": f"x {secret.upper()} y"}, {"the password": secret})
    assert "out: the password (plain) x1" in str(caught.value)
    assert_no_secret({"the failure message": str(caught.value)}, {"the password": secret})
    with pytest.raises(pytest.fail.Exception):  # a short one is looked for as it is
        assert_no_secret({"out": "pw=Opt7Canary"}, {"the canary": "Opt7Canary"})
