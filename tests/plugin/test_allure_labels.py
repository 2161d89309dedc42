"""Every staged test reaches Allure grouped the same way: epic, the stage as feature, the check
as story, and severity critical only where a failure gates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.plugin.conftest import QUIET_INI, activate


def _labels(results: Path) -> dict[str, dict[str, list[str]]]:
    by_test: dict[str, dict[str, list[str]]] = {}
    for path in results.glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        labels: dict[str, list[str]] = {}
        for label in result["labels"]:
            labels.setdefault(label["name"], []).append(label["value"])
        by_test[result["name"]] = labels
    return by_test


def test_staged_tests_get_epic_feature_story_and_severity(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makefile(".toml", tria='[stages.report_only]\nafter = ["smoke"]\ncritical = false\n')
    pytester.makepyfile(
        test_20_database='''
import allure

def test_database_connection():
    """It connects within the budget."""

@allure.story("a story of its own")
def test_schema_version():
    pass
''',
        test_90_report_only="def test_memory_reported():\n    pass\n",
        test_plain="def test_not_staged():\n    pass\n",
    )
    result = pytester.runpytest("--alluredir=allure")
    result.assert_outcomes(passed=4)
    labels = _labels(pytester.path / "allure")

    connection = labels["test_database_connection"]
    assert connection["epic"] == ["Deployment verification"]
    assert connection["feature"] == ["database"]
    assert connection["story"] == ["It connects within the budget"]
    assert connection["severity"] == ["critical"]
    assert labels["test_schema_version"]["story"] == ["a story of its own"]
    report_only = labels["test_memory_reported"]
    assert report_only["story"] == ["memory reported"]
    assert report_only["severity"] == ["normal"]
    assert "epic" not in labels["test_not_staged"]
