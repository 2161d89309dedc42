"""Schemathesis against the service's own OpenAPI schema, over real HTTP to a running service.

Whatever a client sends, the service answers without a 500 and with a response that matches what
its schema declares (status, content type, headers, body). Generation is derandomized with a fixed
seed and a small example count, so a run is repeatable and short.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from pytest_tria_deploy.provision.processes import ServiceServer, start_service
from tests.conftest import FreshDeps
from tests.reliability.fuzz_engine import FuzzRun, load_schema, run
from tests.reliability.secrets_canaries import assert_no_secret

# The shared service is read-only for everyone: only its health and metrics operations go there;
# chat, sessions and the admin operations go to a service of the test's own.
HEALTH_PATHS = r"^/(health|metrics|api/v1/health/.*)$"
OWN_PATHS = r"^/api/v1/(chat|sessions|knowledge)"


@pytest.fixture
def own_service(
    tmp_path: Path, service_env: Mapping[str, str], fresh_deps: FreshDeps
) -> Iterator[ServiceServer]:
    """A service of the test's own, on its own Redis (rate-limit counters stay out of the shared
    one) and its own Chroma collection (a reindex touches nothing shared)."""
    env = {
        **service_env,
        **fresh_deps("redis").env(),
        "CHROMA_COLLECTION": f"fuzz-{uuid.uuid4().hex[:12]}",
    }
    server = start_service(tmp_path / "service", env)
    yield server
    server.stop()


def _assert_clean(result: FuzzRun, operations: int, token: str) -> None:
    assert_no_secret({"the report": result.report()}, {"the token": token})  # a failure prints it
    assert result.stop_reason == "completed", result.report()
    assert len(result.cases) == operations, dict(result.cases)
    assert not result.findings, "\n" + result.report()
    assert not result.errors, "\n" + result.report()
    assert not [s for s in result.statuses if s >= 500], dict(result.statuses)


def test_health_operations_keep_their_schema(
    running_service: ServiceServer, service_env: Mapping[str, str]
) -> None:
    """Health, readiness, diagnostics and metrics answer as declared to any request."""
    token = service_env["TRIA_DIAGNOSTICS_TOKEN"]
    result = run(load_schema(running_service.url, {"HTTPBearer": token}, HEALTH_PATHS))
    _assert_clean(result, operations=5, token=token)


def test_chat_and_admin_operations_keep_their_schema(
    own_service: ServiceServer, service_env: Mapping[str, str]
) -> None:
    """Chat, session and admin operations never answer 500 nor break their declared schema."""
    token = service_env["TRIA_DIAGNOSTICS_TOKEN"]
    result = run(load_schema(own_service.url, {"AdminBearer": token}, OWN_PATHS))
    _assert_clean(result, operations=4, token=token)
