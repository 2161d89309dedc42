"""Targets at run time: multi-target ids, instances, protected targets and destructive tests."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from tests.plugin.conftest import QUIET_INI, activate, read_verdict, stage_of
from tests.reliability.secrets_canaries import assert_no_secret
from tests.tiny_http import serve_handler

TARGETS = """
[targets.prod-eu]
protected = true
instances = ["http://127.0.0.1:9/eu-1", "http://127.0.0.2:9/eu-2"]
database_url = "postgresql://u:p@127.0.0.1:9/db"
redis_url = "redis://127.0.0.1:9"
openai_api_key = "k"
chroma_url = "http://127.0.0.1:9"

[targets.prod-us]
protected = true
service_url = "http://127.0.0.3:9"
database_url = "postgresql://u:p@127.0.0.1:9/db"
redis_url = "redis://127.0.0.1:9"
openai_api_key = "k"
chroma_url = "http://127.0.0.1:9"

[targets.dev]
service_url = "http://127.0.0.4:9"
database_url = "postgresql://u:p@127.0.0.1:9/db"
redis_url = "redis://127.0.0.1:9"
openai_api_key = "k"
chroma_url = "http://127.0.0.1:9"
"""


@pytest.fixture
def targets(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(QUIET_INI)
    pytester.makefile(".toml", tria=TARGETS)
    return pytester


def test_multi_target_ids_carry_the_target_name(targets: pytest.Pytester) -> None:
    targets.makepyfile(
        test_01_preflight="""
        def test_staged_without_fixture():
            pass

        def test_uses_target(tria_target):
            assert tria_target.name in ("prod-eu", "prod-us")
        """,
        test_plain="""
        def test_unstaged():
            pass
        """,
    )
    result = targets.runpytest("--tria-target=prod-eu", "--tria-target=prod-us", "--co", "-q")
    result.stdout.fnmatch_lines(
        [
            "test_01_preflight.py::test_staged_without_fixture[[]prod-eu[]]",
            "test_01_preflight.py::test_uses_target[[]prod-eu[]]",
            "test_01_preflight.py::test_staged_without_fixture[[]prod-us[]]",
            "test_01_preflight.py::test_uses_target[[]prod-us[]]",
            "test_plain.py::test_unstaged",
        ]
    )
    result = targets.runpytest("--tria-target=prod-eu", "--tria-target=prod-us")
    result.assert_outcomes(passed=5)
    verdict = read_verdict(targets)
    assert verdict["target"] == "prod-eu,prod-us"
    assert [t["target"] for t in verdict["targets"]] == ["prod-eu", "prod-us"]
    preflight = stage_of(verdict, "preflight", target=1)
    assert [t["nodeid"] for t in preflight["tests"]] == [
        "test_01_preflight.py::test_staged_without_fixture[prod-us]",
        "test_01_preflight.py::test_uses_target[prod-us]",
    ]


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the outer test's output stays readable."""


@pytest.fixture
def two_instances() -> Iterator[list[str]]:
    """Two real HTTP servers answering /health, as one target's two instances."""
    with serve_handler(_Healthy) as first, serve_handler(_Healthy) as second:
        yield [first, second]


def test_service_fixture_runs_once_per_instance(
    targets: pytest.Pytester, two_instances: list[str]
) -> None:
    first, second = two_instances
    targets.makefile(
        ".toml",
        tria=TARGETS.replace(
            '"http://127.0.0.1:9/eu-1", "http://127.0.0.2:9/eu-2"', f'"{first}", "{second}"'
        ),
    )
    targets.makepyfile(
        test_07_health="""
        def test_instance(service, tria_instance, tria_endpoints):
            assert str(service.base_url).rstrip("/") == tria_endpoints.service_urls[tria_instance]
        """
    )
    result = targets.runpytest("--tria-target=prod-eu", "--co", "-q")
    first_id, second_id = (url.removeprefix("http://") for url in two_instances)
    result.stdout.fnmatch_lines(
        [
            f"*test_instance[[]{first_id}[]]",
            f"*test_instance[[]{second_id}[]]",
            "2 tests collected*",
        ]
    )
    result = targets.runpytest("--tria-target=prod-eu", "-v")
    result.stdout.fnmatch_lines(
        [f"*test_instance[[]{first_id}[]] PASSED*", f"*test_instance[[]{second_id}[]] PASSED*"]
    )
    result.assert_outcomes(passed=2)


