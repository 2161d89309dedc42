"""verdict.json's content, the terminal stage table, and the exit code of each verdict."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.plugin.conftest import commit_suites, read_verdict

WARN_REDIS = "def test_redis_ping(tria_warn):\n    tria_warn('p99 over budget')\n"
FAIL_REDIS = "def test_redis_ping():\n    assert 0\n"
BLOCK_REDIS = "def test_redis_ping(tria_endpoints):\n    pass\n"


@pytest.mark.parametrize(
    ("redis_module", "args", "verdict", "code"),
    [
        (None, [], "PASS", 0),
        (WARN_REDIS, [], "WARN", 0),
        (WARN_REDIS, ["--tria-gate=strict"], "FAIL", 1),
        (FAIL_REDIS, [], "FAIL", 1),
        (BLOCK_REDIS, [], "BLOCKED", 1),
    ],
    ids=["pass", "warn", "strict-warn", "fail", "blocked"],
)
def test_exit_code_follows_the_verdict(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    redis_module: str | None,
    args: list[str],
    verdict: str,
    code: int,
) -> None:
    if verdict == "BLOCKED":  # the local provider cannot start: its PostgreSQL is missing
        monkeypatch.setenv("TRIA_PG_BINDIR", str(suite.path / "no-such-bindir"))
    if redis_module is not None:
        suite.makepyfile(test_04_redis=redis_module)
    result = suite.runpytest(*args)
    assert read_verdict(suite)["verdict"] == verdict
    assert read_verdict(suite)["exit_code"] == code
    assert result.ret == code
    result.stdout.fnmatch_lines([f"VERDICT: {verdict}*"])


def test_verdict_json_contents(suite: pytest.Pytester) -> None:
    sha = commit_suites(suite.path)
    suite.runpytest("--tria-report-dir=out")
    verdict = read_verdict(suite, "out")
    assert verdict["target"] == "local"
    assert verdict["provider"] == "local"
    assert verdict["gate"] == "normal"
    assert verdict["tool"]["name"] == "tria-deploy"
    assert verdict["tool"]["version"][0].isdigit()
    assert verdict["suites_git_sha"] == sha
    started = datetime.fromisoformat(verdict["started"])
    finished = datetime.fromisoformat(verdict["finished"])
    assert started <= finished
    stages = verdict["targets"][0]["stages"]
    assert [s["name"] for s in stages][:3] == ["preflight", "environment", "database"]
    database = stages[2]
    assert database["critical"] is True
    assert database["passed"] == 2
    assert [t["nodeid"] for t in database["tests"]] == [
        "test_03_database.py::test_db_connects",
        "test_03_database.py::test_db_schema",
    ]
    assert all(t["outcome"] == "passed" and t["duration"] >= 0 for t in database["tests"])


def test_terminal_table(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_04_redis=FAIL_REDIS)
    result = suite.runpytest()
    result.stdout.fnmatch_lines(
        [
            "*= tria-deploy: local (local) =*",
            "stage * passed * failed * skipped * blocked * duration * status",
            "preflight * 1 * 0 * 0 * 0 * *s * PASS",
            "database * 2 * 0 * 0 * 0 * *s * PASS",
            "redis * 0 * 1 * 0 * 0 * *s * FAIL",
            "components * 0 * 0 * 0 * 1 * *s * BLOCKED",
            "VERDICT: FAIL - redis failed: test_04_redis.py::test_redis_ping: assert 0",
            "verdict written to */reports/verdict.json",
        ]
    )


def test_no_staged_tests_no_verdict(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", tria="")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports" / "verdict.json").exists()
    assert "VERDICT" not in result.stdout.str()
