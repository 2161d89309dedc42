"""Allure results by default: where they go, what the plugin adds (environment, categories,
executor), how a passing test's warnings reach Allure, and how the categories sort the messages
the suites really produce (the shipped suites run against real, broken targets)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_tria_deploy.provision.processes import ServiceServer
from pytest_tria_deploy.provision.stack import DependencyEndpoints, external_target_toml
from pytest_tria_deploy.report.allure_categories import (
    BLOCKED,
    BUDGET,
    CATEGORIES,
    MISCONFIGURED,
    PRODUCT,
    UNREACHABLE,
)
from pytest_tria_deploy.report.allure_files import executor, properties_text
from tests.conftest import FreshDeps
from tests.plugin.conftest import QUIET_INI, STAGE_ORDER, activate, commit_suites
from tests.reliability.secrets_canaries import assert_no_secret
from tests.suites.helpers import copy_suites
from tests.suites.test_suites_first_half import RUN_TIMEOUT, external

CI_VARIABLES = ("GITHUB_ACTIONS", "GITLAB_CI")
EXTRAS = ("environment.properties", "categories.json", "executor.json")


@pytest.fixture(autouse=True)
def not_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run in CI too: the executor must be what each test sets."""
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def results(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text("utf-8")) for p in sorted(directory.glob("*-result.json"))]


def read_properties(path: Path) -> dict[str, str]:
    """environment.properties as the plain ``key=value`` lines the plugin writes for ASCII."""
    lines = path.read_text("ascii").splitlines()
    return dict(line.split("=", 1) for line in lines if line)


def categories_of(result: dict[str, Any]) -> list[str]:
    """The categories Allure gives ``result``, judged the way Allure 2 does (Java's whole-string
    ``matches()``, DOTALL) and Allure 3 does (``RegExp(regex, "s").test``): both must agree."""
    message = (result.get("statusDetails") or {}).get("message")
    found: dict[str, list[str]] = {"allure2": [], "allure3": []}
    for category in CATEGORIES:
        if result["status"] not in category["matchedStatuses"] or message is None:
            continue
        if re.fullmatch(category["messageRegex"], message, re.DOTALL):
            found["allure2"].append(category["name"])
        if re.search(category["messageRegex"], message, re.DOTALL):
            found["allure3"].append(category["name"])
    assert found["allure2"] == found["allure3"], (result["name"], found)
    return found["allure2"]


def test_results_and_extras_go_to_the_report_dir_with_no_flag(suite: pytest.Pytester) -> None:
    allure_dir = suite.path / "reports" / "allure-results"
    allure_dir.mkdir(parents=True)
    (allure_dir / "stale-result.json").write_text("{}")

    result = suite.runpytest()

    assert result.ret == 0
    found = results(allure_dir)
    assert sorted(r["name"] for r in found) == sorted(STAGE_ORDER)
    assert not (allure_dir / "stale-result.json").exists()
    environment = read_properties(allure_dir / "environment.properties")
    assert environment["target"] == "local"
    assert environment["provider"] == "local"
    assert environment["service.version"] == "unknown"  # no health stage of the shipped suites
    assert environment["python.version"].count(".") == 2
    assert environment["tria_deploy.version"] == "0.1.0"
    names = [c["name"] for c in json.loads((allure_dir / "categories.json").read_text())]
    assert names == [BLOCKED, UNREACHABLE, MISCONFIGURED, BUDGET, PRODUCT]
    assert json.loads((allure_dir / "executor.json").read_text()) == {
        "name": socket.gethostname(),
        "type": "local",
    }


def test_allure_pytest_reads_the_directory_the_plugin_set(suite: pytest.Pytester) -> None:
    """Our pytest_configure is tryfirst; allure-pytest's (plain) registers its listener after it
    from the option, as this conftest's trylast one sees."""
    suite.makeconftest(
        "import pytest\n\n"
        "@pytest.hookimpl(trylast=True)\n"
        "def pytest_configure(config):\n"
        "    listener = config.pluginmanager.get_plugin('allure_listener')\n"
        "    print('ALLURE', config.option.allure_report_dir, listener is not None)\n"
    )
    result = suite.runpytest("-s")
    result.stdout.fnmatch_lines([f"ALLURE {suite.path}/reports/allure-results True"])