def test_an_instance_that_does_not_answer_fails_its_tests_with_the_reason(
    targets: pytest.Pytester,
) -> None:
    targets.makepyfile(test_07_health="def test_instance(service):\n    pass\n")
    # In a subprocess: in-process runs re-import httpx beside the outer run's httpcore, and httpx
    # then no longer recognises httpcore's errors.
    result = targets.runpytest_subprocess("--tria-target=prod-us")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*service at http://127.0.0.3:9 did not answer /health within*"])


DESTRUCTIVE = """
import pytest

@pytest.mark.destructive
def test_writes_a_row():
    pass

def test_reads():
    pass
"""


def test_destructive_tests_skip_on_protected_targets(targets: pytest.Pytester) -> None:
    targets.makepyfile(test_03_database=DESTRUCTIVE)
    result = targets.runpytest("--tria-target=prod-us", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] test_03_database.py:3: destructive test: target 'prod-us' is "
            "protected; pass --tria-allow-destructive to run it"
        ]
    )
    verdict = read_verdict(targets)
    assert verdict["verdict"] == "PASS"
    assert stage_of(verdict, "database")["skipped"] == 1


def test_destructive_tests_run_when_allowed_or_unprotected(targets: pytest.Pytester) -> None:
    targets.makepyfile(test_03_database=DESTRUCTIVE)
    targets.runpytest("--tria-target=prod-us", "--tria-allow-destructive").assert_outcomes(passed=2)
    targets.runpytest("--tria-target=dev").assert_outcomes(passed=2)


def test_nothing_starts_without_an_endpoint_fixture(pytester: pytest.Pytester) -> None:
    """The default local target starts processes only when a test asks for endpoints."""
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(
        test_01_preflight="""
        def test_target_is_data(tria_target, tria_budget):
            assert tria_target.name == "local"
            assert tria_budget.readiness_ms > 0
        """
    )
    result = pytester.runpytest("--setup-plan")
    result.stdout.fnmatch_lines(["*SETUP    S tria_target*"])
    assert "tria_endpoints" not in result.stdout.str()
    pytester.runpytest().assert_outcomes(passed=1)


def test_unavailable_provider_gives_blocked_verdict(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIA_PG_BINDIR", str(pytester.path / "no-such-bindir"))
    pytester.makeini(QUIET_INI)
    pytester.makepyfile(
        test_03_database="""
        def test_db(tria_endpoints):
            pass
        """,
        test_08_smoke="def test_smoke():\n    pass\n",
    )
    result = pytester.runpytest("--tria-target=local", "-rs")
    result.assert_outcomes(errors=1, skipped=1)
    result.stdout.fnmatch_lines(["VERDICT: BLOCKED - target 'local': provider 'local' failed: *"])
    verdict = read_verdict(pytester)
    assert verdict["verdict"] == "BLOCKED"
    assert stage_of(verdict, "smoke")["status"] == "BLOCKED"
    assert result.ret == 1


def test_instance_ids_never_carry_url_credentials(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI)
    pytester.makefile(
        ".toml",
        tria="""
        [targets.creds]
        instances = ["http://u:pw-in-url-1@127.0.0.1:9", "http://u:pw-in-url-1@127.0.0.2:9"]
        database_url = "postgresql://u:p@127.0.0.1:9/db"
        redis_url = "redis://127.0.0.1:9"
        openai_api_key = "k"
        chroma_url = "http://127.0.0.1:9"
        """,
    )
    pytester.makepyfile(test_07_health="def test_instance(service):\n    pass\n")
    result = pytester.runpytest("--tria-target=creds", "--co", "-q")
    result.stdout.fnmatch_lines(
        ["*test_instance[[]127.0.0.1:9[]]", "*test_instance[[]127.0.0.2:9[]]"]
    )
    assert_no_secret({"collected ids": result.stdout.str()}, {"URL password": "pw-in-url-1"})
