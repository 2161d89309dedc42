"""JUnit XML by default: where it goes, the family that keeps measured values without warnings,
the run's facts as testsuite properties, and what the user's own choices change."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.plugin.conftest import QUIET_INI, activate, commit_suites

MEASURED = """
def test_redis_ping(tria_record):
    tria_record("redis_p99_ms", 7.5, "ms")
"""
WARNED = """
def test_readiness(tria_warn):
    tria_warn("readiness is over the readiness_ms budget: budget 1 ms, measured 9.0 ms")
"""
INCOMPATIBLE = "*record_property is incompatible with junit_family 'xunit2'*"


@pytest.fixture
def measured(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(test_04_redis=MEASURED, test_07_health=WARNED)
    return pytester


def suite_of(path: Path) -> ET.Element:
    suite = ET.parse(path).getroot().find("testsuite")  # noqa: S314 (the run's own file)
    assert suite is not None
    return suite


def properties(element: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in element.iterfind("properties/property")}


def cases_of(suite: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in suite.iterfind("testcase")}


@pytest.mark.parametrize("workers", [(), ("-n", "2")])
def test_junit_xml_goes_to_the_report_dir_with_properties_and_no_warning(
    measured: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    sha = commit_suites(measured.path)

    result = measured.runpytest(*workers)

    assert result.ret == 0
    result.stdout.no_fnmatch_line("*incompatible with junit_family*")
    suite = suite_of(measured.path / "reports" / "junit.xml")
    cases = cases_of(suite)
    assert properties(cases["test_redis_ping"]) == {
        "tria_stage": "redis",
        "tria_target": "local",
        "redis_p99_ms": "7.5",
        "redis_p99_ms.unit": "ms",
    }
    assert properties(cases["test_readiness"]) == {
        "tria_stage": "health",
        "tria_target": "local",
        "tria_warning": "readiness is over the readiness_ms budget: budget 1 ms, measured 9.0 ms",
    }
    assert cases["test_redis_ping"].get("file") == "test_04_redis.py"  # xunit1 keeps the file
    facts = properties(suite)
    assert {k: facts[k] for k in ("tria_verdict", "tria_exit_code", "tria_gate")} == {
        "tria_verdict": "WARN",
        "tria_exit_code": "0",
        "tria_gate": "normal",
    }
    assert facts["tria_reason"].startswith("health warned: test_07_health.py::test_readiness")
    assert (facts["tria_target"], facts["tria_provider"]) == ("local", "local")
    assert facts["tria_suites_git_sha"] == sha
    assert facts["tria_tool_version"] == "0.1.0"


def test_the_users_junitxml_wins_and_gets_the_facts(measured: pytest.Pytester) -> None:
    result = measured.runpytest("--junitxml=mine.xml")

    assert result.ret == 0
    assert not (measured.path / "reports" / "junit.xml").exists()
    suite = suite_of(measured.path / "mine.xml")
    assert properties(suite)["tria_verdict"] == "WARN"
    assert properties(cases_of(suite)["test_redis_ping"])["redis_p99_ms"] == "7.5"


def test_an_explicit_xunit2_is_kept_and_pytest_warns_per_recording_test(
    measured: pytest.Pytester,
) -> None:
    """pytest still writes the properties under xunit2 (outside its schema), and warns once for
    each test that used record_property (here through tria_record)."""
    result = measured.runpytest("-o", "junit_family=xunit2")

    assert result.ret == 0
    result.stdout.fnmatch_lines([INCOMPATIBLE])
    assert result.stdout.str().count("incompatible with junit_family") == 1
    suite = suite_of(measured.path / "reports" / "junit.xml")
    case = cases_of(suite)["test_redis_ping"]
    assert case.get("file") is None  # xunit2's testcase has no file attribute
    assert properties(case)["redis_p99_ms"] == "7.5"
    assert properties(suite)["tria_verdict"] == "WARN"


def test_junit_family_in_the_ini_file_is_kept(measured: pytest.Pytester) -> None:
    measured.makeini(QUIET_INI + "junit_family = xunit2\n")

    result = measured.runpytest()

    result.stdout.fnmatch_lines([INCOMPATIBLE])


def test_no_default_reports_means_no_junit_xml(measured: pytest.Pytester) -> None:
    result = measured.runpytest("--tria-no-default-reports")

    assert result.ret == 0
    assert not (measured.path / "reports" / "junit.xml").exists()
    assert (measured.path / "reports" / "verdict.json").is_file()


def test_an_inactive_run_writes_no_junit_xml(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI + "asyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_plain="def test_x():\n    pass\n")

    result = pytester.runpytest()

    assert result.ret == 0
    assert not (pytester.path / "reports").exists()


def test_a_directory_named_junit_xml_skips_it_and_the_verdict_stands(
    measured: pytest.Pytester,
) -> None:
    """pytest's JUnit writer would raise IsADirectoryError at the end and turn the gate's exit
    code to 1: the JUnit XML is skipped, said at the end, and the verdict's exit code stands."""
    (measured.path / "reports" / "junit.xml").mkdir(parents=True)

    result = measured.runpytest()

    assert result.ret == 0, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(
        [
            "VERDICT: WARN *",
            "tria-deploy: junit.xml was not written: IsADirectoryError: *junit.xml*; remove what "
            "is in the way, or pass --tria-report-dir, --alluredir or --junitxml",
        ]
    )
    assert (measured.path / "reports" / "junit.xml").is_dir()
    verdict = json.loads((measured.path / "reports" / "verdict.json").read_text())
    assert (verdict["verdict"], verdict["exit_code"]) == ("WARN", 0)
