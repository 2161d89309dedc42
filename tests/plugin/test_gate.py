"""Gating: a failed critical stage blocks its dependents (with the reason), other branches run."""

from __future__ import annotations

import pytest

from tests.plugin.conftest import read_verdict, stage_of


def test_failure_blocks_dependents_with_reason(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_03_database="""
        def test_db_connects():
            raise ConnectionRefusedError("connection refused at 127.0.0.1:6543\\nsecond line")

        def test_db_schema():
            pass
        """
    )
    result = suite.runpytest("-rs")
    result.assert_outcomes(passed=5, failed=1, skipped=3)
    reason = (
        "blocked: database failed: test_03_database.py::test_db_connects: "
        "ConnectionRefusedError: connection refused at 127.0.0.1:6543"
    )
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED [[]1[]] test_06_components.py:1: {reason}",
            f"SKIPPED [[]1[]] test_07_health.py:1: {reason}",
            f"SKIPPED [[]1[]] test_08_smoke.py:1: {reason}",
        ]
    )
    assert "second line" not in "\n".join(line for line in result.outlines if "blocked:" in line)
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "FAIL"
    assert verdict["reason"].startswith("database failed: test_03_database.py::test_db_connects")
    assert stage_of(verdict, "database")["status"] == "FAIL"
    assert stage_of(verdict, "database")["passed"] == 1  # the rest of the stage still ran
    for blocked in ("components", "health", "smoke"):
        stage = stage_of(verdict, blocked)
        assert stage["status"] == "BLOCKED"
        assert stage["tests"][0]["outcome"] == "blocked"
        assert stage["tests"][0]["reason"] == reason
    for independent in ("redis", "external"):
        assert stage_of(verdict, independent)["status"] == "PASS"
    assert result.ret == 1


def test_failed_fixture_setup_counts_as_stage_failure(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_04_redis="""
        import pytest

        @pytest.fixture
        def broken():
            raise TimeoutError("redis timed out after 5.0s")

        def test_redis_ping(broken):
            pass
        """
    )
    result = suite.runpytest("-rs")
    result.assert_outcomes(passed=5, errors=1, skipped=3)
    result.stdout.fnmatch_lines(
        ["*test_06_components.py:1: blocked: redis failed: *test_redis_ping: TimeoutError: redis*"]
    )
    verdict = read_verdict(suite)
    redis = stage_of(verdict, "redis")
    assert redis["status"] == "FAIL"
    assert redis["tests"][0]["outcome"] == "error"
    assert stage_of(verdict, "database")["status"] == "PASS"


def test_early_failure_blocks_everything_after_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_01_preflight="def test_runner_ready():\n    assert 0, 'no tools'\n")
    result = suite.runpytest()
    result.assert_outcomes(failed=1, skipped=8)
    verdict = read_verdict(suite)
    assert [s["status"] for s in verdict["targets"][0]["stages"]] == ["FAIL"] + ["BLOCKED"] * 7


