"""What the tests that run the shipped suites share: a copy of ``suites/`` to run, the stages
of the verdict it leaves (one stage alone: ``tests.plugin.conftest.stage_of``), and what Allure
recorded of its tests."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.conftest import QUIET_INI

SUITES = Path(__file__).resolve().parents[2] / "suites"
NOT_SUITE_FILES = shutil.ignore_patterns("__pycache__", ".mypy_cache")


def copy_suites(pytester: pytest.Pytester, tria_toml: str) -> pytest.Pytester:
    """``suites/`` as it is now, under a rootdir whose tria.toml is ``tria_toml``."""
    pytester.makeini(QUIET_INI)
    pytester.makefile(".toml", tria=tria_toml)
    shutil.copytree(SUITES, pytester.path / "suites", ignore=NOT_SUITE_FILES)
    return pytester


def stages(verdict: dict[str, Any], target: int | str = 0) -> dict[str, dict[str, Any]]:
    """A target's stages by name; ``target`` is its index in verdict.json or its name."""
    targets = verdict["targets"]
    entry = (
        targets[target]
        if isinstance(target, int)
        else next(t for t in targets if t["target"] == target)
    )
    return {stage["name"]: stage for stage in entry["stages"]}


def statuses(verdict: dict[str, Any], target: int | str = 0) -> dict[str, str]:
    """A target's stage statuses by name: PASS, WARN, FAIL, BLOCKED, NOT RUN."""
    return {name: stage["status"] for name, stage in stages(verdict, target).items()}


@dataclass(frozen=True)
class AllureTest:
    """What Allure recorded of one test: its top-level steps and every attachment's name."""

    steps: list[str]
    attachments: list[str]


def allure_tests(results_dir: Path) -> dict[str, AllureTest]:
    """Allure's results by test function name (one target, one instance: one result each)."""
    found = {}
    for path in sorted(results_dir.glob("*-result.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        name = result["fullName"].rpartition("#")[2]
        found[name] = AllureTest(
            steps=[step["name"] for step in result.get("steps", [])],
            attachments=_attachment_names(result),
        )
    return found


def _attachment_names(node: dict[str, Any]) -> list[str]:
    names = [attachment["name"] for attachment in node.get("attachments", [])]
    for step in node.get("steps", []):
        names += _attachment_names(step)
    return names
