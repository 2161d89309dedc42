"""Allure labels for staged tests, so every suite (shipped or a user's) groups the same way.

allure-pytest reads labels from ``allure_label`` marks; adding them at collection gives every
staged test its epic, feature (the stage), story (the check) and severity without a decorator in
each module. A test's own ``@allure.story``/``@allure.severity`` still wins: allure-pytest keeps
the closest mark of each type first.
"""

from __future__ import annotations

import pytest

EPIC = "Deployment verification"
ALLURE_MARK = "allure_label"


def story_of(item: pytest.Item) -> str:
    """The first line of the test's docstring, else its name made readable."""
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
    if first:
        return first.rstrip(".")
    name = getattr(item, "originalname", item.name).removeprefix("test_")
    return name.replace("_", " ")


def add_labels(item: pytest.Item, stage: str, critical: bool) -> None:
    """Epic, feature = stage, story = check, severity critical for checks that gate."""
    if not item.config.pluginmanager.hasplugin("allure_pytest"):
        return
    have = {m.kwargs.get("label_type") for m in item.iter_markers(ALLURE_MARK)}
    labels = {
        "epic": EPIC,
        "feature": stage,
        "story": story_of(item),
        "severity": "critical" if critical else "normal",
    }
    for label_type, value in labels.items():
        if label_type not in have:
            item.add_marker(getattr(pytest.mark, ALLURE_MARK)(value, label_type=label_type))
