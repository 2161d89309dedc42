"""The shipped suites run for real: they pass against a local target and leave a protected one
as they found it; with OpenAI refusing its key or Chroma stopped, the external stage fails naming
the component while database and redis still run and the stages built on external are blocked
(verdict FAIL, exit 1).

Each run copies ``suites/`` as it is into a pytester dir and runs it in a subprocess, so what is
tested is exactly what users run.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.fresh import FreshDeps
from pytest_tria_deploy.provision.processes import start_service
from pytest_tria_deploy.provision.stack import DependencyEndpoints, endpoints_env, service_env
from tests.plugin.conftest import QUIET_INI, read_verdict

SUITES = Path(__file__).resolve().parents[2] / "suites"
RUN_TIMEOUT_S = 300
OWN_TOML = """
[targets.own]
protected = {protected}
service_url = "${OWN_TRIA_SERVICE_URL}"
database_url = "${OWN_DATABASE_URL}"
redis_url = "${OWN_REDIS_URL}"
openai_base_url = "${OWN_OPENAI_BASE_URL}"
openai_api_key = "${OWN_OPENAI_API_KEY}"
chroma_url = "${OWN_CHROMA_URL}"
diagnostics_token = "${OWN_TRIA_DIAGNOSTICS_TOKEN}"
secret_key = "${OWN_SECRET_KEY}"
"""
UNPROTECTED, PROTECTED = (OWN_TOML.replace("{protected}", p) for p in ("false", "true"))
# Exact row counts of every table: a session-local function runs the count per table.
COUNT_ROWS = """
CREATE FUNCTION pg_temp.count_rows(name text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM public.%I', name) INTO n;
  RETURN n;
END $$
"""
ROW_COUNTS = """
SELECT tablename AS name, pg_temp.count_rows(tablename) AS count
FROM pg_tables WHERE schemaname = 'public'
"""
SERVICE_PROBE_KEYS = b"tria:health:"
MY_STAGES = {"external": 6, "components": 5, "health": 8, "smoke": 1}
BUILT_ON_EXTERNAL = ("components", "health", "smoke")


def copy_suites(pytester: pytest.Pytester, tria_toml: str) -> pytest.Pytester:
    """``suites/`` as it is now, under a rootdir whose tria.toml is ``tria_toml``."""
    pytester.makeini(QUIET_INI)
    pytester.makefile(".toml", tria=tria_toml)
    shutil.copytree(SUITES, pytester.path / "suites", ignore=shutil.ignore_patterns("__pycache__"))
    return pytester


def stages(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {stage["name"]: stage for stage in verdict["targets"][0]["stages"]}


@pytest.fixture
def own_stack(
    fresh_deps: FreshDeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DependencyEndpoints]:
    """A stack of this test's own, exported as OWN_* for the ``own`` target: break it at will."""
    deps = fresh_deps()
    token, key = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    env = service_env(deps, secret_key=key, diagnostics_token=token)
    server = start_service(tmp_path / "service", env)
    endpoints = Endpoints(
        service_urls=[server.url],
        database_url=SecretStr(deps.database_url),
        redis_url=SecretStr(deps.redis_url),
        openai_base_url=deps.openai_base_url,
        openai_api_key=SecretStr(deps.openai_api_key),
        chroma_url=deps.chroma_url,
        diagnostics_token=SecretStr(token),
        secret_key=SecretStr(key),
    )
    for name, value in endpoints_env(endpoints).items():
        monkeypatch.setenv(f"OWN_{name}", value)
    yield deps
    server.stop()


def assert_external_fails_alone(pytester: pytest.Pytester, result: pytest.RunResult) -> str:
    """External failed, its dependents blocked, the independent branches ran; its reason."""
    verdict = read_verdict(pytester)
    table = stages(verdict)
    assert (verdict["verdict"], verdict["exit_code"], result.ret) == ("FAIL", 1, 1)
    assert table["external"]["status"] == "FAIL"
    for name in ("database", "redis"):
        assert table[name]["status"] == "PASS", (name, table[name])
        assert table[name]["passed"] > 0
    for name in BUILT_ON_EXTERNAL:
        assert table[name]["status"] == "BLOCKED", (name, table[name])
        assert table[name]["passed"] == table[name]["failed"] == 0
    reason: str = table["external"]["reason"]
    return reason


def test_the_suites_pass_against_a_local_target(pytester: pytest.Pytester) -> None:
    suite = copy_suites(pytester, "")
    result = suite.runpytest_subprocess("suites", "-p", "no:cacheprovider", timeout=RUN_TIMEOUT_S)
    verdict = read_verdict(suite)
    table = stages(verdict)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert verdict["verdict"] == "PASS", {n: (s["status"], s["reason"]) for n, s in table.items()}
    assert {name: table[name]["passed"] for name in MY_STAGES} == MY_STAGES
    result.stdout.fnmatch_lines(["VERDICT: PASS"])


def test_openai_refusing_its_key_fails_external_and_blocks_its_dependents(
    pytester: pytest.Pytester, own_stack: DependencyEndpoints
) -> None:
    admin = own_stack.openai_base_url.removesuffix("/v1") + "/_admin/fault"
    httpx.post(admin, json={"mode": "401"}, timeout=10).raise_for_status()
    suite = copy_suites(pytester, UNPROTECTED)

    result = suite.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "--tria-target=own", timeout=RUN_TIMEOUT_S
    )

    reason = assert_external_fails_alone(suite, result)
    assert f"OpenAI at {own_stack.openai_base_url} answered 401" in reason
    assert "check OPENAI_API_KEY" in reason
    result.stdout.fnmatch_lines(["VERDICT: FAIL*external*"])
    assert own_stack.openai_api_key not in result.stdout.str()


