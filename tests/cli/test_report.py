"""``tria-deploy report``: the single-file HTML report, what it says without Node.js, the trend."""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import GateRun, clean_env, tria_deploy

# How Allure's single-file report embeds each data file: d("name","<base64>").
EMBEDDED = re.compile(r'd\("([^"]+)","([A-Za-z0-9+/=]*)"\)')
EXTERNAL = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?!data:)([^"]+)"')
# A run's row starts with its time (to the minute at least), after any table border.
TABLE_ROW = re.compile(r"^\W*(\d{4}-\d\d-\d\d \d\d:\d\d)", re.M)


def _embedded_text(html: str) -> str:
    texts = []
    for _, value in EMBEDDED.findall(html):
        try:
            texts.append(base64.b64decode(value).decode("utf-8", "replace"))
        except binascii.Error:
            continue
    return "\n".join(texts)


def _fake_results(report_dir: Path) -> Path:
    """A report dir whose allure-results hold one (empty) result: enough to try to build."""
    results = report_dir / "allure-results"
    results.mkdir(parents=True)
    (results / "0-result.json").write_text("{}")
    return report_dir


@pytest.mark.skipif(shutil.which("npx") is None, reason="Node.js (npx) is not installed here")
def test_report_writes_one_self_contained_html_file(full_run: GateRun) -> None:
    assert (full_run.report_dir / "allure-results").is_dir(), "the gate wrote no Allure results"
    result = tria_deploy("report", "--report-dir", "reports", cwd=full_run.cwd, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    index = full_run.report_dir / "allure-report" / "index.html"
    assert f"HTML report: {index}" in result.stdout
    html = index.read_text(encoding="utf-8")
    assert EXTERNAL.findall(html) == []  # scripts, styles and data are all inside the file
    assert "googletagmanager" not in html
    embedded = _embedded_text(html)
    latest = json.loads((full_run.report_dir / "verdict.json").read_text())  # same run as results
    names = {
        test["nodeid"].split("::")[-1].split("[")[0]
        for target in latest["targets"]
        for stage in target["stages"]
        for test in stage["tests"]
    }
    assert len(names) > 20
    assert sorted(name for name in names if name not in embedded) == []


NO_NODE = {"PATH": str(Path(sys.executable).parent)}  # python and tria-deploy, no node


def test_without_node_it_says_how_to_get_the_report(tmp_path: Path) -> None:
    report_dir = _fake_results(tmp_path / "reports")
    old = report_dir / "allure-report" / "index.html"  # the report of an earlier run
    old.parent.mkdir()
    old.write_text("<html>the last run</html>")
    result = tria_deploy(
        "report", "--report-dir", str(report_dir), cwd=tmp_path, env=clean_env(NO_NODE)
    )
    assert result.returncode == 1
    said = result.stderr
    assert "node and npx not found on PATH" in said
    assert "install Node.js 20+" in said
    assert f"run: tria-deploy report --report-dir {report_dir}" in said
    assert "npx --yes allure@3 allure2 --single-file" in said
    assert not old.exists()  # a report that could not be built leaves no old one looking current
    assert not (report_dir / "allure-report").exists()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pyproject.toml", '[tool.pytest.ini_options]\ntria_report_dir = "gate-out"\n'),
        ("pytest.ini", "[pytest]\ntria_report_dir = gate-out\n"),
        ("tox.ini", "[pytest]\ntria_report_dir = gate-out\n"),
        ("setup.cfg", "[tool:pytest]\ntria_report_dir = gate-out\n"),
        ("pytest.toml", '[pytest]\ntria_report_dir = "gate-out"\n'),
    ],
)
def test_the_report_dir_comes_from_the_ini_file_verify_reads(
    tmp_path: Path, name: str, text: str
) -> None:
    (tmp_path / name).write_text(text)
    _fake_results(tmp_path / "gate-out")
    result = tria_deploy("report", cwd=tmp_path, env=clean_env(NO_NODE))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "run: tria-deploy report --report-dir gate-out" in result.stderr  # found its results
    assert "The results themselves are in gate-out/allure-results" in result.stderr


def test_pytest_addopts_wins_over_the_ini_file(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ntria_report_dir = gate-out\n")
    env = clean_env({**NO_NODE, "PYTEST_ADDOPTS": "--tria-report-dir=elsewhere"})
    result = tria_deploy("report", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "no Allure results in elsewhere/allure-results" in result.stderr


def test_verify_and_report_agree_on_the_ini_report_dir(failing_suite: Path) -> None:
    (failing_suite / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntria_report_dir = "gate-out"\n'
    )
    gate = tria_deploy("verify", cwd=failing_suite, timeout=120)
    assert (failing_suite / "gate-out" / "verdict.json").is_file(), gate.stdout + gate.stderr
    trend = tria_deploy("report", "--trend", cwd=failing_suite)
    assert trend.returncode == 0, trend.stdout + trend.stderr
    assert len(TABLE_ROW.findall(trend.stdout)) == 1


def test_without_results_it_says_to_run_the_gate(tmp_path: Path) -> None:
    result = tria_deploy("report", "--report-dir", "empty", cwd=tmp_path)
    assert result.returncode == 1
    assert "no Allure results in empty/allure-results; run the gate first" in result.stderr


def test_trend_shows_the_runs_of_the_target(database_run: GateRun) -> None:
    assert database_run.result.returncode == 0
    history = [
        json.loads(line)
        for line in (database_run.report_dir / "history.jsonl").read_text().splitlines()
    ]
    times = [entry["time"][:16].replace("T", " ") for entry in history]
    assert len(times) == 2

    def trend(*args: str) -> list[str]:
        result = tria_deploy(
            "report", "--trend", "--report-dir", "reports", *args, cwd=database_run.cwd
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "tria-deploy history: local" in result.stdout
        return TABLE_ROW.findall(result.stdout)

    assert trend("--target", "local") == times
    assert trend("--last", "1") == times[-1:]
    nobody = tria_deploy(
        "report", "--trend", "--target", "nobody", "--report-dir", "reports", cwd=database_run.cwd
    )
    assert nobody.returncode == 1
    assert "no runs of target nobody recorded in reports/history.jsonl" in nobody.stderr


@pytest.mark.parametrize(
    "args", [["--target", "local"], ["--last", "2"], ["--last", "0", "--trend"]]
)
def test_trend_options_without_trend_or_out_of_range_are_usage_errors(
    tmp_path: Path, args: list[str]
) -> None:
    result = tria_deploy("report", *args, cwd=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
