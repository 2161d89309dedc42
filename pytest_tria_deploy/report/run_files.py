"""Once a run has its verdict: summary.md, a line per target in history.jsonl, and GitHub's job
summary when ``GITHUB_STEP_SUMMARY`` is set.

A file that cannot be written never changes the verdict or the exit code: the problem is said
at the end of the terminal summary instead. ``--collect-only`` (what IDEs run all the time) runs
no gate: it leaves the last run's files alone and adds nothing to them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import Timeout

from pytest_tria_deploy.report.history import HISTORY_FILE, append_history
from pytest_tria_deploy.report.summary import (
    STEP_SUMMARY_ENV,
    SUMMARY_FILE,
    append_step_summary,
    render_summary,
    write_summary,
)
from pytest_tria_deploy.report.writing import WriteProblems
from pytest_tria_deploy.runstate import settings_of


class RunFiles(WriteProblems):
    """Writes the run's human files from the verdict hook (called on the controller only)."""

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """A summary left by an earlier run must never pass for this run's."""
        config = session.config
        if hasattr(config, "workerinput") or config.option.collectonly:
            return
        try:
            (settings_of(config).report_dir / SUMMARY_FILE).unlink(missing_ok=True)
        except OSError as exc:
            self.note(f"an earlier {SUMMARY_FILE} was not removed: {exc}")

    def pytest_tria_verdict(self, config: pytest.Config, verdict: dict[str, Any]) -> None:
        if config.option.collectonly:
            return
        settings = settings_of(config)
        text = render_summary(verdict, settings)
        writes: tuple[tuple[str, Callable[[], Path | None]], ...] = (
            (SUMMARY_FILE, lambda: write_summary(text, settings.report_dir)),
            (HISTORY_FILE, lambda: append_history(verdict, settings.report_dir)),
            (STEP_SUMMARY_ENV, lambda: append_step_summary(text)),
        )
        for name, write in writes:
            try:
                write()
            except (OSError, Timeout) as exc:
                self.note(f"{name} was not written: {type(exc).__name__}: {exc}")
