"""Helpers for the plugin's tests: small example suites run in-process with pytester."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

STAGE_MODULES = {
    "test_01_preflight": "def test_runner_ready():\n    pass\n",
    "test_02_environment": "def test_env_complete():\n    pass\n",
    "test_03_database": "def test_db_connects():\n    pass\n\ndef test_db_schema():\n    pass\n",
    "test_04_redis": "def test_redis_ping():\n    pass\n",
    "test_05_external": "def test_openai_models():\n    pass\n",
    "test_06_components": "def test_components():\n    pass\n",
    "test_07_health": "def test_readiness():\n    pass\n",
    "test_08_smoke": "def test_chat_roundtrip():\n    pass\n",
}
# The tests of STAGE_MODULES in the order the stages must run them.
STAGE_ORDER = [
    name for body in STAGE_MODULES.values() for name in re.findall(r"def (test_\w+)\(", body)
]


# In-process runs re-import nothing, so pytest notes that the (already imported) plugin cannot be
# assertion-rewritten; that note is about the test harness, not the plugin.
QUIET_INI = "[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n"


def activate(pytester: pytest.Pytester) -> pytest.Pytester:
    """An empty tria.toml at the rootdir: the plugin is active (built-in targets and stages)."""
    pytester.makefile(".toml", tria="")
    return pytester


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A passing suite with one module per stage, written in reverse so order comes from stages."""
    pytester.makeini(QUIET_INI)
    activate(pytester)
    for name in reversed(list(STAGE_MODULES)):
        pytester.makepyfile(**{name: STAGE_MODULES[name]})
    return pytester


def read_verdict(pytester: pytest.Pytester, report_dir: str = "reports") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        Path(pytester.path, report_dir, "verdict.json").read_text(encoding="utf-8")
    )
    return data


def stage_of(verdict: dict[str, Any], name: str, target: int = 0) -> dict[str, Any]:
    stage: dict[str, Any] = next(
        s for s in verdict["targets"][target]["stages"] if s["name"] == name
    )
    return stage


def executed(result: pytest.RunResult) -> list[str]:
    """Test names in the order they ran (from -v output)."""
    names = []
    for line in result.outlines:
        if "::" in line and any(w in line for w in ("PASSED", "FAILED", "SKIPPED", "ERROR")):
            names.append(line.split(" ")[0].split("::")[-1])
    return names


def commit_suites(path: Path) -> str:
    """Make ``path`` a git work tree with one commit of its files; returns the commit's sha."""
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "--allow-empty", "-m", "suites"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, env=env, timeout=30)
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip()
