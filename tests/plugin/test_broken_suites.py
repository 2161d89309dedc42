"""A suite that cannot be checked never reads as a pass, and never leaves an old verdict behind."""

from __future__ import annotations

import json

import pytest

from tests.plugin.conftest import read_verdict

SYNTAX_ERROR = "def test_db_connects(:\n    pass\n"


def _plant_stale_verdict(suite: pytest.Pytester) -> None:
    (suite.path / "reports").mkdir()
    stale = {"verdict": "PASS", "exit_code": 0}
    (suite.path / "reports" / "verdict.json").write_text(json.dumps(stale))


def test_deselecting_everything_leaves_no_stale_verdict(suite: pytest.Pytester) -> None:
    _plant_stale_verdict(suite)
    result = suite.runpytest("-k", "nothing_matches_this")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert not (suite.path / "reports" / "verdict.json").exists()
    assert "VERDICT" not in result.stdout.str()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["inline", "xdist"])
def test_collection_error_blocks_the_verdict(suite: pytest.Pytester, xdist: list[str]) -> None:
    _plant_stale_verdict(suite)
    suite.makepyfile(test_03_database=SYNTAX_ERROR)
    result = suite.runpytest(*xdist)
    assert result.ret != 0
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "BLOCKED"
    assert verdict["reason"].startswith("suite did not collect: test_03_database.py: ")
    assert "SyntaxError" in verdict["reason"]
    assert verdict["exit_code"] == result.ret
    result.stdout.fnmatch_lines(["VERDICT: BLOCKED - suite did not collect: test_03_database.py*"])


def test_collection_error_blocks_even_when_the_rest_runs(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_03_database="import not_a_module_anywhere\n")
    result = suite.runpytest("--continue-on-collection-errors")
    result.assert_outcomes(passed=7, errors=1)
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "BLOCKED"
    assert "No module named 'not_a_module_anywhere'" in verdict["reason"]
    assert verdict["exit_code"] == result.ret == 1


def test_interrupted_run_is_blocked(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_04_redis="import pytest\n\ndef test_redis_ping():\n    pytest.exit('stop')\n"
    )
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "BLOCKED"
    assert verdict["reason"] == (
        "the run was interrupted before test_04_redis.py::test_redis_ping finished"
    )
    assert verdict["exit_code"] == result.ret


def test_nothing_verified_is_a_warning(suite: pytest.Pytester) -> None:
    for name in ("test_01_preflight", "test_02_environment", "test_03_database"):
        suite.makepyfile(**{name: "import pytest\n\ndef test_x():\n    pytest.skip('no creds')\n"})
    for name in ("test_04_redis", "test_05_external", "test_06_components", "test_07_health"):
        (suite.path / f"{name}.py").unlink()
    (suite.path / "test_08_smoke.py").unlink()
    result = suite.runpytest()
    result.assert_outcomes(skipped=3)
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "WARN"
    assert verdict["reason"].startswith("nothing was verified")
    assert verdict["exit_code"] == result.ret == 0
    strict = suite.runpytest("--tria-gate=strict")
    assert read_verdict(suite)["exit_code"] == strict.ret == 1


def test_long_first_error_lines_are_capped(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_03_database="def test_db_connects():\n    assert 0, 'x' * 500\n")
    suite.runpytest()
    reason = read_verdict(suite)["reason"]
    assert reason.startswith("database failed: test_03_database.py::test_db_connects: ")
    assert len(reason) <= 200
    assert reason.endswith("…")