def test_the_users_alluredir_wins_and_gets_the_extras(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--alluredir=mine")

    assert result.ret == 0
    assert len(results(suite.path / "mine")) == len(STAGE_ORDER)
    assert all((suite.path / "mine" / name).is_file() for name in EXTRAS)
    assert not (suite.path / "reports" / "allure-results").exists()


@pytest.mark.parametrize(
    "how", [("--tria-no-default-reports",), ("-o", "tria_no_default_reports=true")]
)
def test_the_switch_turns_the_default_reports_off(
    suite: pytest.Pytester, how: tuple[str, ...]
) -> None:
    result = suite.runpytest(*how)

    assert result.ret == 0
    assert sorted(p.name for p in (suite.path / "reports").iterdir()) == [
        "history.jsonl",
        "history.jsonl.lock",
        "summary.md",
        "verdict.json",
    ]


def test_a_bad_switch_value_is_a_usage_error_naming_the_key(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-o", "tria_no_default_reports=maybe")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tria-deploy: ini key tria_no_default_reports (ini*"])


def test_under_xdist_no_worker_cleans_away_anothers_results(suite: pytest.Pytester) -> None:
    """allure-pytest's --clean-alluredir would run on each worker as it starts; the plugin
    empties its directory once, on the controller, and turns that off."""
    allure_dir = suite.path / "reports" / "allure-results"
    allure_dir.mkdir(parents=True)
    (allure_dir / "stale-result.json").write_text("{}")

    result = suite.runpytest("-n", "2", "--clean-alluredir")

    assert result.ret == 0
    assert sorted(r["name"] for r in results(allure_dir)) == sorted(STAGE_ORDER)
    assert all((allure_dir / name).is_file() for name in EXTRAS)


