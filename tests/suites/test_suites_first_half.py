"""The shipped preflight, environment, database and Redis stages, run for real.

Each test copies those four modules (with ``suites/conftest.py`` and the expected schema) into a
pytester dir and runs them in a subprocess: once against the local target, where they must pass
and leave their measurements in verdict.json, and against external targets with one thing broken,
where the right stage must fail with a clear reason, without showing a secret, and block the
stages that depend on it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from pytest_tria_deploy.provision.processes import ServiceServer
from pytest_tria_deploy.provision.stack import (
    DependencyEndpoints,
    external_target_env,
    external_target_toml,
)
from tests.conftest import FreshDeps
from tests.plugin.conftest import QUIET_INI, read_verdict, stage_of
from tests.reliability.secrets_canaries import assert_no_secret
from tests.suites.helpers import SUITES, statuses

FIRST_HALF = (
    "conftest.py",
    "expected_schema.toml",
    "test_00_preflight.py",
    "test_10_environment.py",
    "test_20_database.py",
    "test_30_redis.py",
)
# Stands in for the later stages, which depend on the database and Redis.
DEPENDENT = '''
def test_after_the_dependencies():
    """Runs only when the dependency stages passed"""
'''
RUN_TIMEOUT = 180


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A dir holding the first half of the shipped suites and a dependent stage."""
    pytester.makeini(QUIET_INI)
    for name in FIRST_HALF:
        shutil.copy(SUITES / name, pytester.path / name)
    pytester.makepyfile(test_50_components=DEPENDENT)
    return pytester


def external(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    deps: DependencyEndpoints,
    service: ServiceServer,
    env: Mapping[str, str],
    *,
    settings: Mapping[str, str] | None = None,
    without: tuple[str, ...] = (),
    **overrides: str,
) -> None:
    """A target ``ext`` on the shared dependencies and service, some of its variables
    (``endpoints_env``'s names) overridden."""
    suite.makefile(
        ".toml", tria=external_target_toml("ext", "EXT_", settings=settings, without=without)
    )
    endpoints = deps.endpoints(
        service.url,
        diagnostics_token=env["TRIA_DIAGNOSTICS_TOKEN"],
        secret_key=env["SECRET_KEY"],
    )
    values = external_target_env("EXT_", endpoints) | {
        f"EXT_{name}": value for name, value in overrides.items()
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def run(suite: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any], str]:
    """Run; returns the result, verdict.json, and every output the run left (to search)."""
    result = suite.runpytest_subprocess(
        "--junitxml=reports/junit.xml", "-o", "junit_family=xunit1", *args, timeout=RUN_TIMEOUT
    )
    reports = suite.path / "reports"
    left = [result.stdout.str(), result.stderr.str()]
    left += [p.read_text(encoding="utf-8") for p in reports.glob("*.*") if p.suffix != ".lock"]
    return result, read_verdict(suite), "\n".join(left)


