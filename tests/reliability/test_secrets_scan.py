"""Secrets scan: a whole gate run with every output on leaves no planted secret in any byte.

Route: the local provider draws its own secrets (``LocalStack``, ``start_postgres``) and takes
none from outside, so the canaries cannot be planted through it without changing provider code.
The test starts the same processes itself with canary secrets (``secrets_stack.plant``: the
stand-in and Redis take the canary key and password, PostgreSQL gets a role whose password is a
canary, the service runs with the canary SECRET_KEY and diagnostics token) and points the gate at
them as two external targets in a ``tria.toml`` of ``${VAR}``s: ``canary`` (all right, every stage
runs) and ``wrong`` (protected, wrong database password and OpenAI key, canaries too), so the
failure paths (refused credentials, tracebacks with ``-l`` locals) are scanned as well. A check of
a team's own (``USER_CHECK``) whose fixture fails quoting DATABASE_URL is added to the copy:
allure-pytest words that failure from the raw exception, past the engine's report scrubbing, so
Allure's results need ``report/allure_scrub.py`` registered for the run.

Scanned: every file under the pytester dir (reports/ with Allure results and attachments, JUnit,
verdict, baselines; logs/; the cache; pytester's copies of stdout and stderr), the run's stdout and
stderr, and the service's log after it has shut down (and the dependencies' logs).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attr
import pytest
from allure_commons import model2 as allure_model

from pytest_tria_deploy.redact import close_scope, open_scope, register_secrets
from pytest_tria_deploy.report.allure_scrub import AllureScrubber
from pytest_tria_deploy.stages import BUILTIN_STAGES
from tests.plugin.conftest import read_verdict
from tests.reliability.secrets_canaries import (
    make_canary,
    mask,
    occurrences,
    scan_tree,
)
from tests.reliability.secrets_stack import TRIA_TOML, Canaries, PlantedStack, plant
from tests.suites.helpers import copy_suites, stages

RUN_TIMEOUT_S = 600
RUN_ARGS = (
    "suites",
    "--tria-target=canary",
    "--tria-target=wrong",
    "--alluredir=reports/allure-results",
    "--junitxml=reports/junit.xml",
    "-o",
    "junit_family=xunit1",
    "-o",
    "junit_logging=all",
    "-o",
    "log_cli=true",
    "--log-cli-level=DEBUG",
    "-rA",
    "-vv",
    "-l",
    "--log-file=logs/run.log",
    "--log-file-level=DEBUG",
    "--log-level=DEBUG",
)
# A check of the kind a team adds to the shipped suites: its fixture's failure quotes
# DATABASE_URL, so on ``wrong`` the exception itself carries a canary. Scanned: what the terminal,
# JUnit and Allure (the test's result and the fixture's container) make of it.
USER_CHECK = '''
import asyncpg
import pytest


@pytest.fixture
async def logged_in(tria_endpoints):
    url = tria_endpoints.database_url.get_secret_value()
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except asyncpg.InvalidPasswordError as exc:
        raise RuntimeError(f"PostgreSQL refused {url}: {exc}") from exc
    yield conn
    await conn.close()


async def test_database_url_logs_in(logged_in):
    """DATABASE_URL's own credentials log in."""
    assert await logged_in.fetchval("SELECT 1") == 1
