"""What the CLI tests share: the real ``tria-deploy`` console script run as a subprocess, a copy
of ``suites/`` to run it on, and one full gate run (plus one ``--stage database`` run into the
same report directory) for the tests that read what a run leaves behind.

Each gate run starts a local stack (seconds), so the whole module set does two.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.conftest import STAGE_MODULES
from tests.suites.helpers import NOT_SUITE_FILES, SUITES

CLI = str(Path(sys.executable).parent / "tria-deploy")
# What the outer pytest run sets for itself must not steer the inner one.
_OUTER = ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "COLUMNS")
# What a CI runner sets changes what the inner gate writes: GITHUB_STEP_SUMMARY would get the
# tests' fake gate summaries appended to the real job summary, GITHUB_ACTIONS / GITLAB_CI put the
# CI run into executor.json, CI / BUILD_NUMBER make pytest print its summary untruncated. Read
# when a command runs (not frozen at import), since the session fixtures run before the
# function-scoped ``_no_job_summary`` of tests/conftest.py could remove any of them.
CI_VARIABLES = ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "GITLAB_CI", "CI", "BUILD_NUMBER")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the outer run's and the CI's variables, plus
    ``extra`` (which may set them again, for a test of them)."""
    env = {k: v for k, v in os.environ.items() if k not in (*_OUTER, *CI_VARIABLES)}
    return {**env, **(extra or {})}


def tria_deploy(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``tria-deploy ARGS`` in ``cwd``, stdout and stderr captured (so stdout is no terminal)."""
    return subprocess.run(
        [CLI, *args],
        cwd=cwd,
        env=clean_env() if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def copy_suites(where: Path) -> Path:
    """``where`` holding a copy of ``suites/`` (and no tria.toml: the built-in targets)."""
    shutil.copytree(SUITES, where / "suites", ignore=NOT_SUITE_FILES)
    return where


FAILING_DATABASE = "def test_db_connects():\n    pass\n\ndef test_db_schema():\n    assert False\n"


@pytest.fixture
def failing_suite(tmp_path: Path) -> Path:
    """A directory with a small staged ``suites/`` (no stack is started): one module per stage,
    and the database stage fails one of its two tests."""
    suites = tmp_path / "suites"
    suites.mkdir()
    for name, body in STAGE_MODULES.items():
        text = FAILING_DATABASE if name == "test_03_database" else body
        (suites / f"{name}.py").write_text(text)
    return tmp_path


@dataclass(frozen=True)
class GateRun:
    """One ``tria-deploy verify`` run: where it ran, its result, and the verdict it wrote (read
    at once: a later run into the same report dir replaces the file)."""

    cwd: Path
    report_dir: Path
    result: subprocess.CompletedProcess[str]
    verdict: dict[str, Any]


def _gate_run(cwd: Path, *args: str) -> GateRun:
    result = tria_deploy("verify", *args, "--report-dir", "reports", cwd=cwd)
    verdict_file = cwd / "reports" / "verdict.json"
    verdict = json.loads(verdict_file.read_text()) if verdict_file.is_file() else {}
    return GateRun(cwd, cwd / "reports", result, verdict)


@pytest.fixture(scope="session")
def gate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_suites(tmp_path_factory.mktemp("cli-gate"))


@pytest.fixture(scope="session")
def full_run(gate_dir: Path) -> GateRun:
    """``tria-deploy verify`` on the local target, every stage, reports in ``gate_dir/reports``."""
    return _gate_run(gate_dir)


@pytest.fixture(scope="session")
def database_run(full_run: GateRun) -> GateRun:
    """A second run into the same reports: ``--stage database`` (with the stages before it)."""
    return _gate_run(full_run.cwd, "--stage", "database")