def properties(verdict: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for stage in verdict["targets"][0]["stages"]:
        for test in stage["tests"]:
            found.update(test.get("properties", {}))
    return found


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{host}"))


def seed_redis_baseline(suite: pytest.Pytester, *, p50_ms: float, p99_ms: float) -> Path:
    """An earlier run's Redis baseline for the local target, as the suites store it."""
    earlier = {"p50_ms": p50_ms, "p99_ms": p99_ms, "samples": 100, "measured_at": "earlier"}
    baselines = suite.path / "reports" / "baselines.json"
    baselines.parent.mkdir()
    baselines.write_text(json.dumps({"targets": {"local": {"redis": earlier}}}))
    return baselines


def test_the_first_half_passes_on_the_local_target_and_records_what_it_measured(
    suite: pytest.Pytester,
) -> None:
    suite.makefile(".toml", tria="")
    baselines = seed_redis_baseline(suite, p50_ms=0.5, p99_ms=1000.0)

    result, verdict, _ = run(suite)

    result.assert_outcomes(passed=17, skipped=4)
    assert result.ret == 0
    assert verdict["verdict"] == "PASS"
    assert set(statuses(verdict).values()) == {"PASS", "NOT RUN"}
    measured = properties(verdict)
    assert measured["database.schema_version"] == 4
    assert measured["database.server_version_num"] >= 140000
    assert measured["database.connections_used"] >= 1
    for name in ("database.connect_ms", "database.query_p99_ms", "redis.p50_ms", "redis.p99_ms"):
        assert measured[name] > 0, name
    assert measured["runner.cpus"] >= 1
    assert measured["redis.previous_p99_ms"] == 1000.0
    assert measured["redis.maxmemory_policy"] == "noeviction"
    assert measured["redis.limits_source"] == "CONFIG GET"
    stored = json.loads(baselines.read_text())["targets"]["local"]["redis"]
    assert stored["p99_ms"] == measured["redis.p99_ms"]


def test_a_redis_p99_over_twice_the_last_runs_makes_the_redis_stage_warn_naming_both(
    suite: pytest.Pytester,
) -> None:
    """A stored p99 of 0.001 ms: any real Redis is more than 2x that, however fast."""
    suite.makefile(".toml", tria="")
    seed_redis_baseline(suite, p50_ms=0.001, p99_ms=0.001)

    result, verdict, _ = run(suite, "-m", "redis")

    assert (result.ret, verdict["verdict"]) == (0, "WARN")
    stage = stage_of(verdict, "redis")
    assert (stage["status"], stage["failed"]) == ("WARN", 0)
    p99 = properties(verdict)["redis.p99_ms"]
    warnings = [w for test in stage["tests"] for w in test.get("warnings", [])]
    said = f"redis p99 {p99:.3f} ms is more than 2x the previous run's 0.001 ms"
    assert [w for w in warnings if said in w], warnings


def test_a_wrong_database_password_fails_the_database_stage_and_blocks_its_dependents(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    deps: DependencyEndpoints,
    fresh_deps: FreshDeps,
    running_service: ServiceServer,
    service_env: Mapping[str, str],
) -> None:
    """Redis, still independent, passes; it is reached as a user refused CONFIG, as on managed
    Redis, so its limits come from INFO."""
    planted = "planted-Wr0ng-database-pass-7731"
    own = fresh_deps("redis")
    admin = redis.Redis.from_url(own.redis_url)
    admin.acl_setuser(
        "gate",
        enabled=True,
        passwords=["+gate-pass-4417"],
        keys=["*"],
        commands=["+@all", "-config"],
    )
    admin.close()
    external(
        suite,
        monkeypatch,
        deps,
        running_service,
        service_env,
        DATABASE_URL=with_password(deps.database_url, planted),
        REDIS_URL=with_password(own.redis_url, "gate-pass-4417").replace("://:", "://gate:"),
    )

    result, verdict, output = run(suite, "--tria-target=ext")

    assert result.ret == 1
    assert verdict["verdict"] == "FAIL"
    found = statuses(verdict)
    assert (found["preflight"], found["environment"], found["redis"]) == ("PASS",) * 3
    assert (found["database"], found["components"]) == ("FAIL", "BLOCKED")
    reason = stage_of(verdict, "database")["reason"]
    assert "test_database_connection" in reason
    assert "refused the credentials" in reason
    assert "DATABASE_URL" in reason
    assert_no_secret({"the run's output": output}, {"the wrong database password": planted})
    measured = properties(verdict)
    assert measured["redis.limits_source"] == "INFO memory"
    assert measured["host.cpus"] >= 1  # the service host, from its diagnostics


def test_a_stopped_redis_fails_the_redis_stage_and_blocks_its_dependents(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    deps: DependencyEndpoints,
    fresh_deps: FreshDeps,
    running_service: ServiceServer,
    service_env: Mapping[str, str],
) -> None:
    own = fresh_deps("redis")
    assert own.servers.redis is not None
    own.servers.redis.stop()
    external(suite, monkeypatch, deps, running_service, service_env, REDIS_URL=own.redis_url)

    result, verdict, _ = run(suite, "--tria-target=ext")

    assert result.ret == 1
    assert verdict["verdict"] == "FAIL"
    found = statuses(verdict)
    assert (found["database"], found["redis"], found["components"]) == ("PASS", "FAIL", "BLOCKED")
    reason = stage_of(verdict, "redis")["reason"]
    assert "test_redis_connection" in reason
    port = urlsplit(own.redis_url).port
    assert f"Redis at 127.0.0.1:{port}/0 did not answer" in reason


# Each planted value is long enough for every form the secrets scan looks for (halves too);
# SECRET_KEY's stays under the 32 characters the environment stage wants.
PLANTED = {
    "DATABASE_URL": "planted-database-value-4471",
    "SECRET_KEY": "planted-short-secret-5512",
    "REDIS_URL's password": "planted-redis-password-6623",
    "REDIS_PASSWORD": "planted-other-password-9911",
    "OPENAI_API_KEY": "planted-openai-key-value-8834",
}
ENV_FILE = f"""\
DATABASE_URL={PLANTED["DATABASE_URL"]}
SECRET_KEY={PLANTED["SECRET_KEY"]}
REDIS_URL=redis://:{PLANTED["REDIS_URL's password"]}@127.0.0.1:6379/0
this line does not parse
REDIS_PASSWORD={PLANTED["REDIS_PASSWORD"]}
OPENAI_BASE_URL=
OPENAI_API_KEY={PLANTED["OPENAI_API_KEY"]}
SECRET_KEY={PLANTED["SECRET_KEY"]}
"""


def test_a_bad_env_file_is_named_line_by_line_and_never_shows_a_value(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    deps: DependencyEndpoints,
    running_service: ServiceServer,
    service_env: Mapping[str, str],
) -> None:
    """The gate is off so that both stages report; -l and -vv would show any value a traceback
    or an assertion held."""
    (suite.path / "deploy.env").write_text(ENV_FILE)
    settings = {"env_file": "deploy.env"}
    external(suite, monkeypatch, deps, running_service, service_env, settings=settings)

    result, verdict, output = run(
        suite, "--tria-target=ext", "--tria-gate=off", "-m", "preflight or environment", "-l", "-vv"
    )

    assert result.ret == 1
    assert (statuses(verdict)["preflight"], statuses(verdict)["environment"]) == ("FAIL", "FAIL")
    result.stdout.fnmatch_lines(
        [
            "*deploy.env:4: not a KEY=value line*",
            "*deploy.env: SECRET_KEY is set 2 times (lines 2, 8)*",
            "*DATABASE_URL has a scheme other than postgresql:// or postgresql+asyncpg://*",
            "*OPENAI_API_KEY does not look like an OpenAI key*",
            "*SECRET_KEY is under 32 characters*",
            "*REDIS_PASSWORD disagrees with REDIS_URL*",
        ],
        consecutive=False,
    )
    assert_no_secret({"the run's output": output}, PLANTED)


def test_an_external_target_without_a_secret_key_is_told_how_to_give_one(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    deps: DependencyEndpoints,
    running_service: ServiceServer,
    service_env: Mapping[str, str],
) -> None:
    external(suite, monkeypatch, deps, running_service, service_env, without=("secret_key",))

    result, verdict, _ = run(suite, "--tria-target=ext", "-m", "environment")

    assert result.ret == 1
    assert statuses(verdict)["environment"] == "FAIL"
    said = (
        'SECRET_KEY is not set — set secret_key to "${TRIA_EXT_SECRET_KEY}" in [targets.ext] of '
        "tria.toml, or name its env_file"
    )
    assert said in result.stdout.str()
