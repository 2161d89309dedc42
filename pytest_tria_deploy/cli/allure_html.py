"""The HTML report: Allure 3's CLI (the npm package ``allure``, no Java) run through ``npx``.

Allure 3's ``allure2`` report is used, as one self-contained file (``--single-file``): it is the
one whose analytics tag ``ALLURE_NO_ANALYTICS=true`` removes (the ``awesome`` report loads Google
Tag Manager whatever is set, allure-framework/allure3#476), so the file opens offline and calls
nowhere. It also shows the categories, environment and executor files the plugin writes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ALLURE_PACKAGE = "allure@3"  # a major pinned: npx takes the newest 3.x it has, or fetches it
MIN_NODE = 20
REPORT_DIR = "allure-report"
_NODE_VERSION = re.compile(r"v(\d+)\.")


class NodeMissing(RuntimeError):
    """Node.js (20+) or npx is not on PATH; the message says what was found."""


@dataclass(frozen=True)
class AllureRun:
    """What generating the report did: the command, its exit code and its output."""

    command: list[str]
    returncode: int
    output: str


def find_npx() -> str:
    """The npx to run Allure with; raises NodeMissing when Node.js 20+ or npx is absent."""
    node = shutil.which("node")
    npx = shutil.which("npx")
    if node is None or npx is None:
        missing = " and ".join(name for name, path in (("node", node), ("npx", npx)) if not path)
        raise NodeMissing(f"{missing} not found on PATH")
    try:
        shown = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeMissing(f"{node} --version failed: {exc}") from None
    match = _NODE_VERSION.match(shown)
    if match is None or int(match[1]) < MIN_NODE:
        raise NodeMissing(f"Node.js {shown or '(unknown version)'} is older than {MIN_NODE}")
    return npx


def allure_command(npx: str, package: str, results: Path, output: Path, name: str) -> list[str]:
    """``npx --yes <package> allure2 --single-file ...`` for these directories (made absolute:
    Allure reads relative ones from its --cwd)."""
    results, output = results.resolve(), output.resolve()
    return [
        npx,
        "--yes",
        package,
        "allure2",
        "--single-file",
        "--output",
        str(output),
        "--report-name",
        name,
        "--cwd",  # no allurerc from wherever the user stands changes the report
        str(output.parent),
        str(results),
    ]


def generate(npx: str, package: str, results: Path, output: Path, name: str) -> AllureRun:
    """Write a single-file report of ``results`` into ``output`` (the caller has removed the old
    one already, before it knew whether Node.js is there)."""
    command = allure_command(npx, package, results, output, name)
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true", "NO_COLOR": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, stdin=subprocess.DEVNULL
    )
    return AllureRun(command, done.returncode, (done.stdout + done.stderr).strip())


def has_results(results: Path) -> bool:
    """Whether ``results`` holds at least one Allure test result."""
    return results.is_dir() and any(results.glob("*-result.json"))
