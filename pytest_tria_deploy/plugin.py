"""pytest entry point: options, ini keys, markers and activation; the work is in engine.py.

pytest loads this module for every run (pytest11 entry point), so the plugin is ACTIVE only when
the run asks for it; an unrelated project is left exactly as it was. A run is active when any of:

- a ``--tria-*`` option is given (command line or ``addopts``);
- a ``tria_*`` ini key is set (ini file, ``[tool.pytest.ini_options]`` or ``-o``);
- the rootdir holds a ``tria.toml`` (it may be empty), or its ``pyproject.toml`` a ``[tool.tria]``.

An inactive run gets the options, ini keys and the ``tria_stage``/``destructive`` markers, and
nothing else: no header, ordering, fixtures, gate, verdict, asyncio defaults, ``--dist`` change or
redaction. A test marked ``tria_stage`` in an inactive run fails at setup saying how to activate
(a marker alone is not a trigger: the decision must be made before collection, and xdist's
controller never collects). Heavy modules (pydantic, the engine, fixtures) load only when active.
"""

from __future__ import annotations

import contextlib

import pytest

from pytest_tria_deploy import activation, aio, hookspecs

MARKERS = (
    "tria_stage(name): put the test in a tria-deploy stage (preflight, environment, database, "
    "redis, external, components, health, smoke, or a stage from tria.toml)",
    "destructive: the test writes to the target; skipped on protected targets unless "
    "--tria-allow-destructive is given",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tria-deploy", "deployment verification (tria-deploy)")
    group.addoption(
        "--tria-target",
        action="append",
        metavar="NAME",
        help="target to verify (default: local); repeat to verify several. ini: tria_target",
    )
    group.addoption(
        "--tria-config",
        metavar="PATH",
        help="targets file (default: tria.toml, else [tool.tria] in pyproject.toml). "
        "ini: tria_config",
    )
    group.addoption(
        "--tria-stage",
        action="append",
        metavar="NAME",
        help="run only this stage and the stages it depends on; repeatable. ini: tria_stage",
    )
    group.addoption(
        "--tria-no-deps",
        action="store_true",
        default=None,
        help="with --tria-stage: trust the stages it depends on instead of running them. "
        "ini: tria_no_deps",
    )
    group.addoption(
        "--tria-gate",
        metavar="MODE",
        help="strict (a warning fails the gate), normal (default: a failure blocks the stages "
        "that depend on it) or off (every stage runs, none blocked; the verdict and exit code "
        "still report failures). ini: tria_gate",
    )
    group.addoption(
        "--tria-report-dir",
        metavar="PATH",
        help="where the reports go: verdict.json, junit.xml, allure-results/ and the rest "
        "(default: reports/). ini: tria_report_dir",
    )
    group.addoption(
        "--tria-allow-destructive",
        action="store_true",
        default=None,
        help="run @pytest.mark.destructive tests on protected targets too. "
        "ini: tria_allow_destructive",
    )
    group.addoption(
        "--tria-no-default-reports",
        action="store_true",
        default=None,
        help="write no Allure results (<report dir>/allure-results) or JUnit XML "
        "(<report dir>/junit.xml) unless asked with --alluredir / --junitxml; verdict.json is "
        "always written. ini: tria_no_default_reports",
    )
    # Defaults are None so that "set" can be told from "unset" (activation, option-vs-ini).
    parser.addini("tria_target", "targets to verify (default: local)", "args", None)
    parser.addini("tria_config", "targets file (default: tria.toml)", "string", None)
    parser.addini("tria_stage", "stages to run (with their dependencies)", "args", None)
    parser.addini("tria_no_deps", "trust the dependencies of tria_stage", "bool", None)
    parser.addini("tria_gate", "strict, normal (default) or off", "string", None)
    parser.addini("tria_report_dir", "where the reports go (default: reports)", "string", None)
    parser.addini(
        "tria_allow_destructive", "run destructive tests on protected targets", "bool", None
    )
    parser.addini(
        "tria_no_default_reports",
        "no Allure results or JUnit XML in the report dir unless asked for",
        "bool",
        None,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if config.option.help:
        with contextlib.suppress(pytest.UsageError):  # --help must work with a bad ini value
            if activation.is_active(config):
                aio.apply_defaults(config)
        return
    if not activation.is_active(config):
        config.pluginmanager.register(activation.DormantGuard(config), "tria_deploy.dormant")
        return
    from pytest_tria_deploy.engine import start

    start(config)
