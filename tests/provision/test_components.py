"""Each component starts from wheel or system binaries, talks its real protocol, stops fully."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import chromadb
import httpx
import openai
import psutil
import pytest
import redis
from chromadb.config import Settings as ChromaSettings
from redis.backoff import NoBackoff
from redis.retry import Retry

from pytest_tria_deploy.provision.managed import wait_gone
from pytest_tria_deploy.provision.processes import (
    PG_BINDIR_ENV,
    REDIS_SERVER_ENV,
    Server,
    start_chroma,
    start_openai_standin,
    start_postgres,
    start_redis,
    state_dir,
)
from tests.provision.conftest import SYSTEM_PG, SYSTEM_REDIS, use_binaries
from tests.reliability.secrets_canaries import assert_no_secret


def _assert_stopped(server: Server) -> None:
    pids = [server.process.pid]
    with contextlib.suppress(psutil.NoSuchProcess):
        pids += [child.pid for child in psutil.Process(server.process.pid).children(True)]
    server.stop()
    assert all(wait_gone(pid, 5.0) for pid in pids), f"still running: {pids}"
    assert not server.process.alive()
    assert not list(state_dir().glob(f"pids/*-{server.process.pid}.json"))


@pytest.mark.parametrize(("source", "major"), [("wheel", 18), ("system", 15)])
async def test_postgres_serves_the_app_database_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, major: int
) -> None:
    use_binaries(monkeypatch, PG_BINDIR_ENV, SYSTEM_PG, source)
    server = start_postgres(tmp_path)
    try:
        assert server.url.startswith(
            f"postgresql://tria:{server.password}@127.0.0.1:{server.port}/"
        )
        assert_no_secret({"repr(server)": repr(server)}, {"the postgres password": server.password})
        conn = await asyncpg.connect(server.url)
        try:
            row = await conn.fetchrow(
                "SELECT current_user AS usr, current_database() AS db,"
                " current_setting('server_version_num')::int / 10000 AS major,"
                " current_setting('fsync') AS fsync,"
                " current_setting('listen_addresses') AS listen"
            )
            await conn.execute("CREATE TABLE probe_rows (id int PRIMARY KEY)")
        finally:
            await conn.close()
        assert row is not None
        assert dict(row) == {
            "usr": "tria",
            "db": "tria",
            "major": major,
            "fsync": "off",
            "listen": "127.0.0.1",
        }
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host="127.0.0.1", port=server.port, user="tria", password="wrong", database="tria"
            )
        if os.geteuid() == 0:
            assert psutil.Process(server.process.pid).uids().real == 65534
    finally:
        _assert_stopped(server)
    assert not server.socket_dir.exists()


@pytest.mark.parametrize(("source", "major"), [("wheel", "6"), ("system", "7")])
def test_redis_requires_its_password_keeps_nothing_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, major: str
) -> None:
    use_binaries(monkeypatch, REDIS_SERVER_ENV, SYSTEM_REDIS, source)
    server = start_redis(tmp_path, password="pw-for-test")
    try:
        assert server.url == f"redis://:pw-for-test@127.0.0.1:{server.port}/0"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0)).ping()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.info("server")["redis_version"].split(".")[0] == major
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.set("k", "v")
        client.close()
    finally:
        _assert_stopped(server)


def test_redis_without_password(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    try:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert redis.Redis.from_url(server.url).ping()
    finally:
        _assert_stopped(server)


def test_chroma_stores_and_queries_vectors(tmp_path: Path) -> None:
    server = start_chroma(tmp_path)
    try:
        assert httpx.get(f"{server.url}/api/v2/heartbeat").status_code == 200
        client = chromadb.HttpClient(
            host="127.0.0.1",
            port=server.port,
            settings=ChromaSettings(anonymized_telemetry=False),
        )
        docs = client.create_collection("provision_probe")
        vectors: list[Sequence[float]] = [[1.0, 0.0], [0.0, 1.0]]
        docs.add(ids=["a", "b"], embeddings=vectors, documents=["one", "two"])
        near_one: Sequence[float] = [0.9, 0.1]
        found = docs.query(query_embeddings=near_one, n_results=1)
        assert found["documents"] == [["one"]]
    finally:
        _assert_stopped(server)


def test_openai_standin_answers_the_sdk_with_its_key_only(tmp_path: Path) -> None:
    server = start_openai_standin(tmp_path, api_key="sk-test-provision-key")
    try:
        assert server.base_url == f"{server.url}/v1"
        models = openai.OpenAI(base_url=server.base_url, api_key="sk-test-provision-key")
        assert "gpt-4o-mini" in {model.id for model in models.models.list()}
        wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong-key-000", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
    finally:
        _assert_stopped(server)


async def test_postgres_restart_keeps_data_and_recovers_from_a_crash(tmp_path: Path) -> None:
    server = start_postgres(tmp_path)
    try:
        url = server.url
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE survives (id int)")
        await conn.close()
        server.restart()
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT count(*) FROM survives") == 0
        await conn.close()
        server.kill()
        assert not server.process.alive()
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(url, timeout=2)
        server.restart()
        assert server.url == url
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT current_user") == "tria"
        await conn.close()
    finally:
        _assert_stopped(server)


def test_redis_pause_freezes_and_restart_revives(tmp_path: Path) -> None:
    server = start_redis(tmp_path, password="pw-pause")
    client = redis.Redis.from_url(server.url, socket_timeout=0.5)
    try:
        server.process.pause()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        server.process.resume()
        client = redis.Redis.from_url(server.url, socket_timeout=0.5)
        assert client.ping()
        server.restart()
        assert redis.Redis.from_url(server.url).ping()
    finally:
        client.close()
        _assert_stopped(server)
