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
"""

from __future__ import annotations

import shutil

import pytest

from pytest_tria_deploy.report import junit
from pytest_tria_deploy.settings import TriaSettings

ALLURE_DIR = "allure-results"
JUNIT_FILE = "junit.xml"


def apply(config: pytest.Config, settings: TriaSettings) -> None:
    """Point allure-pytest and pytest's JUnit writer at the report dir, unless told otherwise."""
    junit.default_family(config)
    if settings.no_default_reports:
        return
    option = config.option
    if config.pluginmanager.hasplugin("allure_pytest") and not option.allure_report_dir:
        results = settings.report_dir / ALLURE_DIR
        option.allure_report_dir = str(results)
        option.clean_alluredir = False
        if not hasattr(config, "workerinput"):
            shutil.rmtree(results, ignore_errors=True)
    if hasattr(option, "xmlpath") and not option.xmlpath:
        option.xmlpath = str(settings.report_dir / JUNIT_FILE)