def test_non_critical_stage_failure_is_a_warning(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", tria="[stages.external]\ncritical = false\n")
    suite.makepyfile(test_05_external="def test_openai_models():\n    assert 0, 'no model'\n")
    result = suite.runpytest()
    result.assert_outcomes(passed=8, failed=1)
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "WARN"
    assert stage_of(verdict, "external")["status"] == "WARN"
    assert stage_of(verdict, "components")["status"] == "PASS"
    assert result.ret == 0
    result.stdout.fnmatch_lines(["VERDICT: WARN - external failed: *test_openai_models*no model*"])


WARNING_SUITE = """
def test_redis_ping(tria_warn, tria_record):
    tria_record("redis_p99_ms", 7.5, "ms")
    tria_warn("redis p99 7.5ms over the 5ms budget")
"""


def test_recorded_warning_makes_the_verdict_warn(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_04_redis=WARNING_SUITE)
    result = suite.runpytest("--junitxml=junit.xml")
    result.assert_outcomes(passed=9)
    assert result.ret == 0
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "WARN"
    test = stage_of(verdict, "redis")["tests"][0]
    assert test["warnings"] == ["redis p99 7.5ms over the 5ms budget"]
    assert test["properties"] == {"redis_p99_ms": 7.5, "redis_p99_ms.unit": "ms"}
    junit = (suite.path / "junit.xml").read_text()
    assert '<property name="redis_p99_ms" value="7.5" />' in junit
    assert '<property name="tria_stage" value="redis" />' in junit
    assert '<property name="tria_target" value="local" />' in junit


def test_strict_gate_turns_a_warning_into_a_failure(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_04_redis=WARNING_SUITE)
    result = suite.runpytest("--tria-gate=strict", "-rs")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*blocked: redis failed: *test_redis_ping: warning: redis p99*"])
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "FAIL"
    assert verdict["exit_code"] == 1


def test_gate_off_reports_without_blocking(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_03_database="def test_db_connects():\n    assert 0\n")
    result = suite.runpytest()
    result.assert_outcomes(passed=4, failed=1, skipped=3)
    suite.makeini("[pytest]\ntria_gate = off\n")
    result = suite.runpytest()
    result.assert_outcomes(passed=7, failed=1)
    assert read_verdict(suite)["verdict"] == "FAIL"
    assert read_verdict(suite)["exit_code"] == result.ret == 1


def test_gate_off_exit_code_agrees_with_the_verdict(suite: pytest.Pytester) -> None:
    """A non-critical failure is a WARN: exit 0 under off too, and verdict.json says so."""
    suite.makefile(".toml", tria="[stages.external]\ncritical = false\n")
    suite.makepyfile(test_05_external="def test_openai_models():\n    assert 0\n")
    result = suite.runpytest("--tria-gate=off")
    result.assert_outcomes(passed=8, failed=1)
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "WARN"
    assert verdict["exit_code"] == result.ret == 0


def test_unstaged_failure_still_fails_the_run(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_misc="def test_helper():\n    assert 0\n")
    result = suite.runpytest()
    assert read_verdict(suite)["verdict"] == "PASS"
    assert result.ret == 1


def test_targets_have_separate_gates(suite: pytest.Pytester) -> None:
    suite.makefile(
        ".toml",
        tria="[targets.eu]\nprovider = 'local'\n[targets.us]\nprovider = 'local'\n",
    )
    suite.makepyfile(
        test_03_database="""
        def test_db_connects(tria_target):
            assert tria_target.name != "eu", "eu database down"

        def test_db_schema():
            pass
        """
    )
    result = suite.runpytest("--tria-target=eu", "--tria-target=us", "-v")
    result.assert_outcomes(passed=14, failed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "test_06_components.py::test_components[[]eu[]] SKIPPED*",
            "test_06_components.py::test_components[[]us[]] PASSED*",
        ],
        consecutive=False,
    )
    verdict = read_verdict(suite)
    assert [t["verdict"] for t in verdict["targets"]] == ["FAIL", "PASS"]
    assert verdict["reason"].startswith("eu: database failed: ")


def test_target_critical_dependencies_decide_which_stages_block(suite: pytest.Pytester) -> None:
    suite.makefile(
        ".toml",
        tria="[targets.edge]\nprovider = 'local'\ncritical = ['database', 'openai', 'chroma']\n",
    )
    suite.makepyfile(test_04_redis="def test_redis_ping():\n    assert 0, 'no redis'\n")
    result = suite.runpytest("--tria-target=edge")
    result.assert_outcomes(passed=8, failed=1)
    result.stdout.fnmatch_lines(["redis (non-critical) * 0 * 1 * WARN"])
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "WARN"
    assert stage_of(verdict, "redis")["critical"] is False
    assert stage_of(verdict, "database")["critical"] is True
    assert stage_of(verdict, "components")["status"] == "PASS"
    assert verdict["exit_code"] == result.ret == 0
