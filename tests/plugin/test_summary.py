"""summary.md and GitHub's job summary: the headline, the stage table, failures, blocked stages,
and each budget against what was measured; escaped Markdown; no secret."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_tria_deploy.baselines import update_baseline
from pytest_tria_deploy.helpers import Latency
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.report.allure_files import ENVIRONMENT_FILE, write_extras
from pytest_tria_deploy.report.summary import cell, write_summary
from pytest_tria_deploy.report.writing import write_atomic
from tests.plugin.conftest import QUIET_INI
from tests.reliability.secrets_canaries import assert_no_secret

FAIL_REDIS = "def test_redis_ping():\n    assert 1 == 2, 'PING went unanswered'\n"
OVER_BUDGET = """
from pytest_tria_deploy.helpers import warn_over_budget

def test_readiness(tria_budget, tria_record, tria_warn):
    warn_over_budget(
        tria_warn, "readiness | via the balancer", "readiness_ms", tria_budget.readiness_ms,
        1500.0, record=tria_record,
    )
    warn_over_budget(
        tria_warn, "liveness\\nfrom the gate host", "liveness_ms", tria_budget.liveness_ms, 12.34,
        record=tria_record,
    )
"""
TOKEN = "summary-canary-9c41e7b2"
DB_PASSWORD = "summary-dbpw-5a0f3d68"
PLANTED_TARGET = """
[targets.staging]
service_url = "http://127.0.0.1:9"
database_url = "postgresql://tria:${PLANTED_DB_PASSWORD}@127.0.0.1:9/tria"
redis_url = "redis://127.0.0.1:9"
openai_api_key = "k"
chroma_url = "http://127.0.0.1:9"
diagnostics_token = "${PLANTED_TOKEN}"

[targets.staging.budgets]
readiness_ms = 5
"""
LEAKY_SUITE = """
from pytest_tria_deploy.helpers import warn_over_budget

def test_readiness(tria_target, tria_budget, tria_record, tria_warn):
    token = tria_target.diagnostics_token.get_secret_value()
    dsn = tria_target.database_url.get_secret_value()
    tria_record("leaked_token", token, "")
    tria_warn(f"diagnostics answered with {token}")
    warn_over_budget(
        tria_warn, f"readiness with {token}", "readiness_ms", tria_budget.readiness_ms, 9.0,
        record=tria_record,
    )
    assert token == dsn, f"{token} | {dsn}"