def test_chroma_stopped_fails_external_naming_chroma(
    pytester: pytest.Pytester, own_stack: DependencyEndpoints
) -> None:
    assert own_stack.servers.chroma is not None
    own_stack.servers.chroma.stop()
    suite = copy_suites(pytester, UNPROTECTED)

    result = suite.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "--tria-target=own", timeout=RUN_TIMEOUT_S
    )

    reason = assert_external_fails_alone(suite, result)
    assert f"Chroma at {own_stack.chroma_url} did not answer" in reason
    assert "CHROMA_URL" in reason
    openai_tests = [
        test
        for test in stages(read_verdict(suite))["external"]["tests"]
        if "openai" in test["nodeid"]
    ]
    assert openai_tests
    assert {test["outcome"] for test in openai_tests} == {"passed"}


async def _footprint(deps: DependencyEndpoints) -> tuple[dict[str, int], set[bytes]]:
    """Rows per table of the service's database, and every key in its Redis."""
    conn = await asyncpg.connect(deps.database_url)
    try:
        await conn.execute(COUNT_ROWS)
        counted = await conn.fetch(ROW_COUNTS)
    finally:
        await conn.close()
    rows = {record["name"]: int(record["count"]) for record in counted}
    client = aioredis.Redis.from_url(deps.redis_url)
    try:
        # The service's own Redis probe (SET, GET, DEL in one pipeline) may be caught mid-flight.
        keys = {key async for key in client.scan_iter(count=1000)}
        keys = {key for key in keys if not key.startswith(SERVICE_PROBE_KEYS)}
    finally:
        await client.aclose()
    return rows, keys


def test_a_protected_target_keeps_nothing_from_a_run(
    pytester: pytest.Pytester, own_stack: DependencyEndpoints
) -> None:
    """Synthetic sessions (components, smoke) and the stages' own probes leave no row or key."""
    rows_before, keys_before = asyncio.run(_footprint(own_stack))
    suite = copy_suites(pytester, PROTECTED)

    result = suite.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "--tria-target=own", timeout=RUN_TIMEOUT_S
    )

    rows_after, keys_after = asyncio.run(_footprint(own_stack))
    verdict = read_verdict(suite)
    assert (verdict["verdict"], result.ret) == ("PASS", 0), result.stdout.str()[-3000:]
    assert verdict["targets"][0]["protected"] is True
    assert {name: stages(verdict)[name]["passed"] for name in MY_STAGES} == MY_STAGES
    assert rows_after == rows_before
    assert rows_before["chat_sessions"] == 0
    assert keys_after - keys_before == set()
