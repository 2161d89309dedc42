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
import tomllib
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from pytest_tria_deploy.helpers import where
from pytest_tria_deploy.provision.fresh import FreshDeps
from pytest_tria_deploy.provision.processes import start_service
from pytest_tria_deploy.provision.stack import (
    DependencyEndpoints,
    external_target_env,
    external_target_toml,
    service_env,
)
from tests.plugin.conftest import read_verdict, stage_of
from tests.reliability.secrets_canaries import assert_no_secret
from tests.suites.helpers import SUITES, allure_tests, copy_suites, stages

RUN_TIMEOUT_S = 300
UNPROTECTED, PROTECTED = (
    external_target_toml("own", "OWN_", settings={"protected": protected})
    for protected in (False, True)
)
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
ALLURE = "--alluredir=reports/allure-results"
# The longer checks' Allure steps, by their first word.
STEPS = {
    "test_schema_objects": ["columns:", "indexes:"],
    "test_connection_latency": ["connect:", "queries:"],
    "test_latency_baseline": ["measure:", "compare:"],
    "test_knowledge_collection": ["find:", "count:"],
}
# Checks a team would add that write to the target: never run on a protected one.
DESTRUCTIVE = {
    "test_22_database.py": """
import pytest

pytestmark = pytest.mark.destructive


async def test_writes_a_session(pg):
    \"\"\"A committed row in chat_sessions.\"\"\"
    await pg.execute(
        "INSERT INTO chat_sessions (client_id, metadata) VALUES ('tria-destructive', '{}')"
    )
""",
    "test_32_redis.py": """
import pytest

pytestmark = pytest.mark.destructive


async def test_writes_a_key(redis_client):
    \"\"\"A Redis key with no TTL.\"\"\"
    await redis_client.set("tria-destructive-check", "left behind")
""",
}


@pytest.fixture
def own_stack(
    fresh_deps: FreshDeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DependencyEndpoints]:
    """A stack of this test's own, exported as OWN_* for the ``own`` target: break it at will."""
    deps = fresh_deps()
    token, key = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    env = service_env(deps, secret_key=key, diagnostics_token=token)
    server = start_service(tmp_path / "service", env)
    endpoints = deps.endpoints(server.url, diagnostics_token=token, secret_key=key)
    for name, value in external_target_env("OWN_", endpoints).items():
        monkeypatch.setenv(name, value)
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
    """And leave in Allure the longer checks' steps, one step per known case, every chat turn
    and the readiness body."""
    suite = copy_suites(pytester, "")
    result = suite.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", ALLURE, timeout=RUN_TIMEOUT_S
    )
    verdict = read_verdict(suite)
    table = stages(verdict)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert verdict["verdict"] == "PASS", {n: (s["status"], s["reason"]) for n, s in table.items()}
    assert {name: table[name]["passed"] for name in MY_STAGES} == MY_STAGES
    result.stdout.fnmatch_lines(["VERDICT: PASS"])

    recorded = allure_tests(suite.path / "reports" / "allure-results")
    for test, firsts in STEPS.items():
        assert [step.split()[0] for step in recorded[test].steps] == firsts, (test, recorded[test])
    expected = tomllib.loads((SUITES / "expected_answers.toml").read_text(encoding="utf-8"))
    for test, table_name in (
        ("test_intent_classifier", "intents"),
        ("test_knowledge_retrieval", "knowledge"),
    ):
        cases = expected[table_name]
        assert len(recorded[test].steps) == len(cases), recorded[test]
        turns = [a for a in recorded[test].attachments if a.startswith("chat turn: ")]
        assert len(turns) == len(cases), recorded[test]
    smoke_turns = recorded["test_three_turn_conversation"].attachments
    assert len([a for a in smoke_turns if a.startswith("chat turn: ")]) == len(expected["smoke"])
    assert "readiness" in recorded["test_readiness"].attachments


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
    assert f"OpenAI at {where(own_stack.openai_base_url, 443)} answered 401" in reason
    assert "check OPENAI_API_KEY" in reason
    result.stdout.fnmatch_lines(["VERDICT: FAIL*external*"])
    assert_no_secret({"stdout": result.stdout.str()}, {"OPENAI_API_KEY": own_stack.openai_api_key})


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
    assert f"Chroma at {where(own_stack.chroma_url, 8000)} did not answer" in reason
    assert "CHROMA_URL" in reason
    openai_tests = [
        test
        for test in stage_of(read_verdict(suite), "external")["tests"]
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
    """Synthetic sessions (components, smoke) and the stages' own probes leave no row or key,
    and the destructive checks a team added (a committed row, a key with no TTL) are skipped
    with the reason. The service host's resources are read from its diagnostics, in steps."""
    rows_before, keys_before = asyncio.run(_footprint(own_stack))
    suite = copy_suites(pytester, PROTECTED)
    for name, source in DESTRUCTIVE.items():
        (suite.path / "suites" / name).write_text(source, encoding="utf-8")

    result = suite.runpytest_subprocess(
        "suites",
        "-p",
        "no:cacheprovider",
        "--tria-target=own",
        "-rs",
        ALLURE,
        timeout=RUN_TIMEOUT_S,
    )

    rows_after, keys_after = asyncio.run(_footprint(own_stack))
    verdict = read_verdict(suite)
    assert (verdict["verdict"], result.ret) == ("PASS", 0), result.stdout.str()[-3000:]
    assert verdict["targets"][0]["protected"] is True
    assert {name: stages(verdict)[name]["passed"] for name in MY_STAGES} == MY_STAGES
    outcomes = {
        test["nodeid"].rpartition("::")[2].partition("[")[0]: test["outcome"]
        for stage in ("database", "redis")
        for test in stage_of(verdict, stage)["tests"]
    }
    assert (outcomes["test_writes_a_session"], outcomes["test_writes_a_key"]) == ("skipped",) * 2
    said = "destructive test: target 'own' is protected; pass --tria-allow-destructive to run it"
    skipped = [line for line in result.outlines if line.startswith("SKIPPED") and said in line]
    assert len(skipped) == len(DESTRUCTIVE), result.outlines[-20:]
    assert rows_after == rows_before
    assert rows_before["chat_sessions"] == 0
    assert keys_after - keys_before == set()
    host = allure_tests(suite.path / "reports" / "allure-results")["test_service_host_resources"]
    assert len(host.steps) == 2, host
    assert "host" in host.attachments