'''
STAGES = tuple(stage.name for stage in BUILTIN_STAGES)
# What the ``wrong`` target must show: its failures really ran, and blocked what depends on them.
WRONG_TARGET = {
    "preflight": "PASS",
    "environment": "PASS",
    "database": "FAIL",
    "redis": "PASS",
    "external": "FAIL",
    "components": "BLOCKED",
    "health": "BLOCKED",
    "smoke": "BLOCKED",
}
ALLURE_FAILED = ("failed", "broken")
# A local variable in a traceback under -l: "name = value" at the start of a line.
LOCALS = re.compile(r"^[a-z_]\w*\s+= \S", re.MULTILINE)
# The canaries the service runs with, all written in its env file.
SERVICE_CANARIES = (
    "openai_api_key",
    "database_password",
    "redis_password",
    "diagnostics_token",
    "secret_key",
)


@pytest.fixture
def canaries() -> Canaries:
    return Canaries.fresh()


@pytest.fixture
def planted(
    tmp_path: Path, canaries: Canaries, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PlantedStack]:
    """The canary stack, its variables exported for the tria.toml; outside the pytester dir."""
    stack = plant(tmp_path / "stack", canaries)
    for name, value in stack.variables.items():
        monkeypatch.setenv(name, value)
    yield stack
    stack.stop()


def non_empty(root: Path, pattern: str) -> list[Path]:
    """Files under ``root`` matching ``pattern``; asserts there is one and none is empty."""
    found = sorted(root.glob(pattern))
    assert found, f"no {pattern} under {root}"
    assert all(path.stat().st_size > 0 for path in found), [str(p) for p in found]
    return found


def missing(texts: dict[str, str], wanted: dict[str, list[str]]) -> list[str]:
    """Which expected phrases a text lacks, as "where: phrase" (never the text itself)."""
    return [
        f"{where}: {phrase}"
        for where, phrases in wanted.items()
        for phrase in phrases
        if phrase not in texts[where]
    ]


def allure_results(results_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in non_empty(results_dir, "*-result.json")
    ]


def test_a_whole_gate_run_leaves_no_canary_in_any_output(
    pytester: pytest.Pytester,
    planted: PlantedStack,
    canaries: Canaries,
    capsys: pytest.CaptureFixture[str],
) -> None:
    suite = copy_suites(pytester, TRIA_TOML)
    (suite.path / "suites" / "test_21_database.py").write_text(USER_CHECK, encoding="utf-8")
    started = time.monotonic()
    result = suite.runpytest_subprocess(*RUN_ARGS, timeout=RUN_TIMEOUT_S)
    elapsed = time.monotonic() - started
    capsys.readouterr()  # pytester echoes the run: never show it unscanned in this test's report
    planted.service.stop(timeout=30.0)  # its shutdown lines are scanned too
    stdout, stderr = "\n".join(result.outlines), "\n".join(result.errlines)

    reports, logs = suite.path / "reports", suite.path / "logs"

    findings, files = scan_tree(suite.path, canaries)
    findings += occurrences(stdout.encode(), "terminal (stdout)", canaries)
    findings += occurrences(stderr.encode(), "terminal (stderr)", canaries)
    for log in planted.logs():
        findings += occurrences(log.read_bytes(), log.name, canaries)
    assert not findings, "canaries leaked:\n" + "\n".join(map(str, findings))

    # Not vacuous: every stage ran on ``canary``, the failure paths ran on ``wrong``...
    verdict = read_verdict(suite)
    table = {target: stages(verdict, target) for target in ("canary", "wrong")}
    shown = mask(
        json.dumps({t: {s: v["status"] for s, v in st.items()} for t, st in table.items()}),
        canaries,
    )
    assert (verdict["verdict"], result.ret) == ("FAIL", 1), shown
    ran = {
        name: (table["canary"][name]["status"], table["canary"][name]["passed"]) for name in STAGES
    }
    assert all(status in ("PASS", "WARN") and passed > 0 for status, passed in ran.values()), ran
    assert {name: table["wrong"][name]["status"] for name in STAGES} == WRONG_TARGET, shown
    # ...with the failures, locals and logs on the terminal and in every report...
    assert not missing(
        {
            "database reason": table["wrong"]["database"]["reason"],
            "external reason": table["wrong"]["external"]["reason"],
            "stdout": stdout,
            "run.log": non_empty(logs, "run.log")[0].read_text(encoding="utf-8"),
            "junit.xml": (reports / "junit.xml").read_text(encoding="utf-8"),
            "service log": planted.service_log.read_text(encoding="utf-8"),
        },
        {
            "database reason": ["refused the credentials"],
            "external reason": ["answered 401"],
            "stdout": ["InvalidPasswordError", "answered 401", "Captured log", "VERDICT: FAIL"],
            "run.log": ["DEBUG"],
            "junit.xml": ["<failure", "<error", "<property", "<system-out"],
            "service log": ["POST /api/v1/chat", "/api/v1/health/diagnostics", "shutdown_complete"],
        },
    )
    assert LOCALS.search(stdout), "no locals (-l) in any traceback"
    for pattern in ("verdict.json", "baselines.json", "allure-results/*-attachment.*"):
        non_empty(reports, pattern)
    results = allure_results(reports / "allure-results")
    traces = [r["statusDetails"].get("trace") for r in results if r["status"] in ALLURE_FAILED]
    assert traces, "no failed test reached Allure"
    assert all(traces), "a failure's trace is missing from Allure"
    assert len(files) > 20
    assert planted.service_log in planted.logs()
    assert len(stdout) > 10_000
    # ...and the scan can see the canaries: the env file the service runs with holds each one.
    seen = {f.name for f in occurrences(planted.env_file.read_bytes(), "env file", canaries)}
    assert seen == set(SERVICE_CANARIES)
    print(f"gate run {elapsed:.1f}s; scanned {len(files)} files, {len(stdout)} chars of stdout")


def test_the_scan_finds_every_form_of_a_canary_and_names_none() -> None:
    """The scanner's own check: a leak in any form is found, and the finding never holds it."""
    canary = make_canary("database_password", "PG", "!")
    other = make_canary("secret_key", "SK")
    value = canary.value
    forms = set(canary.forms())
    leaks = {
        "plain": f"connecting as tria:{value}@db".encode(),
        "url-encoded": f"postgresql://tria:{value.replace('!', '%21')}@db/tria".encode(),
        "first half": f"password={value[:30]}... (truncated)".encode(),
        "second half": f"***{value[len(value) // 2 :]}".encode(),
    }
    for offset, prefix in enumerate((b"", b"u", b"ab")):
        leaks[f"base64 (offset {offset})"] = b"Basic " + base64.b64encode(prefix + value.encode())
    for expected, data in leaks.items():
        found = list(occurrences(data, "blob", [canary, other]))
        assert expected in {f.form for f in found}, (expected, [str(f) for f in found])
        assert {f.name for f in found} == {"database_password"}
        assert all(value not in str(f) and value not in repr(f) for f in found)
    plain = next(
        f for f in occurrences(leaks["plain"].upper(), "blob", [canary]) if f.form == "plain"
    )
    assert str(plain) == "blob: database_password (plain) x1"
    assert {"plain", "url-encoded", "first half", "second half"} <= forms
    assert list(occurrences(b"nothing planted here " * 100, "blob", [canary, other])) == []
    assert value.upper() not in mask(f"x {value.upper()} y", [canary])
    assert value not in repr(canary)


def test_allure_results_are_redacted_before_they_are_written() -> None:
    """allure-pytest words a failure from the raw exception; the scrubber masks it in place."""
    canary = make_canary("database_password", "PG", "!")
    url = f"postgresql://tria:{quote(canary.value, safe='')}@127.0.0.1:5/tria"
    failure = allure_model.StatusDetails(
        message=f"RuntimeError: PostgreSQL refused {url}", trace="..."
    )
    result = allure_model.TestResult(name="t", status="broken", statusDetails=failure)
    container = allure_model.TestResultContainer(
        befores=[
            allure_model.TestBeforeResult(
                name="logged_in", statusDetails=allure_model.StatusDetails(message=url)
            )
        ]
    )
    scope = open_scope()
    try:
        register_secrets([url])
        scrubber = AllureScrubber()
        scrubber.report_result(result)
        scrubber.report_container(container)
    finally:
        close_scope(scope)
    written = json.dumps([attr.asdict(result), attr.asdict(container)]).encode()
    assert list(occurrences(written, "allure results", [canary])) == []
    assert "PostgreSQL refused postgresql://tria:***@127.0.0.1:5/tria" in written.decode()
