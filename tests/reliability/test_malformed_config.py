"""Malformed service configurations: each is refused with one line naming the variable and its fix,
with no traceback and no secret, in-process for the whole table and through `python -m
tria_service` for one case of each kind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from tria_service.__main__ import EXIT_BAD_CONFIG, ServerSettings, load_configuration
from tria_service.config import ConfigError, Settings

from tests.reliability.malformed_configs import (
    BASE_ENV,
    CANARY,
    CASES,
    THROUGH_THE_ENTRY_POINT,
    ConfigCase,
)
from tests.reliability.secrets_canaries import assert_no_secret
from tests.service.helpers import run_python

# Variables either settings class reads, plus the env file's name: cleared before each case.
KNOWN = {name.upper() for name in (*Settings.model_fields, *ServerSettings.model_fields)}
ENTRY_POINT_WORKERS = 2  # the CI machine has two cores


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """None of the service's variables set, in a directory with no .env."""
    for name in list(os.environ):
        if name.upper() in KNOWN | {"TRIA_ENV_FILE"}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _load(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    load_configuration()


def test_the_table_is_large_and_names_each_case_once() -> None:
    """The generated table has at least 30 distinct cases over at least 30 variables' values."""
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30
    assert set(ids) >= THROUGH_THE_ENTRY_POINT


def test_the_base_configuration_is_valid(clean_env: pytest.MonkeyPatch) -> None:
    """Each case is one variable away from a configuration the service accepts."""
    _load(clean_env, BASE_ENV)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_each_malformed_value_is_one_problem_naming_its_variable(
    clean_env: pytest.MonkeyPatch, case: ConfigCase
) -> None:
    """A malformed value is refused with one line: the variable, what is wrong, how to fix it."""
    with pytest.raises(ConfigError) as caught:
        _load(clean_env, case.environment())
    (problem,) = caught.value.problems
    assert problem.startswith(f"{case.var}: "), problem
    what, _, fix = problem.partition(" — ")
    assert case.expected in what, problem
    assert fix.strip(), f"no fix given: {problem}"
    message = str(caught.value)
    assert_no_secret({"the ConfigError": message}, {"the canary": CANARY})
    if case.value and len(case.value) >= 6 and not case.echoes_value:
        assert_no_secret({"the ConfigError": message}, {"the malformed value": case.value})


@pytest.fixture(scope="module")
def entry_point_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CompletedProcess[str]]:
    """`python -m tria_service` once per chosen case, a few at a time, from an empty directory."""
    chosen = [case for case in CASES if case.id in THROUGH_THE_ENTRY_POINT]

    def start(case: ConfigCase) -> CompletedProcess[str]:
        return run_python(
            "-m", "tria_service", cwd=tmp_path_factory.mktemp("cfg"), env=case.environment()
        )

    with ThreadPoolExecutor(ENTRY_POINT_WORKERS) as pool:
        return dict(zip((c.id for c in chosen), pool.map(start, chosen), strict=True))


def _entry_point_cases() -> Iterator[ConfigCase]:
    return (case for case in CASES if case.id in THROUGH_THE_ENTRY_POINT)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in _entry_point_cases()])
def test_the_service_refuses_to_start_with_exit_code_2(
    entry_point_runs: dict[str, CompletedProcess[str]], case: ConfigCase
) -> None:
    """`python -m tria_service` exits 2 naming the variable, with no traceback and no secret."""
    done = entry_point_runs[case.id]
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_BAD_CONFIG, output
    assert f"\n  - {case.var}: " in done.stderr, output
    assert "1 problem" in done.stderr.splitlines()[0]
    assert "Traceback" not in output
    assert_no_secret({"the service's output": output}, {"the canary": CANARY})
