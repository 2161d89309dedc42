"""pytest entry point: options, ini keys and hook wiring; the work is in the modules beside it."""

from __future__ import annotations

import pytest

from pytest_tria_deploy import aio, distribute, hookspecs
from pytest_tria_deploy.engine import TriaEngine
from pytest_tria_deploy.gate import Gate
from pytest_tria_deploy.runstate import RUN, TriaRun
from pytest_tria_deploy.settings import load_settings

pytest_plugins = ["pytest_tria_deploy.fixtures"]

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
        help="strict (a warning fails the gate), normal (default) or off (report, never block). "
        "ini: tria_gate",
    )
    group.addoption(
        "--tria-report-dir",
        metavar="PATH",
        help="where verdict.json goes (default: reports/). ini: tria_report_dir",
    )
    group.addoption(
        "--tria-allow-destructive",
        action="store_true",
        default=None,
        help="run @pytest.mark.destructive tests on protected targets too. "
        "ini: tria_allow_destructive",
    )
    parser.addini("tria_target", "targets to verify (default: local)", type="args")
    parser.addini("tria_config", "targets file (default: tria.toml)")
    parser.addini("tria_stage", "stages to run (with their dependencies)", type="args")
    parser.addini("tria_no_deps", "trust the dependencies of tria_stage", type="bool")
    parser.addini("tria_gate", "strict, normal or off", default="normal")
    parser.addini("tria_report_dir", "where verdict.json goes", default="reports")
    parser.addini("tria_allow_destructive", "run destructive tests on protected targets", "bool")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    aio.apply_defaults(config)
    if config.option.help:
        return
    hook_results = config.hook.pytest_tria_stages(config=config)
    hook_stages = [stage for stages in hook_results if stages for stage in stages]
    settings = load_settings(config, hook_stages)
    for stage in settings.graph.stages:
        config.addinivalue_line(
            "markers", f"{stage.name}: set by tria-deploy on every test of the {stage.name} stage"
        )
    run = TriaRun(settings, Gate(settings.graph, settings.gate))
    config.stash[RUN] = run
    distribute.configure(config)
    config.pluginmanager.register(TriaEngine(config, run), "tria_deploy.engine")
