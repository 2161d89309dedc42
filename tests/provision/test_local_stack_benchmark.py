"""benchmarks/local_stack.py measures without changing where later starts put their data."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pytest_tria_deploy.provision.managed import RUNTIME_DIR_ENV

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "local_stack.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_stack_benchmark", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_first_start_measure_restores_the_callers_runtime_dir(
    tmp_path: Path, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It points $TRIA_RUNTIME_DIR at an empty cache for one start, then sets it back."""
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(isolated_state))
    bench = _benchmark()
    timings = bench.Bench(tmp_path)
    bench.first_postgres(timings)
    assert len(timings.timings["postgres, first start on a machine"]) == 1
    assert os.environ[RUNTIME_DIR_ENV] == str(isolated_state)


def test_zero_runs_is_refused_plainly() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--runs must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
