"""``tria-deploy verify``: the gate through the real console script, its progress and exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import GateRun, clean_env, copy_suites, tria_deploy
from tests.suites.helpers import stages

STAGE_LINE = re.compile(r"^stage (\w+): (\d+)(?:/(\d+))? done \((.*)\) in \d+\.\d\ds$", re.M)


def _stage_lines(output: str) -> dict[str, tuple[int, int | None, str]]:
    """The plain progress lines: stage → (done, total or None, counts text)."""
    return {
        name: (int(done), int(total) if total else None, counts)
        for name, done, total, counts in STAGE_LINE.findall(output)
    }


def _why(result: GateRun) -> str:
    return result.result.stdout[-4000:] + result.result.stderr[-2000:]


def test_verify_runs_the_gate_with_a_plain_line_per_stage(full_run: GateRun) -> None:
    out = full_run.result.stdout
    assert full_run.result.returncode == 0, _why(full_run)
    verdict = full_run.verdict
    assert verdict["verdict"] in ("PASS", "WARN")  # a latency budget may warn on a busy machine
    assert verdict["exit_code"] == 0
    by_stage = stages(verdict)
    assert all(s["status"] in ("PASS", "WARN") for s in by_stage.values()), by_stage
    lines = _stage_lines(out)
    assert list(lines) == list(by_stage), out  # every stage, in stage order
    for name, (done, total, counts) in lines.items():
        stage = by_stage[name]
        ran = stage["passed"] + stage["failed"] + stage["skipped"] + stage["blocked"]
        assert (done, total) == (ran, ran), name
        assert f"{stage['passed']} passed" in counts
    assert "tria-deploy: target local (provider local" in out  # the plugin's header, kept
    assert f"VERDICT: {verdict['verdict']}" in out  # pytest's summary, kept
    assert "\x1b" not in out  # not a terminal: no control characters
    assert not re.search(r"^[.sFE]+$", out, re.M)  # pytest's letters are not shown twice


def test_a_selected_stage_runs_with_the_stages_before_it(database_run: GateRun) -> None:
    assert database_run.result.returncode == 0, _why(database_run)
    lines = _stage_lines(database_run.result.stdout)
    assert list(lines) == ["preflight", "environment", "database"]
    assert list(stages(database_run.verdict)) == ["preflight", "environment", "database"]


def test_arguments_after_the_separator_go_to_pytest(gate_dir: Path) -> None:
    result = tria_deploy("verify", "--", "--collect-only", cwd=gate_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "suites/test_20_database.py::" in result.stdout
    assert not _stage_lines(result.stdout)  # nothing ran


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--gate", "bogus"], "'--gate'"),
        (["--stage", "databse"], "unknown stage 'databse'"),  # the plugin's check
        (["--target", "nowhere"], "unknown target 'nowhere'"),  # the plugin's check
        (["--suites", "missing"], "'--suites'"),
        (["--config", "missing.toml"], "'--config'"),
        (["-n", "0"], "'-n' / '--workers'"),
        (["--no-deps"], "--no-deps needs --stage"),
        (["--bogus"], "No such option"),
    ],
)
def test_a_bad_option_is_a_usage_error(tmp_path: Path, args: list[str], expected: str) -> None:
    # The last run's verdict: a run that went ahead would remove it before its tests, and a
    # verdict of this run would replace it.
    last = tmp_path / "reports" / "verdict.json"
    last.parent.mkdir()
    last.write_text('{"verdict": "PASS", "from": "the last run"}')
    result = tria_deploy("verify", *args, cwd=copy_suites(tmp_path), timeout=120)
    assert result.returncode == 4, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr
    assert json.loads(last.read_text())["from"] == "the last run"  # refused before any test ran
    assert "VERDICT" not in result.stdout


def test_a_test_path_after_the_separator_narrows_the_run(failing_suite: Path) -> None:
    """Only the redis module runs: the failing database stage is not run, so the gate passes."""
    result = tria_deploy("verify", "--", "suites/test_04_redis.py", cwd=failing_suite)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(_stage_lines(result.stdout)) == ["redis"]
    verdict = json.loads((failing_suite / "reports" / "verdict.json").read_text())
    ran = {name: stage["passed"] + stage["failed"] for name, stage in stages(verdict).items()}
    assert {name: n for name, n in ran.items() if n} == {"redis": 1}


def test_an_option_value_after_the_separator_is_no_test_path(failing_suite: Path) -> None:
    """``-k redis``: "redis" is -k's value, so the suites are still searched, and only they (a
    run without a path would search the whole directory and find the decoy)."""
    (failing_suite / "test_redis_decoy.py").write_text("def test_redis_decoy():\n    pass\n")
    result = tria_deploy("verify", "--", "--collect-only", "-k", "redis", cwd=failing_suite)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "suites/test_04_redis.py::test_redis_ping" in result.stdout
    assert "decoy" not in result.stdout


def test_ci_variables_of_the_outer_run_do_not_reach_the_gate(
    failing_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under GitHub Actions the tests' gate runs must not append to the real job summary, nor
    describe the real CI run in executor.json (the helpers drop those variables)."""
    summary = tmp_path / "job-summary.md"
    summary.touch()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/outer-run")
    result = tria_deploy("verify", cwd=failing_suite, timeout=120)
    assert "VERDICT: FAIL" in result.stdout, result.stdout + result.stderr
    assert summary.read_text() == ""
    executor = failing_suite / "reports" / "allure-results" / "executor.json"
    assert executor.is_file()
    assert "acme/outer-run" not in executor.read_text()
    # and the check can fail: given on purpose, the variable is used
    tria_deploy("verify", cwd=failing_suite, env=clean_env({"GITHUB_STEP_SUMMARY": str(summary)}))
    assert "tria-deploy: FAIL on local" in summary.read_text()
