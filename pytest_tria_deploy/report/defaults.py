"""Where a tria run's Allure results and JUnit XML go when the user names no place for them.

Every active run writes ``<report dir>/allure-results`` and ``<report dir>/junit.xml`` with no
flag, unless the user gave ``--alluredir`` / ``--junitxml`` (theirs win) or
``--tria-no-default-reports``. This runs from the plugin's ``pytest_configure``, which is
``tryfirst``: allure-pytest and pytest's junitxml read their options in their own (plain)
``pytest_configure``, after it.

The Allure directory is emptied here, once, by the controller (or the only process), before any
test runs, so the results in it are this run's. allure-pytest's own ``--clean-alluredir`` is
turned off for it: under xdist every worker would empty the directory as it starts, deleting
what a faster worker had already written.

Both reports are optional next to the verdict, so a place that cannot be written (a directory
named ``junit.xml``, a file named ``allure-results``, no permission) skips that report, says so
at the end of the terminal summary, and leaves the verdict and the exit code alone: a gate must
not lose its verdict, or crash, over a report nobody asked for by name. ``--collect-only``
(what IDEs run all the time) runs no gate: it gets no default reports and deletes nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from pytest_tria_deploy.report import junit
from pytest_tria_deploy.report.writing import WriteProblems
from pytest_tria_deploy.settings import TriaSettings

ALLURE_DIR = "allure-results"
JUNIT_FILE = "junit.xml"
REMEDY = "remove what is in the way, or pass --tria-report-dir, --alluredir or --junitxml"


def apply(config: pytest.Config, settings: TriaSettings) -> None:
    """Point allure-pytest and pytest's JUnit writer at the report dir, unless told otherwise."""
    junit.default_family(config)
    option = config.option
    if settings.no_default_reports or option.collectonly:
        return
    is_worker = hasattr(config, "workerinput")
    skipped = WriteProblems()
    if config.pluginmanager.hasplugin("allure_pytest") and not option.allure_report_dir:
        results = settings.report_dir / ALLURE_DIR
        if not is_worker:
            shutil.rmtree(results, ignore_errors=True)
        problem = _unusable_dir(results)
        if problem is None:
            option.allure_report_dir = str(results)
            option.clean_alluredir = False
        else:
            skipped.note(f"{ALLURE_DIR} was not written: {problem}; {REMEDY}")
    if hasattr(option, "xmlpath") and not option.xmlpath and not is_worker:
        path = settings.report_dir / JUNIT_FILE
        problem = _unusable_file(path)
        if problem is None:
            option.xmlpath = str(path)
        else:
            skipped.note(f"{JUNIT_FILE} was not written: {problem}; {REMEDY}")
    if skipped.problems and not is_worker:
        config.pluginmanager.register(skipped, "tria_deploy.default_reports")


def _unusable_dir(path: Path) -> str | None:
    """Why allure-pytest could not write into ``path`` (created here when it can be), or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # unnamed: xdist workers probe at once
            pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _unusable_file(path: Path) -> str | None:
    """Why pytest's JUnit writer could not write ``path`` at the end of the run, or None; the
    file is opened for appending, so an earlier one is kept as it is until then."""
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not existed:
        path.unlink()
    return None
