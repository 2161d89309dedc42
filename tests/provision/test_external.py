"""The external provider pointed at a separately started stack behaves like the local target; a
dead service URL fails in the health stage, quickly and by name, and never hangs the run."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic import SecretStr

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.external import ExternalProvider
from pytest_tria_deploy.provision.managed import free_port
from pytest_tria_deploy.provision.stack import (
    DependencyEndpoints,
    LocalStack,
    external_target_env,
    external_target_toml,
)
from pytest_tria_deploy.targets import Target
from tests.plugin.conftest import QUIET_INI, read_verdict
from tests.reliability.secrets_canaries import assert_no_secret

SELECT_ONE = """
async def test_select_one(pg):
    assert await pg.fetchval("SELECT 1") == 1
"""
MIGRATED = """
async def test_the_service_migrated_this_database(pg):
    found = await pg.fetchval("SELECT to_regclass('knowledge_documents')::text")
    assert found == "knowledge_documents"
"""
REDIS = """
async def test_round_trip(redis_keys):
    await redis_keys.set("probe", "value")
    assert await redis_keys.get("probe") == b"value"
"""
EXTERNAL = """
async def test_models(openai_client, tria_endpoints):
    ids = [model.id async for model in openai_client.models.list()]
    assert tria_endpoints.openai_embedding_model in ids

def test_chroma(chroma_client):
    assert chroma_client.heartbeat() > 0
"""
HEALTH = """
async def test_ready(service):
    assert (await service.get("/api/v1/health/readiness")).status_code == 200
"""
DIAGNOSTICS = """
async def test_diagnostics(service, tria_endpoints):
    token = tria_endpoints.diagnostics_token.get_secret_value()
    answer = await service.get(
        "/api/v1/health/diagnostics", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200
"""
SMOKE = """
async def test_liveness(service):
    assert (await service.get("/health")).status_code == 200
"""


# A dead service is told apart within the connect timeout; the default 10 s would only make the
# black hole's run wait longer for the same failure.
DEAD_SERVICE_BUDGETS = {"connect_timeout_s": 1.0}


def _suite(
    pytester: pytest.Pytester,
    database: str,
    health: str,
    budgets: Mapping[str, float] | None = None,
) -> pytest.Pytester:
    pytester.makeini(QUIET_INI)
    tables = {"budgets": budgets} if budgets else None
    pytester.makefile(".toml", tria=external_target_toml("ext", "EXT_", tables=tables))
    pytester.makepyfile(
        test_03_database=database,
        test_04_redis=REDIS,
        test_05_external=EXTERNAL,
        test_07_health=health,
        test_08_smoke=SMOKE,
    )
    return pytester


def _point_at(monkeypatch: pytest.MonkeyPatch, endpoints: Endpoints) -> None:
    """Export the endpoints that target ``ext`` reads."""
    for name, value in external_target_env("EXT_", endpoints).items():
        monkeypatch.setenv(name, value)


def _stage_table(verdict: dict[str, Any]) -> list[tuple[str, str, int, int, int]]:
    return [
        (s["name"], s["status"], s["passed"], s["failed"], s["blocked"])
        for s in verdict["targets"][0]["stages"]
    ]


@pytest.fixture(scope="module")
def separate_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """A complete local stack started outside the runs under test (as a deployment would be)."""
    with LocalStack(tmp_path_factory.mktemp("external-stack")) as stack:
        yield stack.start()


def test_the_provider_hands_back_exactly_what_the_target_declares(
    separate_stack: Endpoints,
) -> None:
    target = Target(
        name="ext",
        service_url=separate_stack.service_urls[0],
        database_url=separate_stack.database_url,
        redis_url=separate_stack.redis_url,
        openai_base_url=separate_stack.openai_base_url,
        openai_api_key=separate_stack.openai_api_key,
        chroma_url=separate_stack.chroma_url,
        diagnostics_token=separate_stack.diagnostics_token,
    )
    provider = ExternalProvider()
    assert provider.start(target) == separate_stack.model_copy(update={"secret_key": None})
    assert provider.describe() == {
        "provider": "external",
        "starts": "nothing: the target already runs",
        "service": separate_stack.service_urls[0],  # what was verified, for the report
    }
    provider.stop()
    assert set(provider.describe()) == {"provider", "starts"}


def test_the_verified_service_is_reported_without_its_credentials() -> None:
    target = Target(
        name="ext",
        instances=["https://ops:pw-in-url@tria.example:8443", "https://tria-2.example"],
        database_url=SecretStr("postgresql://u:p@127.0.0.1:1/db"),
        redis_url=SecretStr("redis://127.0.0.1:1"),
        openai_api_key=SecretStr("k"),
        chroma_url="http://127.0.0.1:1",
    )
    provider = ExternalProvider()
    provider.start(target)
    service = provider.describe()["service"]
    assert_no_secret({"described service": service}, {"URL password": "pw-in-url"})
    assert service.startswith("https://ops:***@tria.example:8443, https://tria-2.example")


def test_an_external_target_on_a_running_stack_matches_the_local_target(
    pytester: pytest.Pytester, separate_stack: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_at(monkeypatch, separate_stack)
    suite = _suite(pytester, SELECT_ONE + MIGRATED, HEALTH + DIAGNOSTICS)

    local = suite.runpytest_subprocess("--tria-target=local")
    local_verdict = read_verdict(suite)
    external = suite.runpytest_subprocess("--tria-target=ext")
    external_verdict = read_verdict(suite)

    local.assert_outcomes(passed=8)
    external.assert_outcomes(passed=8)
    assert (local.ret, external.ret) == (0, 0)
    assert local_verdict["provider"] == "local"
    assert external_verdict["provider"] == "external"
    assert external_verdict["verdict"] == local_verdict["verdict"] == "PASS"
    assert _stage_table(external_verdict) == _stage_table(local_verdict)


@pytest.mark.parametrize("kind", ["closed port", "black hole"])
def test_a_dead_service_fails_the_health_stage_and_never_hangs(
    pytester: pytest.Pytester,
    deps: DependencyEndpoints,
    service_env: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    """Dependencies up (the shared ``deps``), the service URL dead: only health fails and smoke is
    blocked. The bound is generous; the client's own timeouts are what keeps the run short (the
    black hole's: the target's connect timeout, 1 s here)."""
    port = request.getfixturevalue("black_hole") if kind == "black hole" else free_port()
    url = f"http://127.0.0.1:{port}"
    _point_at(
        monkeypatch,
        deps.endpoints(
            url,
            diagnostics_token=service_env["TRIA_DIAGNOSTICS_TOKEN"],
            secret_key=service_env["SECRET_KEY"],
        ),
    )
    suite = _suite(pytester, SELECT_ONE, HEALTH, DEAD_SERVICE_BUDGETS)

    started = time.monotonic()
    result = suite.runpytest_subprocess("--tria-target=ext", timeout=300)
    elapsed = time.monotonic() - started

    assert elapsed < 120, f"the run took {elapsed:.0f}s"
    verdict = read_verdict(suite)
    statuses = {name: status for name, status, *_ in _stage_table(verdict)}
    assert statuses["database"] == statuses["redis"] == statuses["external"] == "PASS"
    assert statuses["health"] == "FAIL"
    assert statuses["smoke"] == "BLOCKED"
    assert verdict["verdict"] == "FAIL"
    assert result.ret == 1
    health = next(s for s in verdict["targets"][0]["stages"] if s["name"] == "health")
    assert f"service at {url} did not answer /health" in health["reason"], health["reason"]
    expected = "ConnectError" if kind == "closed port" else "timed out after 1s"
    assert expected in health["reason"], health["reason"]
