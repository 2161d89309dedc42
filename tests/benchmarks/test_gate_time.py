"""benchmarks/gate_time.py runs to its tables with one run of each kind, and stays bounded.

Not a speed check: what is asserted is that every kind of run prints measured seconds, that every
comparison prints its ratio, that no credential reaches the output, and that a pytest run over
its timeout is ended with every process it started.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
SECONDS = r"\d+\.\d\d"
RATIO = r"\d[\d.,e+-]*x"
KIND_ROWS = [
    "whole suite",
    "whole suite, --tria-no-default-reports",
    "-m smoke",
    "-n 2",
    "--co -q",
    "-m smoke, no hypothesis/schemathesis",
    "-m smoke, PYTHONDONTWRITEBYTECODE=1",
    "pytest alone: --co -q, empty dir",
]
COMPARISONS = [
    "whole suite: wall s vs goal",
    "-m smoke: wall s vs goal",
    "whole suite wall s: -n 2 vs serial",
    "whole suite wall s: with vs without Allure results and JUnit XML",
    "-m smoke wall s: with vs without hypothesis/schemathesis",
    "-m smoke wall s: without vs with a bytecode cache",
    "wall s: --co -q vs -m smoke",
    "wall s: pytest alone vs -m smoke",
]
# A password in a URL, or the local stack's OpenAI key.
CREDENTIAL = re.compile(r"://[^\s:/@]*:[^\s@*]+@|sk-tria-local-[0-9a-f]")
# tests/benchmarks is itself a package named ``benchmarks`` here: the script's module is reached
# in a process of its own, run from the repository root.
RUN_PYTEST = """
import dataclasses, json, os, sys
from benchmarks.gate_time import run_pytest
timing = run_pytest(json.loads(sys.argv[1]), dict(os.environ), float(sys.argv[2]))
print(json.dumps({**dataclasses.asdict(timing), "passed": timing.passed}))
"""


def run_script(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gate_time", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def timed_pytest(args: list[str], timeout: float) -> dict[str, Any]:
    """gate_time's ``run_pytest(args, timeout=timeout)``; its Timing as a dict."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_PYTEST, json.dumps(args), str(timeout)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=True,
    )
    timing: dict[str, Any] = json.loads(done.stdout)
    return timing


def test_one_run_of_each_kind_prints_every_figure() -> None:
    """Each kind's row has wall and pytest seconds; each comparison its ratio; no secret shows."""
    done = run_script(["--runs", "1", "--no-warm-up"], timeout=600)
    out = done.stdout
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert re.search(r"before: load average \d", out), out
    for label in KIND_ROWS:
        figures = rf"\s*│\s*{SECONDS}" * 5
        row = rf"│ {re.escape(label)}\s*{figures}\s*│\s*\S"
        assert re.search(row, out), f"no measured row for {label!r} in:\n{out}"
    for measure in COMPARISONS:
        line = rf"{re.escape(measure)}\s*│[^│]+│[^│]+│\s*{RATIO}\s*│"
        assert re.search(line, out), f"no ratio for {measure!r} in:\n{out}"
    assert not CREDENTIAL.search(out + done.stderr)


def test_a_bad_parameter_is_refused_plainly() -> None:
    """--runs 0 stops the script before it starts anything, without a traceback."""
    done = run_script(["--runs", "0"], timeout=60)
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_reports_pytest_own_duration(tmp_path: Path) -> None:
    """pytest's summary line gives its duration and outcome next to the wall time."""
    (tmp_path / "test_quick.py").write_text("def test_quick():\n    assert True\n")
    timing = timed_pytest([str(tmp_path), "-p", "no:cacheprovider"], 120)
    assert timing["passed"], timing["output"][-3000:]
    assert timing["outcome"] == "1 passed"
    assert 0 <= timing["reported"] <= timing["wall"]


def test_a_run_over_its_timeout_is_ended_with_what_it_started(tmp_path: Path) -> None:
    """A hanging run is killed at its timeout with its whole process group (its xdist workers and
    what they started), and reported as timed out."""
    pid_file = tmp_path / "started.pid"
    (tmp_path / "test_hangs.py").write_text(
        "import pathlib, subprocess, sys, time\n"
        "def test_hangs():\n"
        "    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"    pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))\n"
        "    time.sleep(300)\n"
    )
    timing = timed_pytest([str(tmp_path), "-p", "no:cacheprovider", "-n", "1"], 12)
    assert timing["returncode"] is None
    assert timing["outcome"] == "timed out after 12 s"
    started = int(pid_file.read_text())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and alive(started):
        time.sleep(0.2)
    assert not alive(started)


def alive(pid: int) -> bool:
    try:
        status = str(psutil.Process(pid).status())
    except psutil.NoSuchProcess:
        return False
    return status != str(psutil.STATUS_ZOMBIE)
