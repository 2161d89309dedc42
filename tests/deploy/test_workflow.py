""".github/workflows/deploy-gate.yml is a working example: it parses, its shell is
shellcheck-clean, every command it runs takes the options it is given, and it uploads the
reports the gate writes."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from pytest_tria_deploy.cli.allure_html import MIN_NODE
from pytest_tria_deploy.cli.allure_html import REPORT_DIR as ALLURE_REPORT_DIR
from pytest_tria_deploy.report.defaults import ALLURE_DIR, JUNIT_FILE
from pytest_tria_deploy.report.summary import SUMMARY_FILE
from pytest_tria_deploy.report.verdict import VERDICT_FILE
from tests.deploy.manifests import REPO, cli_options, option_words, pytest_options

WORKFLOW = REPO / ".github" / "workflows" / "deploy-gate.yml"
REPORT_DIR = "reports"  # the default of --tria-report-dir and of every tria-deploy command
REPORT_FILES = {ALLURE_DIR, ALLURE_REPORT_DIR, JUNIT_FILE, VERDICT_FILE, SUMMARY_FILE}


@pytest.fixture(scope="module")
def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    found: list[dict[str, Any]] = job["steps"]
    return found


@pytest.fixture(scope="module")
def pytest_known() -> set[str]:
    return pytest_options()


def _runs(steps: list[dict[str, Any]]) -> list[str]:
    return [step["run"] for step in steps if "run" in step]


def _commands(steps: list[dict[str, Any]]) -> list[list[str]]:
    """Each command line of every run block, split as the shell would."""
    text = "\n".join(_runs(steps)).replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip()]


def _step(steps: list[dict[str, Any]], uses: str) -> tuple[int, dict[str, Any]]:
    (found,) = [(n, s) for n, s in enumerate(steps) if s.get("uses", "").startswith(f"{uses}@")]
    return found


def _step_running(steps: list[dict[str, Any]], command: str) -> tuple[int, dict[str, Any]]:
    (found,) = [(n, s) for n, s in enumerate(steps) if command in s.get("run", "")]
    return found


def test_it_sets_up_python_3_11_and_node_for_allure(steps: list[dict[str, Any]]) -> None:
    assert _step(steps, "actions/checkout")[0] == 0
    assert _step(steps, "actions/setup-python")[1]["with"]["python-version"] == "3.11"
    node = _step(steps, "actions/setup-node")[1]["with"]["node-version"]
    assert int(str(node).split(".")[0]) >= MIN_NODE
    assert ["pip", "install", "-e", ".[dev]"] in _commands(steps)


def test_tests_then_gate_then_report_then_upload(steps: list[dict[str, Any]]) -> None:
    tests, _ = _step_running(steps, "pytest tests")
    gate, gate_step = _step_running(steps, "tria-deploy verify")
    report, report_step = _step_running(steps, "tria-deploy report")
    upload, upload_step = _step(steps, "actions/upload-artifact")
    assert tests < gate < report < upload == len(steps) - 1
    assert "if" not in gate_step  # a failed test run stops before the gate
    # After a failed gate too, but never on a cancelled run (always() would run them then).
    assert (
        report_step["if"]
        == f"${{{{ !cancelled() && steps.{gate_step['id']}.outcome != 'skipped' }}}}"
    )
    assert upload_step["if"] == "${{ !cancelled() }}"
    assert ["tria-deploy", "verify", "--target", "local"] in _commands(steps)


def test_no_step_writes_the_job_summary_the_plugin_writes(steps: list[dict[str, Any]]) -> None:
    """The plugin appends summary.md to $GITHUB_STEP_SUMMARY itself: a step doing it too would
    show the summary twice."""
    assert not [run for run in _runs(steps) if "GITHUB_STEP_SUMMARY" in run]
    assert not [step for step in steps if "GITHUB_STEP_SUMMARY" in str(step.get("env", {}))]


def test_actions_are_node_24_majors_and_node_is_an_lts_line(steps: list[dict[str, Any]]) -> None:
    """Node 20 is end of life, and so is the node20 runtime of the actions' older majors: each
    runs on node24 from the major given here (their action.yml `runs.using`)."""
    first_node24 = {
        "actions/checkout": 5,
        "actions/setup-python": 6,
        "actions/setup-node": 5,
        "actions/upload-artifact": 6,
    }
    for action, major in first_node24.items():
        version = _step(steps, action)[1]["uses"].split("@")[1]
        assert int(version.lstrip("v").split(".")[0]) >= major, action
    node = int(str(_step(steps, "actions/setup-node")[1]["with"]["node-version"]).split(".")[0])
    assert node >= 22  # 20 is end of life
    assert node % 2 == 0  # even majors are the LTS lines


def test_run_blocks_take_no_expressions(steps: list[dict[str, Any]]) -> None:
    """${{ }} in a script is pasted in before the shell reads it (script injection); pass
    values through `env:` instead."""
    assert not [run for run in _runs(steps) if "${{" in run]


def _shellcheck() -> str:
    found = Path(sys.executable).parent / "shellcheck"
    return str(found) if found.is_file() else shutil.which("shellcheck") or "shellcheck"


def _shellcheck_problems(script: str, path: Path) -> str:
    # What the runner executes: bash -e -o pipefail on the block.
    path.write_text(f"#!/usr/bin/env bash\nset -eo pipefail\n{script}", encoding="utf-8")
    checked = subprocess.run(
        [_shellcheck(), "--severity=style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return checked.stdout + checked.stderr


def test_every_run_block_is_shellcheck_clean(steps: list[dict[str, Any]], tmp_path: Path) -> None:
    runs = _runs(steps)
    assert runs
    for n, run in enumerate(runs):
        assert _shellcheck_problems(run, tmp_path / f"run-{n}.sh") == "", run
    # and the check can fail:
    assert "SC2086" in _shellcheck_problems("echo $1\n", tmp_path / "bad.sh")


def test_every_tria_deploy_and_pytest_option_exists(
    steps: list[dict[str, Any]], pytest_known: set[str]
) -> None:
    checked = 0
    for words in _commands(steps):
        if words[0] == "tria-deploy":
            own, _, passed_on = (" ".join(words[2:]) + " ").partition(" -- ")
            assert set(option_words(own.split())) <= cli_options(words[1]), words
            assert set(option_words(passed_on.split())) <= pytest_known, words
            checked += 1
        elif words[0] == "pytest" or words[:3] == [sys.executable, "-m", "pytest"]:
            assert set(option_words(words[1:])) <= pytest_known, words
            checked += 1
    assert checked == 3
    assert not {"--no-such-option"} <= pytest_known  # the sets are not everything


def test_the_artifact_is_the_report_dir_s_files(steps: list[dict[str, Any]]) -> None:
    _, upload = _step(steps, "actions/upload-artifact")
    paths = [PurePosixPath(p) for p in upload["with"]["path"].split()]
    assert all(p.parts[0] == REPORT_DIR and ".." not in p.parts for p in paths)
    assert {p.relative_to(REPORT_DIR).as_posix() for p in paths} == REPORT_FILES
    for words in _commands(steps):
        assert "--report-dir" not in option_words(words), "the upload assumes the default"
