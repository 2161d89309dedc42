"""history.jsonl: a line per run and target, safe concurrent appends, corrupt lines skipped, and
the trend table."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout
from rich.console import Console

from pytest_tria_deploy.report import history, summary
from pytest_tria_deploy.report.history import (
    HISTORY_FILE,
    append_history,
    read_history,
    trend_table,
)
from tests.plugin.conftest import QUIET_INI

MEASURING_REDIS = """
from pytest_tria_deploy.helpers import warn_over_budget

def test_redis_ping(tria_budget, tria_record, tria_warn):
    tria_record("redis.p99_ms", 2.5, "ms")
    tria_record("redis.p50_ms", 0.75, "ms")
    warn_over_budget(
        tria_warn, "PING p99", "redis_p99_ms", tria_budget.redis_p99_ms, 2.5, record=tria_record
    )

def test_redis_again(tria_budget, tria_record, tria_warn):
    warn_over_budget(
        tria_warn, "PING p99 again", "redis_p99_ms", tria_budget.redis_p99_ms, 0.75,
        record=tria_record,
    )

def test_readiness(tria_budget, tria_record, tria_warn):
    warn_over_budget(
        tria_warn, "readiness", "readiness_ms", tria_budget.readiness_ms, 1234.5,
        record=tria_record,
    )
"""
TWO_TARGETS = """
[targets.eu]
service_url = "http://127.0.0.1:9"
database_url = "postgresql://u:p@127.0.0.1:9/db"
redis_url = "redis://127.0.0.1:9"
openai_api_key = "k"
chroma_url = "http://127.0.0.1:9"

[targets.us]
service_url = "http://127.0.0.2:9"
database_url = "postgresql://u:p@127.0.0.1:9/db"
redis_url = "redis://127.0.0.1:9"
openai_api_key = "k"
chroma_url = "http://127.0.0.1:9"
"""
FIELDS = {
    "time",
    "target",
    "verdict",
    "exit_code",
    "duration_s",
    "stages",
    "latencies_ms",
    "suites_git_sha",
    "tool_version",
}
# Appends from another process: each line is far larger than a pipe's atomic write.
APPENDER = """
import sys
from pathlib import Path
from pytest_tria_deploy.report.history import append_history

tag, count = sys.argv[2], int(sys.argv[3])
for i in range(count):
    verdict = {
        "verdict": "PASS", "exit_code": 0, "finished": f"2024-05-01T10:00:{i:02d}+00:00",
        "tool": {"version": "1"},
        "targets": [
            {"target": tag, "verdict": "PASS", "stages": [
                {"name": "redis", "status": "PASS", "duration": 0.1, "tests": [
                    {"nodeid": "t", "properties": {"padding": "x" * 20000}}
                ]}
            ]}
        ],
    }
    append_history(verdict, Path(sys.argv[1]))
