"""JUnit XML for a tria run: a family in which test properties are valid, and the run's facts as
testsuite properties.

Each staged test already carries ``tria_stage`` and ``tria_target`` (collection.py), its warnings
(``tria_warning``) and its measured values (``tria_record``) as user properties, which pytest's
JUnit writer turns into ``<property>`` elements of its ``<testcase>``. Under pytest's default
family, xunit2, such elements are not in the schema and ``record_property`` warns on every test
that records one. So when the user has not chosen ``junit_family``, a tria run uses xunit1 (the
family pytest names for properties; it also keeps the testcase's file and line). A user who sets
``junit_family = xunit2`` keeps it: pytest still writes the properties, and warns
"record_property is incompatible with junit_family 'xunit2'" once per test that records a value
(never under xdist: the workers have no JUnit writer to ask).

The testsuite properties come from the verdict hook, which the engine calls before pytest's JUnit
writer writes the file (both at session finish, the engine first).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import pytest
from _pytest.junitxml import xml_key  # the JUnit writer's handle, as record_testsuite_property's

from pytest_tria_deploy.ini_defaults import seed_ini
from pytest_tria_deploy.redact import redact

FAMILY_KEY = "junit_family"
FAMILY = "xunit1"


def default_family(config: pytest.Config) -> None:
    """Seed ``junit_family = xunit1`` when neither an ini file nor ``-o`` set it, before pytest's
    junitxml plugin reads the key at configure."""
    seed_ini(
        config,
        {FAMILY_KEY: FAMILY},
        unable="default junit_family to keep measured values in JUnit XML without warnings",
    )


def suite_properties(verdict: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's facts for ``<testsuite><properties>``: what a CI system shows next to the tests."""
    facts = {
        "tria_verdict": verdict["verdict"],
        "tria_reason": verdict.get("reason") or "",
        "tria_exit_code": verdict.get("exit_code"),
        "tria_gate": verdict["gate"],
        "tria_target": verdict["target"],
        "tria_provider": verdict["provider"],
        "tria_suites_git_sha": verdict.get("suites_git_sha") or "",
        "tria_tool_version": verdict["tool"]["version"],
        "tria_python_version": platform.python_version(),
    }
    return [(name, redact(str(value))) for name, value in facts.items() if value not in ("", None)]


class JUnitSuiteProperties:
    """Adds the verdict's facts to the JUnit XML pytest writes (controller only)."""

    def pytest_tria_verdict(self, config: pytest.Config, verdict: dict[str, Any]) -> None:
        xml = config.stash.get(xml_key, None)
        if xml is None:
            return
        for name, value in suite_properties(verdict):
            xml.add_global_property(name, value)
