"""summary.md: the run in Markdown for the person on call (and GitHub's job summary).

It is built from the verdict dict (already redacted) and the run's settings: the headline, each
target's stage table, the failures and blocked stages with their reasons, the warnings, and each
budget checked against what was measured. Budget comparisons come from the properties
``warn_over_budget`` records (``budget.<name>.measured_ms``, ``.limit_ms``, ``.check``), so no
mapping from budget to measurement is kept here; the limits of budgets nothing checked come from
the target's settings. The whole text is redacted once more before it is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeGuard

from pytest_tria_deploy.helpers import BUDGET_PREFIX
from pytest_tria_deploy.redact import MASK, redact
from pytest_tria_deploy.report.writing import write_atomic
from pytest_tria_deploy.settings import TriaSettings

SUMMARY_FILE = "summary.md"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
_MEASURED = re.compile(rf"^{re.escape(BUDGET_PREFIX)}(?P<name>.+)\.measured_ms$")
_MARK = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "BLOCKED": "⛔"}
_FAILED = ("failed", "error")


@dataclass(frozen=True)
class BudgetCheck:
    """One comparison of a measured value with a budget, as a test recorded it."""

    budget: str
    check: str
    measured_ms: float
    limit_ms: float
    nodeid: str

    @property
    def over(self) -> bool:
        return self.measured_ms > self.limit_ms


def cell(value: object) -> str:
    """``value`` redacted, as one Markdown table cell: HTML and Markdown's active characters
    escaped (pipes too, which would end the cell), its lines joined by <br>.

    The redactor's mask stays as it is, so redacting the finished text again changes nothing.
    """
    parts = []
    for part in redact(str(value)).split(MASK):
        part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for char in "\\|`*[]":
            part = part.replace(char, "\\" + char)
        parts.append(part)
    return "<br>".join(line.strip() for line in MASK.join(parts).splitlines())


def inline(value: object) -> str:
    """``value`` as running text in a list item: one line, no Markdown or HTML of its own."""
    return " ".join(cell(value).split("<br>"))


def budget_checks(target: Mapping[str, Any]) -> list[BudgetCheck]:
    """Every budget comparison the target's tests recorded, in the order they ran."""
    found = []
    for test in _tests(target):
        properties: Mapping[str, Any] = test.get("properties") or {}
        for key, measured in properties.items():
            match = _MEASURED.match(key)
            limit = properties.get(f"{BUDGET_PREFIX}{match['name']}.limit_ms") if match else None
            if match is None or not is_number(measured) or not is_number(limit):
                continue
            check = properties.get(f"{BUDGET_PREFIX}{match['name']}.check", match["name"])
            found.append(
                BudgetCheck(
                    match["name"], str(check), float(measured), float(limit), test["nodeid"]
                )
            )
    return found


def render_summary(verdict: Mapping[str, Any], settings: TriaSettings) -> str:
    """The whole summary.md text: every value is redacted in ``cell``, and the text once more."""
    lines = _headline(verdict)
    for target in verdict.get("targets", []):
        lines += _target_section(target, settings)
    return redact("\n".join(lines).rstrip("\n") + "\n")


def write_summary(text: str, report_dir: Path) -> Path:
    """Write ``text`` (from ``render_summary``) to ``<report dir>/summary.md``, atomically;
    returns its path."""
    return write_atomic(report_dir / SUMMARY_FILE, text)


