"""Each benchmark script runs to its table with tiny parameters, so none of them can rot.

Not a speed check: tiny runs may miss a goal (exit 1), so what is asserted is that every
comparison row is printed with a measured ratio, and that nothing crashed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RATIO = r"\d[\d.,e+-]*x"

RUNS = {
    "readiness_cost": (
        ["--seconds", "0.5", "--concurrency", "8", "--low-rate", "20", "--settle", "0"],
        [
            "readiness req/s, 8 clients: monitor vs naive",
            "p50 latency ms: monitor vs naive",
            "p99 latency ms: monitor vs naive",
            "dependency ops/s at full speed: monitor vs naive",
            "monitor dependency ops/s: full speed vs low rate",
            "naive dependency ops/s: full speed vs low rate",
        ],
    ),
    "request_overhead": (
        ["--rounds", "2", "--round-seconds", "0.2", "--warmup", "0"],
        ["p50 latency ms: service vs bare", "p99 latency ms: service vs bare"],
    ),
    "startup": (
        ["--latency", "0.1", "--runs", "1"],
        [
            "startup s, all healthy: concurrent vs sequential",
            "startup s, OpenAI +0.1s: concurrent vs sequential",
            "startup s, every dependency +0.1s: concurrent vs sequential",
        ],
    ),
    "memory": (
        ["--seconds", "0.5", "--rate", "20"],
        ["RSS MB at the end: service vs bare", "RSS MB peak: service vs bare"],
    ),
    "health_overhead": (
        ["--seconds", "0.3", "--concurrency", "4", "--warmup", "0", "--startup-runs", "1"],
        [
            "HTTP req/s: readiness vs liveness",
            "readiness calls/s: monitor vs naive",
            "dependency probes/s: monitor vs naive",
            "startup s: one dep 1 s slow vs 1 s alone",
        ],
    ),
}
INVALID = {
    "readiness_cost": ["--seconds", "0"],
    "request_overhead": ["--rounds", "0"],
    "startup": ["--latency", "0"],
    "memory": ["--rate", "-1"],
    "health_overhead": ["--concurrency", "0"],
}


def run_script(name: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_script_prints_every_ratio(name: str) -> None:
    """A tiny run prints every comparison row with its measured ratio."""
    args, measures = RUNS[name]
    done = run_script(name, args, timeout=180)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    for measure in measures:
        line = rf"{re.escape(measure)}\s*│[^│]+│[^│]+│\s*{RATIO}\s*│"
        assert re.search(line, done.stdout), f"no ratio for {measure!r} in:\n{done.stdout}"


@pytest.mark.parametrize("name", sorted(INVALID))
def test_a_bad_parameter_is_refused_plainly(name: str) -> None:
    """A parameter out of range stops the script before it starts anything, without a traceback."""
    done = run_script(name, INVALID[name], timeout=60)
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert "Traceback" not in done.stderr
