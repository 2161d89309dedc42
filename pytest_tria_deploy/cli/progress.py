"""Per-stage progress of a gate run for ``tria-deploy verify``: a plugin object for ``pytest.main``.

On a terminal it draws a live rich Progress: one row per stage and one for the whole run. Anywhere
else (CI, a log file) it writes one plain line per finished stage through pytest's own terminal
writer, so the lines keep their place among pytest's and carry no control characters. pytest's
per-test letters are blanked while it runs, so the run is not shown twice; its summary (failures,
the stage table, VERDICT) is untouched. The run is quiet (``-q``) unless the user passes ``-v``:
then pytest writes its own header and a line per test, the stage lines fall in between, and no
live display is drawn (pytest's lines would tear it).

The stage of a test comes from the ``tria`` dict the plugin's engine puts on every report of a
staged test (``outcomes.annotate``). Totals come from the collected items; on an xdist controller,
which collects nothing, only the run's total is known (from the ids the workers collected), and a
stage counts as finished when its target moves on to the next stage (one worker runs a target's
stages in order).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import IO

import pytest
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from pytest_tria_deploy.collection import ITEM_INFO
from pytest_tria_deploy.distribute import SUFFIX
from pytest_tria_deploy.engine import PLUGIN_NAME as ENGINE_PLUGIN
from pytest_tria_deploy.outcomes import OutcomeCollector, TestOutcome
from pytest_tria_deploy.runstate import RUN

_KINDS = ("passed", "failed", "skipped", "blocked")
_COLOURS = {"passed": "green", "failed": "red", "skipped": "yellow", "blocked": "red"}


@dataclass
class StageCount:
    """How far one target's stage has got."""

    target: str
    stage: str
    total: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_KINDS, 0))
    seconds: float = 0.0  # the tests' own durations, as the verdict's stage table sums them
    finished: bool = False
    reported: bool = False  # its plain line is written

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def add(self, outcome: TestOutcome) -> None:
        kind = "failed" if outcome.failed else outcome.outcome
        self.counts[kind if kind in self.counts else "passed"] += 1
        self.seconds += outcome.duration
        if self.total is not None and self.done >= self.total:
            self.finished = True

    def summary(self, markup: bool = False) -> str:
        """``3 passed, 1 failed``: the kinds that occurred, in a fixed order."""
        parts = [
            f"[{_COLOURS[kind]}]{n} {kind}[/]" if markup else f"{n} {kind}"
            for kind, n in self.counts.items()
            if n
        ]
        return ", ".join(parts) or "nothing yet"

    def line(self, label: str) -> str:
        """The plain line for a finished stage."""
        of = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        return f"stage {label}: {of} done ({self.summary()}) in {self.seconds:.2f}s"