def append_step_summary(text: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append ``text`` to GitHub Actions' job summary file when ``GITHUB_STEP_SUMMARY`` names
    one (several runs in a job each add theirs); returns its path, or None outside Actions."""
    where = environ.get(STEP_SUMMARY_ENV, "")
    if not where:
        return None
    path = Path(where)
    with path.open("a", encoding="utf-8") as out:
        out.write(text if text.startswith("\n") else "\n" + text)
    return path


def _headline(verdict: Mapping[str, Any]) -> list[str]:
    status = str(verdict.get("verdict", ""))
    targets = ", ".join(
        f"{t.get('target', '')} ({t.get('provider', '')})" for t in verdict.get("targets", [])
    )
    tool = verdict.get("tool") or {}
    rows = [
        ("verdict", f"{status} (exit code {verdict.get('exit_code', '')})"),
        ("reason", verdict.get("reason") or "all checks passed"),
        ("target" if len(verdict.get("targets", [])) < 2 else "targets", targets),
        ("gate", verdict.get("gate", "")),
        ("duration", _run_duration(verdict)),
        ("started", verdict.get("started", "")),
        ("suites", verdict.get("suites_git_sha") or "not in a git work tree"),
        ("tool", f"{tool.get('name', 'tria-deploy')} {tool.get('version', '')}"),
    ]
    on = cell(verdict.get("target", ""))
    return [
        f"# {_MARK.get(status, '')} tria-deploy: {cell(status)} on {on}",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {name} | {cell(value)} |" for name, value in rows),
        "",
    ]


def _target_section(target: Mapping[str, Any], settings: TriaSettings) -> list[str]:
    name = str(target.get("target", ""))
    status = str(target.get("verdict", ""))
    protected = ", protected" if target.get("protected") else ""
    lines = [
        f"## {_MARK.get(status, '')} {cell(name)}: {cell(status)}",
        "",
        f"Provider {cell(target.get('provider', ''))}{protected}."
        + (f" {inline(target['reason'])}" if target.get("reason") else ""),
        "",
        *_stage_table(target),
    ]
    lines += _listing("Failures", list(_failures(target)))
    lines += _listing("Blocked stages", list(_blocked(target)))
    lines += _listing("Warnings", list(_warnings(target)))
    lines += _budget_section(target, settings, name)
    return lines


def _stage_table(target: Mapping[str, Any]) -> list[str]:
    lines = [
        "| stage | status | passed | failed | skipped | blocked | duration |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stage in target.get("stages", []):
        critical = "" if stage.get("critical", True) else " (non-critical)"
        lines.append(
            f"| {cell(stage.get('name', ''))}{critical} | {cell(stage.get('status', ''))} "
            f"| {stage.get('passed', 0)} | {stage.get('failed', 0)} | {stage.get('skipped', 0)} "
            f"| {stage.get('blocked', 0)} | {_seconds(stage.get('duration', 0.0))} |"
        )
    return [*lines, ""]


def _failures(target: Mapping[str, Any]) -> Iterator[str]:
    for stage in target.get("stages", []):
        for test in stage.get("tests", []):
            if test.get("outcome") in _FAILED:
                yield (
                    f"**{inline(stage.get('name', ''))}** {inline(test.get('nodeid', ''))} "
                    f"({test['outcome']}): {inline(test.get('reason') or 'no reason given')}"
                )


def _blocked(target: Mapping[str, Any]) -> Iterator[str]:
    for stage in target.get("stages", []):
        if stage.get("status") == "BLOCKED":
            count = stage.get("blocked", 0)
            tests = f"{count} test{'s' if count != 1 else ''} not run"
            yield (
                f"**{inline(stage.get('name', ''))}** ({tests}): "
                f"{inline(stage.get('reason') or 'no reason given')}"
            )


def _warnings(target: Mapping[str, Any]) -> Iterator[str]:
    for stage in target.get("stages", []):
        for test in stage.get("tests", []):
            for warning in test.get("warnings", []):
                yield (
                    f"**{inline(stage.get('name', ''))}** {inline(test.get('nodeid', ''))}: "
                    f"{inline(warning)}"
                )


def _listing(title: str, items: Sequence[str]) -> list[str]:
    if not items:
        return []
    return [f"### {title}", "", *(f"- {item}" for item in items), ""]


def _budget_section(target: Mapping[str, Any], settings: TriaSettings, name: str) -> list[str]:
    checks = budget_checks(target)
    lines = ["### Budgets", ""]
    if checks:
        lines += [
            "| budget | check | measured | limit | result | test |",
            "| --- | --- | ---: | ---: | --- | --- |",
        ]
        lines += [
            f"| {cell(c.budget)} | {cell(c.check)} | {format_ms(c.measured_ms)} ms "
            f"| {c.limit_ms:g} ms | {'over' if c.over else 'OK'} | {cell(c.nodeid)} |"
            for c in checks
        ]
        lines.append("")
    else:
        lines += ["No budget was checked in this run.", ""]
    unchecked = [
        f"{budget} {_budget_value(budget, limit)}"
        for budget, limit in _target_budgets(settings, name).items()
        if budget not in {c.budget for c in checks}
    ]
    if unchecked:
        lines += [f"Not checked in this run: {inline(', '.join(unchecked))}.", ""]
    return lines


def format_ms(value: float) -> str:
    """Milliseconds to read at a glance: two decimals below 10 ms (a sub-millisecond Redis is
    not 0.2), one above."""
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _target_budgets(settings: TriaSettings, name: str) -> dict[str, float]:
    """The target's budgets by name (built-in and extra ones), or none for an unknown target."""
    try:
        budgets = settings.target(name).budgets
    except StopIteration:
        return {}
    return {key: float(value) for key, value in budgets.model_dump().items() if is_number(value)}


def _budget_value(budget: str, value: float) -> str:
    unit = " ms" if budget.endswith("_ms") else " s" if budget.endswith("_s") else ""
    return f"{value:g}{unit}"


def _tests(target: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for stage in target.get("stages", []):
        yield from stage.get("tests", [])


def is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number (a bool is not one, though Python calls it an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def run_seconds(verdict: Mapping[str, Any]) -> float | None:
    """The run's wall time, started to finished (what summary.md and history.jsonl both give),
    or None when the verdict lacks either time."""
    try:
        started = datetime.fromisoformat(str(verdict["started"]))
        finished = datetime.fromisoformat(str(verdict["finished"]))
    except (KeyError, ValueError):
        return None
    return (finished - started).total_seconds()


def _run_duration(verdict: Mapping[str, Any]) -> str:
    seconds = run_seconds(verdict)
    return "unknown" if seconds is None else _seconds(seconds)


def _seconds(value: object) -> str:
    seconds = float(value) if is_number(value) else 0.0
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"