"""


def summary_of(pytester: pytest.Pytester, report_dir: str = "reports") -> str:
    return Path(pytester.path, report_dir, "summary.md").read_text(encoding="utf-8")


def test_passing_run(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--tria-report-dir=out")
    assert result.ret == 0
    lines = summary_of(suite, "out").splitlines()
    pytest.LineMatcher(lines).fnmatch_lines(
        [
            "# ✅ tria-deploy: PASS on local",
            "| verdict | PASS (exit code 0) |",
            "| reason | all checks passed |",
            "| target | local (local) |",
            "| gate | normal |",
            "| duration | *.* s |",
            "## ✅ local: PASS",
            "| stage | status | passed | failed | skipped | blocked | duration |",
            "| preflight | PASS | 1 | 0 | 0 | 0 | *.* s |",
            "| database | PASS | 2 | 0 | 0 | 0 | *.* s |",
            "| smoke | PASS | 1 | 0 | 0 | 0 | *.* s |",
            "### Budgets",
            "No budget was checked in this run.",
            "Not checked in this run: readiness_ms 1000 ms, liveness_ms 250 ms, *startup_s 60 s*",
        ]
    )
    assert "### Failures" not in lines
    assert "### Blocked stages" not in lines


def test_failure_and_the_stages_it_blocks(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_04_redis=FAIL_REDIS)
    result = suite.runpytest("--tria-gate=strict")
    assert result.ret == 1
    pytest.LineMatcher(summary_of(suite).splitlines()).fnmatch_lines(
        [
            "# ❌ tria-deploy: FAIL on local",
            "| verdict | FAIL (exit code 1) |",
            "| reason | redis failed: test_04_redis.py::test_redis_ping: *PING went*",
            "| gate | strict |",
            "| redis | FAIL | 0 | 1 | 0 | 0 | *.* s |",
            "| components | BLOCKED | 0 | 0 | 0 | 1 | *.* s |",
            "| smoke | BLOCKED | 0 | 0 | 0 | 1 | *.* s |",
            "### Failures",
            "- **redis** test_04_redis.py::test_redis_ping (failed): *PING went unanswered*",
            "### Blocked stages",
            "- **components** (1 test not run): blocked: redis failed: test_04_redis.py::*",
            "- **health** (1 test not run): blocked: redis failed: *",
        ]
    )


def test_budget_over_and_within_with_escaped_cells(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_07_health=OVER_BUDGET)
    result = suite.runpytest()
    assert result.ret == 0
    pytest.LineMatcher(summary_of(suite).splitlines()).fnmatch_lines(
        [
            "# ⚠️ tria-deploy: WARN on local",
            "| health | WARN | 1 | 0 | 0 | 0 | *.* s |",
            "### Warnings",
            "- **health** test_07_health.py::test_readiness: readiness \\| via the balancer is "
            "over the readiness_ms budget: budget 1000 ms, measured 1500.0 ms",
            "### Budgets",
            "| budget | check | measured | limit | result | test |",
            "| readiness_ms | readiness \\| via the balancer | 1500.0 ms | 1000 ms | over "
            "| test_07_health.py::test_readiness |",
            "| liveness_ms | liveness<br>from the gate host | 12.3 ms | 250 ms | OK "
            "| test_07_health.py::test_readiness |",
            "Not checked in this run: redis_p99_ms 50 ms, *",
        ]
    )
    text = summary_of(suite)
    assert "readiness_ms 1000 ms" not in text.split("Not checked in this run:")[1]


def test_step_summary_is_appended(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    step_summary = suite.path / "step_summary.md"
    step_summary.write_text("## earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    suite.runpytest()
    first = summary_of(suite)
    suite.makepyfile(test_04_redis=FAIL_REDIS)
    suite.runpytest()
    second = summary_of(suite)
    assert first != second
    assert step_summary.read_text(encoding="utf-8") == f"## earlier step\n\n{first}\n{second}"


def test_no_step_summary_outside_actions(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    suite.runpytest()
    assert sorted(p.name for p in suite.path.iterdir() if p.suffix == ".md") == []
    assert summary_of(suite).startswith("# ✅ tria-deploy: PASS on local")


def test_unwritable_file_is_reported_and_the_verdict_stands(suite: pytest.Pytester) -> None:
    (suite.path / "reports" / "history.jsonl").mkdir(parents=True)
    result = suite.runpytest()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["tria-deploy: history.jsonl was not written: IsADirectoryError*"])
    assert summary_of(suite).startswith("# ✅ tria-deploy: PASS")


def test_old_summary_is_removed_when_a_run_starts(suite: pytest.Pytester) -> None:
    suite.runpytest()
    assert summary_of(suite)
    suite.runpytest("-k", "no_such_test")
    assert not (suite.path / "reports" / "summary.md").exists()


def test_planted_secret_reaches_neither_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANTED_TOKEN", TOKEN)
    monkeypatch.setenv("PLANTED_DB_PASSWORD", DB_PASSWORD)
    step_summary = pytester.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    pytester.makeini(QUIET_INI)
    pytester.makefile(".toml", tria=PLANTED_TARGET)
    pytester.makepyfile(test_07_health=LEAKY_SUITE)
    result = pytester.runpytest("--tria-target=staging")
    result.assert_outcomes(failed=1)
    summary = summary_of(pytester)
    history = (pytester.path / "reports" / "history.jsonl").read_text(encoding="utf-8")
    secrets = {"diagnostics token": TOKEN, "database password": DB_PASSWORD}
    assert_no_secret(
        {
            "summary.md": summary,
            "history.jsonl": history,
            "GITHUB_STEP_SUMMARY": step_summary.read_text(encoding="utf-8"),
        },
        secrets,
    )
    # The leaks were there to be masked: the failure, the warning and the budget row.
    pytest.LineMatcher(summary.splitlines()).fnmatch_lines(
        [
            "- **health** test_07_health.py::test_readiness (failed): AssertionError: [*][*][*] *",
            "- **health* diagnostics answered with [*][*][*]",
            "| readiness_ms | readiness with [*][*][*] | 9.00 ms | 5 ms | over | *",
        ]
    )
    assert "postgresql://tria:***@127.0.0.1:9/tria" in summary
    assert redact(summary) == summary  # masks stay as masks: the last redaction changes nothing


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a|b", "a\\|b"),
        ("one\ntwo\r\nthree", "one<br>two<br>three"),
        ("<script>&", "&lt;script&gt;&amp;"),
        ("**bold** `code` [link]", "\\*\\*bold\\*\\* \\`code\\` \\[link\\]"),
        ("back\\slash", "back\\\\slash"),
        ("redis://:pw-4f1c9e@host | x*", "redis://:***@host \\| x\\*"),
    ],
)
def test_cell_escapes_what_would_break_a_table(raw: str, escaped: str) -> None:
    assert cell(raw) == escaped


# --- whole files or none --------------------------------------------------------------------


def replaced_whole(path: Path, write: Callable[[], object]) -> None:
    """``write`` renames a new file over ``path``: a reader holding the old one (here a hard
    link to it) keeps it whole, and no temporary file is left beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("the earlier file\n", encoding="utf-8")
    reader = path.with_name("reader")
    reader.hardlink_to(path)

    write()

    assert reader.read_text(encoding="utf-8") == "the earlier file\n"
    assert path.read_text(encoding="utf-8") != "the earlier file\n"
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_summary_allure_files_and_baselines_replace_their_file_whole(tmp_path: Path) -> None:
    verdict = {
        "target": "local",
        "provider": "local",
        "gate": "normal",
        "targets": [{"target": "local", "stages": []}],
        "tool": {"version": "1"},
    }
    replaced_whole(tmp_path / "s" / "summary.md", lambda: write_summary("# new\n", tmp_path / "s"))
    replaced_whole(
        tmp_path / "a" / ENVIRONMENT_FILE,
        lambda: write_extras(tmp_path / "a", verdict, {}, "host"),
    )
    replaced_whole(
        tmp_path / "b" / "baselines.json",
        lambda: update_baseline(
            tmp_path / "b" / "baselines.json", "local", "redis", Latency((1.0, 2.0)), print
        ),
    )


def test_a_write_that_fails_leaves_the_earlier_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("the earlier file\n", encoding="utf-8")

    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "caf\u00e9", encoding="ascii")

    assert path.read_text(encoding="utf-8") == "the earlier file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_an_atomic_write_gets_a_plain_writes_permissions(tmp_path: Path) -> None:
    """Readable by whoever could read a file ``write_text`` made (an artifact uploader, a
    reviewer on a shared runner), not 0600 like a bare temporary file."""
    write_atomic(tmp_path / "atomic.md", "x")
    (tmp_path / "plain.md").write_text("x")
    assert (tmp_path / "atomic.md").stat().st_mode == (tmp_path / "plain.md").stat().st_mode