"""


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / HISTORY_FILE).read_text().splitlines()]


def entry(time: str, verdict: str = "PASS", target: str = "prod", **ms: float) -> dict[str, Any]:
    return {
        "time": time,
        "target": target,
        "verdict": verdict,
        "exit_code": 0,
        "duration_s": 12.5,
        "stages": {},
        "latencies_ms": ms,
        "suites_git_sha": None,
        "tool_version": "1",
    }


def render(table: Any) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(table)
    return console.export_text()


def test_each_run_appends_a_line(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_04_redis=MEASURING_REDIS)
    suite.runpytest()
    suite.makepyfile(test_04_redis="def test_redis_ping():\n    assert 0\n")
    suite.runpytest()
    first, second = lines_of(suite.path / "reports")
    assert set(first) == FIELDS
    verdicts = [json.loads((suite.path / "reports" / "verdict.json").read_text())]
    assert second["time"] == verdicts[0]["finished"]
    assert (first["target"], first["verdict"], first["exit_code"]) == ("local", "WARN", 0)
    assert (second["verdict"], second["exit_code"]) == ("FAIL", 1)
    # Every millisecond value the tests recorded, and not the budget comparison repeating one.
    # What each budget was held to, the worst of its checks; not every value recorded in ms.
    assert first["latencies_ms"] == {"redis_p99_ms": 2.5, "readiness_ms": 1234.5}
    assert second["latencies_ms"] == {}
    assert first["stages"]["redis"]["status"] == "WARN"  # readiness over its budget
    assert second["stages"]["redis"]["status"] == "FAIL"
    assert second["stages"]["smoke"]["status"] == "BLOCKED"
    latest = datetime.fromisoformat(verdicts[0]["finished"])
    wall = latest - datetime.fromisoformat(verdicts[0]["started"])
    assert second["duration_s"] == pytest.approx(wall.total_seconds(), abs=0.001)
    assert first["tool_version"] == verdicts[0]["tool"]["version"]
    assert [e["verdict"] for e in read_history(suite.path / "reports", "local")] == ["WARN", "FAIL"]


def test_the_duration_is_the_runs_wall_time_as_in_the_summary() -> None:
    """Started to finished, like summary.md's duration: collection, setup and the time between
    stages count, which the sum of the stages' durations leaves out."""
    verdict = {
        "started": "2024-05-01T10:00:00+00:00",
        "finished": "2024-05-01T10:00:07.500000+00:00",
        "verdict": "PASS",
        "exit_code": 0,
        "targets": [
            {
                "target": "prod",
                "verdict": "PASS",
                "stages": [
                    {"name": "smoke", "status": "PASS", "duration": 1.0, "tests": []},
                    {"name": "redis", "status": "PASS", "duration": 2.0, "tests": []},
                ],
            }
        ],
    }
    (only,) = history.history_entries(verdict)
    assert only["duration_s"] == summary.run_seconds(verdict) == 7.5
    assert {name: s["duration_s"] for name, s in only["stages"].items()} == {
        "smoke": 1.0,
        "redis": 2.0,
    }


def test_an_xdist_run_writes_one_line_per_target(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_04_redis=MEASURING_REDIS)
    result = suite.runpytest("-n", "2")
    assert result.ret == 0
    (only,) = lines_of(suite.path / "reports")  # from the controller, not from each worker
    assert only["latencies_ms"] == {"redis_p99_ms": 2.5, "readiness_ms": 1234.5}


def test_a_multi_target_run_writes_a_line_per_target(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI)
    pytester.makefile(".toml", tria=TWO_TARGETS)
    pytester.makepyfile(
        test_04_redis="""
        from pytest_tria_deploy.helpers import warn_over_budget

        def test_redis_ping(tria_target, tria_record, tria_warn):
            measured = 3.0 if tria_target.name == "eu" else 9.0
            warn_over_budget(tria_warn, "PING", "redis_p99_ms", 50, measured, record=tria_record)
            assert tria_target.name == "eu"
        """
    )
    result = pytester.runpytest("--tria-target=eu", "--tria-target=us")
    result.assert_outcomes(passed=1, failed=1)
    eu, us = lines_of(pytester.path / "reports")
    assert (eu["target"], eu["verdict"], eu["latencies_ms"]) == (
        "eu",
        "PASS",
        {"redis_p99_ms": 3.0},
    )
    assert (us["target"], us["verdict"], us["latencies_ms"]) == (
        "us",
        "FAIL",
        {"redis_p99_ms": 9.0},
    )
    assert eu["exit_code"] == us["exit_code"] == 1  # the run's exit code
    assert [e["target"] for e in read_history(pytester.path / "reports", "us")] == ["us"]


def test_concurrent_appends_keep_every_line_whole(tmp_path: Path) -> None:
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(tmp_path), tag, "25"],
            cwd=Path(__file__).parents[2],
        )
        for tag in ("a", "b", "c")
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0, 0]
    entries = lines_of(tmp_path)  # every line parses
    assert len(entries) == 75
    assert {t: sum(e["target"] == t for e in entries) for t in "abc"} == {"a": 25, "b": 25, "c": 25}


def test_an_append_waits_for_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "LOCK_TIMEOUT_SECONDS", 0.2)
    verdict = {
        "finished": "2024-05-01T10:00:00+00:00",
        "targets": [{"target": "a", "verdict": "PASS"}],
    }
    with FileLock(f"{tmp_path / HISTORY_FILE}.lock"), pytest.raises(Timeout):
        append_history(verdict, tmp_path)
    append_history(verdict, tmp_path)
    assert [e["target"] for e in lines_of(tmp_path)] == ["a"]


