"""Selecting a Docker target without a usable engine stops the run at once, in one line."""

from __future__ import annotations

import time

import pytest

from pytest_tria_deploy.provision.docker import DockerProvider, docker_problem
from tests.plugin.conftest import QUIET_INI, activate

# Runs only if the plugin let the session start: it must not.
SUITE = {
    "test_03_database": """
from pathlib import Path

def test_db():
    Path("ran.txt").write_text("a test ran")
"""
}


@pytest.fixture
def suite(pytester: pytest.Pytester, no_engine: str) -> pytest.Pytester:
    """A tria suite, with DOCKER_HOST at a socket where nothing listens."""
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(**SUITE)
    return pytester


def _only_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.errlines if line.strip()]
    assert len(lines) == 1, result.errlines
    return lines[0]


@pytest.mark.parametrize("provider", ["containers", "compose"])
def test_a_docker_target_without_an_engine_fails_before_any_test(
    suite: pytest.Pytester, provider: DockerProvider
) -> None:
    expected = docker_problem(provider)
    assert expected is not None
    result = suite.runpytest_subprocess(f"--tria-target={provider}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = _only_line(result)
    assert line == f"ERROR: tria-deploy: {expected}"
    heads = {
        "containers": "containers target needs a Docker engine: ",
        "compose": "compose target needs a Docker engine with the compose plugin: ",
    }
    assert line.startswith(f"ERROR: tria-deploy: {heads[provider]}no engine answers at unix://")
    assert "Error while fetching server API version" in line
    assert line.endswith("; use --tria-target=local, or start Docker")
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (suite.path / "ran.txt").exists()
    assert not (suite.path / "reports" / "verdict.json").exists()


def test_one_docker_target_among_several_still_stops_the_run(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("--tria-target=local", "--tria-target=containers")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert _only_line(result).startswith("ERROR: tria-deploy: containers target needs a Docker")
    assert not (suite.path / "ran.txt").exists()


def test_the_local_target_never_asks_docker(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("--tria-target=local")
    result.assert_outcomes(passed=1)
    assert "Docker" not in result.stdout.str() + result.stderr.str()


def test_a_black_holed_engine_stops_the_run_in_seconds(
    suite: pytest.Pytester, black_hole_unix: str
) -> None:
    """The timeout firing is the behaviour: bounded generously (the check allows 3 s a request)."""
    started = time.monotonic()
    result = suite.runpytest_subprocess("--tria-target=containers", timeout=120)
    elapsed = time.monotonic() - started
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "timed out" in _only_line(result)
    assert elapsed < 60
    assert not (suite.path / "ran.txt").exists()