def test_a_file_named_allure_results_skips_them_and_the_verdict_stands(
    suite: pytest.Pytester,
) -> None:
    """allure-pytest would stop the run with an INTERNALERROR (exit 3): the results are
    skipped, said at the end, and the gate's verdict, exit code and other reports stand."""
    (suite.path / "reports").mkdir()
    (suite.path / "reports" / "allure-results").write_text("not a directory")

    result = suite.runpytest("-n", "2")

    assert result.ret == 0, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(
        [
            "VERDICT: PASS",
            "tria-deploy: allure-results was not written: FileExistsError: *"
            "remove what is in the way, or pass --tria-report-dir, --alluredir or --junitxml",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert (suite.path / "reports" / "allure-results").read_text() == "not a directory"
    assert (suite.path / "reports" / "junit.xml").is_file()
    assert (suite.path / "reports" / "summary.md").is_file()


def test_collect_only_leaves_the_last_runs_reports_alone(suite: pytest.Pytester) -> None:
    """IDEs collect all the time: that must not wipe what the last gate run wrote."""
    assert suite.runpytest().ret == 0
    reports = suite.path / "reports"
    kept = ("junit.xml", "summary.md", "history.jsonl", "verdict.json")
    before = {name: (reports / name).read_bytes() for name in kept}
    results_before = sorted(p.name for p in (reports / "allure-results").iterdir())

    result = suite.runpytest("--collect-only", "-q")

    assert result.ret == 0
    assert {name: (reports / name).read_bytes() for name in kept} == before
    assert sorted(p.name for p in (reports / "allure-results").iterdir()) == results_before
    assert len(results(reports / "allure-results")) == len(STAGE_ORDER)


INSTANCES = """
import pytest

@pytest.mark.parametrize("instance, version", [("a", "2.0.0"), ("b", "2.1.0"), ("c", "2.0.0")])
def test_readiness(tria_record, instance, version):
    tria_record("service.version", version, "")
"""


def test_a_mixed_release_shows_every_version_it_found(pytester: pytest.Pytester) -> None:
    """A rollout caught half-way: the instances answer with two versions, and both are named."""
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(test_07_health=INSTANCES)

    assert pytester.runpytest().ret == 0

    environment = read_properties(pytester.path / "reports" / "allure-results" / EXTRAS[0])
    assert environment["service.version"] == "2.0.0, 2.1.0"
    assert environment["service.release"] == "unknown"


WARNED = """
import pytest

def test_slow(tria_warn):
    tria_warn("liveness is over the liveness_ms budget: budget 1 ms, measured 3.5 ms")
    tria_warn("readiness: openai:responseTime is warn: slow")

def test_quiet():
    pass

def test_warned_then_failed(tria_warn):
    tria_warn("readiness is over the readiness_ms budget: budget 1 ms, measured 9.0 ms")
    pytest.fail("readiness answered 500", pytrace=False)
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")])
def test_a_passing_tests_warnings_become_its_status_details(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(test_07_health=WARNED)

    pytester.runpytest(*workers)

    found = {r["name"]: r for r in results(pytester.path / "reports" / "allure-results")}
    slow = found["test_slow"]
    assert (slow["status"], slow["statusDetails"]["message"]) == (
        "passed",
        "liveness is over the liveness_ms budget: budget 1 ms, measured 3.5 ms\n"
        "readiness: openai:responseTime is warn: slow",
    )
    assert categories_of(slow) == [BUDGET]
    assert "statusDetails" not in found["test_quiet"]
    failed = found["test_warned_then_failed"]
    assert failed["statusDetails"]["message"] == "Failed: readiness answered 500"
    assert categories_of(failed) == [PRODUCT]


def test_executor_names_the_github_actions_run() -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "tria/deploy",
        "GITHUB_RUN_ID": "9876",
        "GITHUB_RUN_NUMBER": "42",
        "GITHUB_WORKFLOW": "deploy-gate",
    }
    assert executor(env, "runner-1") == {
        "name": "GitHub Actions",
        "type": "github",
        "url": "https://github.com/tria/deploy",
        "buildOrder": 42,
        "buildName": "deploy-gate #42",
        "buildUrl": "https://github.com/tria/deploy/actions/runs/9876",
    }


def test_executor_names_the_gitlab_job_and_never_a_credential_in_its_urls() -> None:
    planted = "planted-ci-token-value-5531"
    env = {
        "GITLAB_CI": "true",
        "CI_PROJECT_URL": f"https://ci:{planted}@gitlab.example/tria/deploy",
        "CI_PIPELINE_IID": "7",
        "CI_JOB_NAME": "gate",
        "CI_JOB_URL": "https://gitlab.example/tria/deploy/-/jobs/99",
        "CI_PIPELINE_URL": "https://gitlab.example/tria/deploy/-/pipelines/12",
    }
    found = executor(env, "runner-1")
    assert {k: found[k] for k in ("name", "type", "buildOrder", "buildName", "buildUrl")} == {
        "name": "GitLab CI",
        "type": "gitlab",
        "buildOrder": 7,
        "buildName": "gate #7",
        "buildUrl": "https://gitlab.example/tria/deploy/-/jobs/99",
    }
    assert_no_secret({"executor.json": json.dumps(found)}, {"CI token": planted})


def test_properties_escape_what_the_format_needs() -> None:
    text = properties_text({"a key:x": "line 1\nline 2", "release": " café 🚀 a=b\\c"})
    assert text == ("a\\ key\\:x=line 1\\nline 2\nrelease=\\ caf\\u00e9 \\ud83d\\ude80 a=b\\\\c\n")


def rerun(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess("suites", *args, timeout=RUN_TIMEOUT)


def test_a_gate_on_the_local_target_describes_what_it_verified(pytester: pytest.Pytester) -> None:
    """A real gate run: the service's version and release come from its readiness answer."""
    from tria_service import __version__

    suite = copy_suites(pytester, "")
    sha = commit_suites(suite.path)

    result = rerun(suite, "-m", "preflight or health")

    assert result.ret == 0, result.stdout.str()[-3000:]
    allure_dir = suite.path / "reports" / "allure-results"
    environment = read_properties(allure_dir / "environment.properties")
    verdict = json.loads((suite.path / "reports" / "verdict.json").read_text())
    measured = {
        k: v
        for stage in verdict["targets"][0]["stages"]
        for test in stage["tests"]
        for k, v in test.get("properties", {}).items()
    }
    assert environment["target"] == environment["provider"] == "local"
    assert environment["service.version"] == __version__
    assert environment["service.release"] == measured["service.release"] != "unknown"
    assert environment["suites.git_sha"] == sha
    assert environment["tria_deploy.version"] == verdict["tool"]["version"]
    assert results(allure_dir)


def test_categories_sort_the_messages_of_real_broken_targets(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    deps: DependencyEndpoints,
    fresh_deps: FreshDeps,
    running_service: ServiceServer,
    service_env: Mapping[str, str],
) -> None:
    """The shipped suites against an external target with a short SECRET_KEY, a stopped Redis,
    a schema older than the suites expect and budgets no answer meets (gate off: every stage
    runs); then with the gate on, what Redis blocks. A secret of the target and a credential in
    a CI variable appear in no file the run writes."""
    suite = copy_suites(pytester, "")
    schema = suite.path / "suites" / "expected_schema.toml"
    schema.write_text(schema.read_text().replace("version = 4", "version = 5"))
    own = fresh_deps("redis")
    assert own.servers.redis is not None
    own.servers.redis.stop()
    planted = "planted-short-secret-7719"
    ci_token = "planted-ci-token-value-3390"
    external(
        suite, monkeypatch, deps, running_service, service_env,
        SECRET_KEY=planted, REDIS_URL=own.redis_url,
    )  # fmt: skip
    tiny = {"liveness_ms": 0.001, "readiness_ms": 0.001}  # under any real answer's latency
    suite.makefile(".toml", tria=external_target_toml("ext", "EXT_", tables={"budgets": tiny}))
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("CI_PROJECT_URL", f"https://ci:{ci_token}@gitlab.example/tria")
    allure_dir = suite.path / "reports" / "allure-results"

    stages = "environment or database or redis or health"
    off = rerun(suite, "--tria-target=ext", "--tria-gate=off", "-m", stages)
    first = {r["name"]: r for r in results(allure_dir)}
    written = {p.name: p.read_bytes() for p in allure_dir.iterdir()}
    written["junit.xml"] = (suite.path / "reports" / "junit.xml").read_bytes()
    on = rerun(suite, "--tria-target=ext", "-m", "redis or components")
    second = {r["name"]: r for r in results(allure_dir)}

    assert (off.ret, on.ret) == (1, 1), off.stdout.str()[-3000:]
    expected = {
        "test_secret_key_strength": MISCONFIGURED,
        "test_redis_connection": UNREACHABLE,
        "test_schema_version": PRODUCT,
        "test_health_endpoint": BUDGET,
        "test_readiness": BUDGET,
    }
    for name, category in expected.items():
        assert categories_of(first[name]) == [category], first[name].get("statusDetails")
    components = [r for r in second.values() if "components" in r["fullName"]]
    assert components
    for found in components:
        assert categories_of(found) == [BLOCKED], found.get("statusDetails")
    for found in [*first.values(), *second.values()]:
        if found["status"] in ("failed", "skipped") or found.get("statusDetails"):
            assert len(categories_of(found)) <= 1, found["statusDetails"]
        if found["status"] == "failed":
            assert len(categories_of(found)) == 1, found["statusDetails"]
    executor_file = json.loads(written["executor.json"])
    assert executor_file["type"] == "gitlab"
    assert executor_file["url"] == "https://ci:***@gitlab.example/tria"
    assert_no_secret(
        dict(written),
        {"the target's SECRET_KEY": planted, "the CI variable's token": ci_token},
    )