def test_a_corrupt_line_is_skipped_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = json.dumps(entry("2024-05-01T10:00:00+00:00"))
    (tmp_path / HISTORY_FILE).write_text(
        f'{good}\nnot json at all\n[1, 2]\n{{"target": "prod"}}\n\n{good[:40]}', encoding="utf-8"
    )
    # The next run's line starts on a line of its own, after the one a killed run left unfinished.
    append_history(
        {
            "finished": "2024-05-02T10:00:00+00:00",
            "targets": [{"target": "prod", "verdict": "WARN"}],
        },
        tmp_path,
    )
    with caplog.at_level(logging.WARNING, logger=history.__name__):
        entries = read_history(tmp_path, "prod")
    assert [e["time"] for e in entries] == [
        "2024-05-01T10:00:00+00:00",
        "2024-05-02T10:00:00+00:00",
    ]
    skipped = [r.getMessage() for r in caplog.records]
    assert [m.split(" line ")[1] for m in skipped] == [
        f"{n} is not a history entry; skipped" for n in (2, 3, 4, 6)
    ]
    assert all(good[:40] not in m for m in skipped)


def test_read_history_filters_and_keeps_the_last(tmp_path: Path) -> None:
    assert read_history(tmp_path) == []
    assert not list(tmp_path.iterdir())  # reading creates nothing
    lines = [entry(f"2024-05-{d:02d}T10:00:00+00:00", target="ab"[d % 2]) for d in range(1, 9)]
    (tmp_path / HISTORY_FILE).write_text("".join(json.dumps(e) + "\n" for e in lines))
    assert [e["time"][8:10] for e in read_history(tmp_path, "a", last=3)] == ["04", "06", "08"]
    assert [e["time"][8:10] for e in read_history(tmp_path, last=2)] == ["07", "08"]
    with pytest.raises(ValueError, match="last must be at least 1"):
        read_history(tmp_path, last=0)


def test_trend_table_shows_each_latency_against_the_previous_run() -> None:
    entries = [
        entry("2024-05-01T10:00:00+00:00", readiness_ms=10.0, redis_p99_ms=0.25),
        entry("2024-05-02T10:00:00+00:00", "WARN", readiness_ms=12.0, redis_p99_ms=0.27),
        entry("2024-05-03T10:00:00+00:00", "FAIL", readiness_ms=5.0),
    ]
    text = render(trend_table(entries))
    lines = [line for line in text.splitlines() if line.strip()]
    pytest.LineMatcher(lines).fnmatch_lines(
        [
            "*tria-deploy history: prod*",
            "*time*verdict*duration*readiness*redis p99*",
            "*2024-05-01 10:00*PASS*12.5 s*10.0*0.25*",
            "*2024-05-02 10:00*WARN*12.5 s*12.0*0.27*",
            "*↑20%*→8%*",
            "*2024-05-03 10:00*FAIL*12.5 s*5.00*–*",
            "*↓58%*",
            "*median*10.0*0.26*",
        ]
    )
    assert (
        "latencies in ms, each against the target's previous run (↑ slower, ↓ faster, → within "
        "±10%); the last row is their median"
    ) in " ".join(text.split())
    first = next(line for line in lines if "2024-05-01" in line)
    assert not set("↑↓→%") & set(first)  # the first run has nothing to compare with


def test_trend_table_compares_within_each_target() -> None:
    entries = [
        entry("2024-05-01T10:00:00+00:00", target="eu", readiness_ms=10.0),
        entry("2024-05-01T10:00:00+00:00", target="us", readiness_ms=100.0),
        entry("2024-05-02T10:00:00+00:00", target="eu", readiness_ms=30.0),
        entry("2024-05-02T10:00:00+00:00", target="us", readiness_ms=50.0),
    ]
    text = render(trend_table(entries))
    pytest.LineMatcher(text.splitlines()).fnmatch_lines(
        [
            "*tria-deploy history: eu, us*",
            "*time*target*verdict*duration*readiness*",
            "*2024-05-02 10:00*eu*PASS*30.0*",
            "*↑200%*",
            "*2024-05-02 10:00*us*PASS*50.0*",
            "*↓50%*",
        ]
    )
    assert "median" not in text  # a median across targets would mean nothing


def test_trend_table_of_no_runs() -> None:
    text = render(trend_table([]))
    assert "tria-deploy history" in text
    assert "time" in text
