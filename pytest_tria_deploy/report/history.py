"""history.jsonl: one line per run and target, so a target's trend is visible across runs.

Each line is ``{"time", "target", "verdict", "exit_code", "duration_s", "stages": {stage:
{"status", "duration_s"}}, "latencies_ms": {name: ms}, "suites_git_sha", "tool_version"}``.
The key latencies are the figures the target's budgets were held to (what ``warn_over_budget``
recorded), by budget name; the worst when several checks share a budget (two OpenAI calls).
Appends happen under a file lock, so two runs finishing at once never interleave; a line that
cannot be read is skipped with a note.
``tria-deploy report --trend`` prints ``trend_table(read_history(...))``.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from rich import box
from rich.table import Table
from rich.text import Text

from pytest_tria_deploy.redact import redact_tree
from pytest_tria_deploy.report.summary import budget_checks, format_ms, is_number, run_seconds

HISTORY_FILE = "history.jsonl"
LOCK_TIMEOUT_SECONDS = 10.0
STEADY_FRACTION = 0.10  # a change within ±10 % of the previous run reads as steady
_REQUIRED = ("time", "target", "verdict")
_VERDICT_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "red", "BLOCKED": "red"}

log = logging.getLogger(__name__)


def history_entries(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lines one run adds: one per target, redacted. ``duration_s`` is the run's wall time
    (started to finished, as summary.md shows it); each stage's is the sum of its tests'."""
    tool = verdict.get("tool") or {}
    wall = run_seconds(verdict)
    entries = []
    for target in verdict.get("targets", []):
        stages = target.get("stages", [])
        entry = {
            "time": verdict.get("finished") or verdict.get("started"),
            "target": target.get("target"),
            "verdict": target.get("verdict"),
            "exit_code": verdict.get("exit_code"),
            "duration_s": None if wall is None else round(wall, 3),
            "stages": {
                s["name"]: {
                    "status": s.get("status"),
                    "duration_s": round(float(s.get("duration", 0.0)), 3),
                }
                for s in stages
            },
            "latencies_ms": _latencies(target),
            "suites_git_sha": verdict.get("suites_git_sha"),
            "tool_version": tool.get("version"),
        }
        entries.append(redact_tree(entry))
    return entries


def append_history(verdict: Mapping[str, Any], report_dir: Path) -> Path:
    """Append this run's lines to ``<report_dir>/history.jsonl`` and return its path.

    Raises OSError when the file cannot be written and filelock's Timeout when another run holds
    the lock for longer than LOCK_TIMEOUT_SECONDS.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / HISTORY_FILE
    text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in history_entries(verdict))
    with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_SECONDS), path.open("a+b") as out:
        # A run killed mid-write leaves a line with no end: start ours on a line of its own.
        out.seek(0, 2)
        if out.tell():
            out.seek(-1, 2)
            if out.read(1) != b"\n":
                text = "\n" + text
        out.write(text.encode("utf-8"))
    return path


def read_history(
    report_dir: Path, target: str | None = None, last: int = 10
) -> list[dict[str, Any]]:
    """The last ``last`` entries (oldest first), of ``target`` only when given.

    A line that is not a history entry is skipped with a warning naming its number (never its
    text); a missing file is an empty history.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1, got {last}")
    path = report_dir / HISTORY_FILE
    if not path.is_file():
        return []
    lines = _read_lines(path)
    entries = [
        entry for entry in _parse(lines, path) if target is None or entry["target"] == target
    ]
    return entries[-last:]


def trend_table(entries: list[dict[str, Any]]) -> Table:
    """The runs as rows (time, verdict, duration, then each latency), each latency compared
    with the previous run of the same target: ↑ slower, ↓ faster, → within ±10 %."""
    targets = list(dict.fromkeys(str(e.get("target", "")) for e in entries))
    names = list(dict.fromkeys(name for e in entries for name in _entry_latencies(e)))
    title = f"tria-deploy history: {', '.join(targets)}" if targets else "tria-deploy history"
    with_median = len(entries) > 1 and bool(names) and len(targets) == 1
    caption = (
        f"latencies in ms, each against the target's previous run "
        f"(↑ slower, ↓ faster, → within ±{STEADY_FRACTION:.0%})"
    )
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        caption=caption + ("; the last row is their median" if with_median else ""),
    )
    table.add_column("time", min_width=10)
    if len(targets) > 1:
        table.add_column("target", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for name in names:
        # Several latencies share a terminal's width: names wrap at their words, nothing is cut.
        header = name.removesuffix("_ms").replace("_", " ")
        table.add_column(header, justify="right", overflow="fold")
    previous: dict[str, dict[str, float]] = {}
    for entry in entries:
        target = str(entry.get("target", ""))
        latencies = _entry_latencies(entry)
        before = previous.get(target, {})
        verdict = str(entry.get("verdict", ""))
        row: list[str | Text] = [str(entry.get("time", ""))[:16].replace("T", " ")]
        if len(targets) > 1:
            row.append(target)
        row += [Text(verdict, style=_VERDICT_STYLE.get(verdict, "")), _duration(entry)]
        row += [_latency_cell(latencies.get(n), before.get(n)) for n in names]
        table.add_row(*row)
        previous[target] = {**before, **latencies}
    if with_median:
        medians = [_median(entries, n) for n in names]
        table.add_section()
        table.add_row(Text("median", style="bold"), "", "", *medians)
    return table


def _latencies(target: Mapping[str, Any]) -> dict[str, float]:
    """The measured value of each budget checked, in the order the checks ran."""
    found: dict[str, float] = {}
    for check in budget_checks(target):
        found[check.budget] = max(check.measured_ms, found.get(check.budget, check.measured_ms))
    return found


def _read_lines(path: Path) -> list[str]:
    """The file's lines, read under the append lock when it can be taken, so a line being
    written is never read half-way (a read-only report dir is read without it)."""
    lock = FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_SECONDS)
    try:
        lock.acquire()
    except (Timeout, OSError):
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    finally:
        lock.release()


def _parse(lines: list[str], path: Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in _REQUIRED)):
            log.warning("%s line %d is not a history entry; skipped", path, number)
            continue
        yield entry


def _entry_latencies(entry: Mapping[str, Any]) -> dict[str, float]:
    latencies = entry.get("latencies_ms")
    if not isinstance(latencies, dict):
        return {}
    return {str(k): float(v) for k, v in latencies.items() if is_number(v)}


def _latency_cell(value: float | None, before: float | None) -> Text:
    if value is None:
        return Text("–", style="dim")
    text = Text(format_ms(value))
    if before is None or before <= 0:
        return text
    change = (value - before) / before
    if abs(change) <= STEADY_FRACTION:
        text.append(f"\n→{abs(change):.0%}", style="dim")
    elif change > 0:
        text.append(f"\n↑{change:.0%}", style="red")
    else:
        text.append(f"\n↓{-change:.0%}", style="green")
    return text


def _median(entries: list[dict[str, Any]], name: str) -> Text:
    values = [v for e in entries if (v := _entry_latencies(e).get(name)) is not None]
    return Text(format_ms(statistics.median(values)), style="bold") if values else Text("")


def _duration(entry: Mapping[str, Any]) -> str:
    value = entry.get("duration_s")
    return f"{float(value):.1f} s" if is_number(value) else "–"
