"""The stage table and the verdict line at the end of the terminal output."""

from __future__ import annotations

import pytest

from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.report.verdict import Status, Verdict

_PLANNED = frozenset({"provider", "starts"})  # the header said these; the summary shows what ran
_COLUMNS = ("stage", "passed", "failed", "skipped", "blocked", "duration", "status")
_COLOURS = {
    Status.PASS: {"green": True},
    Status.WARN: {"yellow": True},
    Status.FAIL: {"red": True},
    Status.BLOCKED: {"red": True},
}


def write_verdict_table(terminal: pytest.TerminalReporter, verdict: Verdict, path: str) -> None:
    """One table per target, then the overall verdict and its first reason."""
    for target in verdict.targets:
        protected = ", protected" if target.protected else ""
        terminal.write_sep("=", f"tria-deploy: {target.name} ({target.provider}{protected})")
        for part, fact in target.provided.items():
            if part not in _PLANNED:
                terminal.write_line(redact(f"{part}: {fact}"))
        rows = [
            (
                s.stage.name + ("" if s.critical else " (non-critical)"),
                str(s.count("passed")),
                str(s.count("failed", "error")),
                str(s.count("skipped")),
                str(s.count("blocked")),
                f"{s.duration:.2f}s",
                s.status.value,
            )
            for s in target.stages
        ]
        widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
        terminal.write_line(_row(_COLUMNS, widths), bold=True)
        for row, stage in zip(rows, target.stages, strict=True):
            terminal.write_line(_row(row, widths), **_COLOURS.get(stage.status, {}))
    line = f"VERDICT: {verdict.verdict.value}"
    if verdict.reason:
        line += f" - {verdict.reason}"
    terminal.write_line(redact(line), bold=True, **_COLOURS.get(verdict.verdict, {}))
    terminal.write_line(f"verdict written to {path}")


def _row(cells: tuple[str, ...], widths: list[int]) -> str:
    first, *rest = cells
    return "  ".join(
        [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
    )


def write_usage_errors(terminal: pytest.TerminalReporter, text: str) -> None:
    """Problems found where a usage error could not stop the run (an xdist worker)."""
    terminal.write_sep("=", "tria-deploy: usage errors", red=True)
    for line in text.splitlines():
        terminal.write_line(f"ERROR: {line}" if line.startswith("tria-deploy") else line, red=True)