class StageProgress:
    """Counts each stage's tests as their reports arrive and shows it (see the module docstring)."""

    def __init__(self) -> None:
        self.stages: dict[tuple[str, str], StageCount] = {}
        self.collector = OutcomeCollector()
        self.run_total: int | None = None
        self.terminal: pytest.TerminalReporter | None = None
        self.live: _Live | None = None
        self.several_targets = False
        self._current: dict[str, StageCount] = {}  # each target's running stage

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> None:
        """Quiet (as ``-q``) unless the user asked for more: the stage lines stand in for pytest's
        file names and letters, but a ``-v`` (given after ``--`` or in addopts) keeps pytest's
        line per test. Set before pytest's terminal reporter is made."""
        if config.option.verbose == 0:
            config.option.verbose = -1

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.terminal = config.pluginmanager.get_plugin("terminalreporter")
        interactive = (
            self.terminal is not None
            and sys.stdout.isatty()
            and config.option.capture != "no"  # test output would tear through the display
            and config.get_verbosity() < 0  # pytest writes file names (0) or test lines (-v)
        )
        if interactive:
            self.live = _Live()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """The plugin's header lines (target, stages, gate), which ``-q`` hides with the rest of
        pytest's header; without ``-q`` (a user's ``-v``) pytest writes them itself."""
        run = session.config.stash.get(RUN, None)
        self.several_targets = run is not None and len(run.settings.targets) > 1
        engine = session.config.pluginmanager.get_plugin(ENGINE_PLUGIN)
        quiet = session.config.get_verbosity() < 0
        if quiet and engine is not None and self.terminal is not None:
            for line in engine.pytest_report_header():
                self.terminal.write_line(line)

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> Generator[None, tuple[str, str, object], tuple[str, str, object]]:
        """Keep pytest's category and word (its counts, ``-v``) but not its letter per test."""
        category, _letter, word = yield
        return category, "", word

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Without xdist: every staged item's stage is known, so each stage has its total."""
        for item in session.items:
            info = item.stash.get(ITEM_INFO, None)
            if info is not None:
                stage = self._stage(info.target, info.stage)
                stage.total = (stage.total or 0) + 1
        self.run_total = sum(s.total or 0 for s in self.stages.values())
        self._show()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: Sequence[str]) -> None:
        """On the xdist controller: the staged ids (they carry the group suffix) give the total."""
        if self.run_total is None:
            self.run_total = sum(SUFFIX in nodeid for nodeid in ids)
            self._show()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = self.collector.add(report)
        if outcome is None:
            return
        stage = self._stage(outcome.target, outcome.stage)
        previous = self._current.get(outcome.target)
        if previous is not None and previous is not stage:
            self._finish(previous)
        self._current[outcome.target] = stage
        stage.add(outcome)
        if stage.finished:
            self._finish(stage)
        self._show()

    def pytest_sessionfinish(self) -> None:
        """Before pytest's summary: close every stage and take the live display down."""
        for stage in self.stages.values():
            if stage.done:
                self._finish(stage)
        if self.live is not None:
            self.live.stop()

    def pytest_unconfigure(self) -> None:
        if self.live is not None:
            self.live.close()

    def _stage(self, target: str, name: str) -> StageCount:
        key = (target, name)
        if key not in self.stages:
            self.stages[key] = StageCount(target, name)
        return self.stages[key]

    def _label(self, stage: StageCount) -> str:
        return f"{stage.stage} ({stage.target})" if self.several_targets else stage.stage

    def _finish(self, stage: StageCount) -> None:
        stage.finished = True
        if stage.reported:
            return
        stage.reported = True
        if self.live is None and self.terminal is not None:
            self.terminal.write_line(stage.line(self._label(stage)))

    def _show(self) -> None:
        if self.live is not None:
            self.live.show(
                [(self._label(s), s) for s in self.stages.values()],
                self.run_total,
            )


class _Live:
    """The rich display, drawn on a private copy of the terminal's descriptor.

    pytest's fd capture points descriptor 1 at a temp file while a test runs; the copy still
    points at the terminal, so the display keeps refreshing (the spinner while a stack starts).
    """

    def __init__(self) -> None:
        sys.stdout.flush()
        self.stream: IO[str] = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(file=self.stream),
            redirect_stdout=False,
            redirect_stderr=False,
            transient=True,  # pytest's stage table and VERDICT take its place at the end
        )
        self.tasks: dict[str, TaskID] = {}  # by stage label
        self.overall: TaskID | None = None
        self.started = False

    def show(self, rows: list[tuple[str, StageCount]], run_total: int | None) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        for label, stage in rows:
            if label not in self.tasks:
                self.tasks[label] = self.progress.add_task(label, start=False, counts="")
            task = self.tasks[label]
            if stage.done:
                self.progress.start_task(task)
            self.progress.update(
                task, total=stage.total, completed=stage.done, counts=stage.summary(markup=True)
            )
            if stage.finished:
                self.progress.stop_task(task)
        self._overall(rows, run_total)

    def _overall(self, rows: list[tuple[str, StageCount]], run_total: int | None) -> None:
        done = sum(stage.done for _, stage in rows)
        if self.overall is None:
            self.overall = self.progress.add_task("[bold]all stages[/]", counts="")
        failed = sum(stage.counts["failed"] for _, stage in rows)
        counts = f"[red]{failed} failed[/]" if failed else ""
        self.progress.update(self.overall, total=run_total, completed=done, counts=counts)

    def stop(self) -> None:
        if self.started:
            self.progress.refresh()
            self.progress.stop()
            self.started = False
        self.stream.flush()

    def close(self) -> None:
        self.stop()
        self.stream.close()
