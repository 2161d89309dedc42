"""The run-time hooks of an active run: header, collection, gating, redaction, verdict, exit code.

One instance is registered per active run (like pytest-xdist's DSession), so every hook has the
run's state at hand without globals. ``start`` is what plugin.py calls once a run is active.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator

import pytest

from pytest_tria_deploy import aio, collection, distribute, fixtures
from pytest_tria_deploy.gate import Gate
from pytest_tria_deploy.outcomes import ItemInfo, annotate, cap
from pytest_tria_deploy.provision.base import ProvisionError
from pytest_tria_deploy.provision.registry import provider_for
from pytest_tria_deploy.redact import close_scope, open_scope, redact
from pytest_tria_deploy.report import allure_scrub, allure_warnings, defaults, scrub, streams
from pytest_tria_deploy.report.allure_files import AllureFiles, results_dir
from pytest_tria_deploy.report.junit import JUnitSuiteProperties
from pytest_tria_deploy.report.provided import ProvidedFacts
from pytest_tria_deploy.report.run_files import RunFiles
from pytest_tria_deploy.report.terminal import write_usage_errors, write_verdict_table
from pytest_tria_deploy.report.verdict import VERDICT_FILE, build_verdict, write_verdict
from pytest_tria_deploy.runstate import BLOCKED, PROBLEM, RUN, WARNINGS, TriaRun
from pytest_tria_deploy.settings import format_problems, hook_stages, load_settings

PLUGIN_NAME = "tria_deploy.engine"  # the engine's name in the plugin manager, for get_plugin


def start(config: pytest.Config) -> None:
    """Resolve the run's settings and register the fixtures and the engine."""
    secrets = open_scope()
    try:
        aio.apply_defaults(config)
        stages = hook_stages(config.hook.pytest_tria_stages(config=config))
        settings = load_settings(config, stages)
        distribute.configure(config)
    except BaseException:
        close_scope(secrets)
        raise
    for stage in settings.graph.stages:
        about = stage.description or f"the {stage.name} stage"
        config.addinivalue_line("markers", f"{stage.name}: tria-deploy stage: {about}")
    run = TriaRun(settings, Gate(settings), secrets)
    config.stash[RUN] = run
    defaults.apply(config, settings)
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        # A verdict left by an earlier run must never pass for this run's; --collect-only (IDEs
        # run it all the time) is not a run and leaves the last one's reports alone.
        (settings.report_dir / VERDICT_FILE).unlink(missing_ok=True)
    config.pluginmanager.register(fixtures, "tria_deploy.fixtures")
    config.pluginmanager.register(RunFiles(), "tria_deploy.run_files")
    config.pluginmanager.register(AllureFiles(), "tria_deploy.allure_files")
    config.pluginmanager.register(JUnitSuiteProperties(), "tria_deploy.junit")
    config.pluginmanager.register(TriaEngine(config, run), PLUGIN_NAME)


class TriaEngine:
    """Hooks for one run; the gate decides in the process that runs the staged tests."""

    def __init__(self, config: pytest.Config, run: TriaRun) -> None:
        self.config = config
        self.run = run
        self.settings = run.settings
        self.is_worker = hasattr(config, "workerinput")
        self.log_filter = streams.RedactingFilter()
        self.provided = ProvidedFacts()
        # allure-pytest words a failure from the raw exception, past ``scrub``: redact its results.
        self.unregister_allure = (
            allure_scrub.register() if config.pluginmanager.hasplugin("allure_pytest") else None
        )
        # A passing test's warnings become its Allure status details (for categories.json).
        self.warning_details: allure_warnings.WarningDetails | None = None
        self.unregister_warnings: Callable[[], None] | None = None
        if results_dir(config) is not None:
            self.warning_details, self.unregister_warnings = allure_warnings.register()

    def pytest_report_header(self) -> list[str]:
        lines = []
        for target in self.settings.targets:
            protected = "protected" if target.protected else "not protected"
            try:
                starts = provider_for(target).describe().get("starts", "")
            except LookupError:
                starts = "nothing: provider not available in this version"
            # The stack starts lazily, after this header: say where its details will be.
            if not starts.startswith("nothing"):
                starts += "; versions, ports and logs in the summary and verdict.json once up"
            lines.append(
                f"tria-deploy: target {target.name} "
                f"(provider {target.provider}, starts {starts}; {protected})"
            )
        if self.settings.selected_stages:
            how = "trusting their dependencies" if self.settings.no_deps else "and dependencies"
            stages = f"{', '.join(self.settings.selected_stages)} {how}"
        else:
            stages = "all"
        lines.append(
            f"tria-deploy: stages {stages}; gate {self.settings.gate.value}; "
            f"config {self.settings.config_source}"
        )
        return lines

    def pytest_plugin_registered(self, plugin: object, plugin_name: str) -> None:
        """pytest's logging plugin comes after ours; its handlers get the redacting filter."""
        if plugin_name == "logging-plugin":
            streams.protect_handlers(plugin, self.log_filter)

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage) -> None:
        """Before the terminal (or xdist's worker channel) keeps the warning's text."""
        streams.redact_warning(warning_message)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: object) -> None:
        """Tell each xdist worker to group staged items, as the controller schedules."""
        distribute.mark_node(self.config, node.workerinput)  # type: ignore[attr-defined]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        collection.parametrize(metafunc, self.settings)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """First, so the stage markers it adds are there when ``-m`` deselects (pytest's own
        modifyitems) and when other plugins look at items."""
        problems = collection.assign(items, self.settings)
        if problems and not self.is_worker:
            raise pytest.UsageError(format_problems([message for _, message in problems]))
        for item, message in problems:
            # A worker cannot stop the run cleanly: the test fails and the controller exits 4.
            item.stash[PROBLEM] = message
        kept, dropped = collection.select(items, self.settings)
        if dropped:
            self.config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    @pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
    def pytest_collection_order_items(self, items: list[pytest.Item]) -> None:
        """Last, so stage order wins over plugins that reorder (pytest-randomly, conftests)."""
        collection.order(items, self.settings)

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_finish(self, session: pytest.Session) -> Generator[None, None, None]:
        """On an xdist worker, the ids sent to the controller carry each staged item's group."""
        if not distribute.grouping(self.config):
            return (yield)
        groups = [
            (item, distribute.group_name(info.target))
            for item in session.items
            if (info := item.stash.get(collection.ITEM_INFO, None)) is not None
        ]
        try:
            restore = distribute.suffix_ids(groups)
        except distribute.GroupingUnavailable as exc:
            for item, _ in groups:
                item.stash[PROBLEM] = str(exc).removeprefix("tria-deploy: ")
            return (yield)
        try:
            return (yield)
        finally:
            restore()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.run.collection_errors.append(f"{report.nodeid}: {_collect_error(report)}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        problem = item.stash.get(PROBLEM, None)
        if problem is not None:
            pytest.fail(f"tria-deploy: {problem}", pytrace=False)
        info = item.stash.get(collection.ITEM_INFO, None)
        if info is not None:
            reason = self.run.gate.blocked_reason(info.target, info.stage)
            if reason is not None:
                item.stash[BLOCKED] = True
                _skip(reason)
        if item.get_closest_marker("destructive") is not None:
            target = self.settings.target(collection.target_of(item, self.settings))
            if target.protected and not self.settings.allow_destructive:
                _skip(
                    f"destructive test: target '{target.name}' is protected; "
                    "pass --tria-allow-destructive to run it"
                )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        self.provided.attach(self.config, report)
        provision = call.excinfo is not None and call.excinfo.errisinstance(ProvisionError)
        if provision and call.excinfo is not None:
            # The target could not be started: what failed and why (with its log tail) is the
            # whole story; a traceback through the plugin's fixtures would only bury it.
            report.longrepr = str(call.excinfo.value)
        info: ItemInfo | None = item.stash.get(collection.ITEM_INFO, None)
        if info is not None:
            annotate(
                report,
                info,
                blocked=item.stash.get(BLOCKED, False),
                provision=provision,
                warnings=item.stash.get(WARNINGS, []),
            )
        if self.warning_details is not None and report.when == "teardown":
            noted: list[str] = item.stash.get(WARNINGS, [])
            self.warning_details.note(noted)
        problem = item.stash.get(PROBLEM, None)
        if problem is not None and report.when == "setup":
            report.tria_usage = problem  # type: ignore[attr-defined]
        return scrub.scrub(self.config, report)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self,
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        # Only a failed collection carries text; a passed one carries the collected nodes.
        return scrub.scrub(self.config, report) if report.failed else report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """First, so JUnit, the terminal and the cache see a crashed test under its plain id."""
        report.nodeid = distribute.plain_id(report.nodeid)
        self.provided.collect(report)
        usage = getattr(report, "tria_usage", None)
        if usage and usage not in self.run.usage_errors:
            self.run.usage_errors.append(usage)
        outcome = self.run.collector.add(report)
        if outcome is not None:
            self.run.record(outcome)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """First, so the verdict hook's implementations run before the writers of other reports
        (pytest's JUnit XML takes the verdict's facts as testsuite properties) and every later
        session-finish hook sees the exit status the verdict decided."""
        if self.is_worker or self.config.option.collectonly:
            return
        run = self.run
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        for outcome in run.collector.unfinished(interrupted):
            run.record(outcome)
        if run.usage_errors:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        if not (run.outcomes or run.collection_errors or interrupted):
            return  # nothing staged: not a deployment run (e.g. the project's own tests)
        first = run.outcomes[0].nodeid if run.outcomes else (run.collection_errors or [""])[0]
        run.verdict = build_verdict(
            self.settings,
            run.outcomes,
            started=run.started,
            interrupted=interrupted,
            collection_errors=run.collection_errors,
            provided=self.provided.by_target,
            suites_dir=(self.config.rootpath / first.split("::")[0]).parent,
        )
        status = pytest.ExitCode(exitstatus)
        if status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            failed = run.verdict.verdict_exit_code or run.collector.unstaged_failures
            status = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK
        session.exitstatus = status
        run.verdict.exit_code = int(status)
        run.verdict_path = str(write_verdict(run.verdict, self.settings.report_dir))
        self.config.hook.pytest_tria_verdict(config=self.config, verdict=run.verdict.as_dict())

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.run.usage_errors:
            write_usage_errors(terminalreporter, format_problems(self.run.usage_errors))
        elif self.run.verdict is not None and self.run.verdict_path is not None:
            write_verdict_table(terminalreporter, self.run.verdict, self.run.verdict_path)

    def pytest_unconfigure(self) -> None:
        if self.unregister_allure is not None:
            self.unregister_allure()
        if self.unregister_warnings is not None:
            self.unregister_warnings()
        close_scope(self.run.secrets)


def _skip(reason: str) -> None:
    """Skip reported at the test's own location (as a skip marker would be), not at this hook."""
    raise pytest.skip.Exception(reason, _use_item_location=True)


def _collect_error(report: pytest.CollectReport) -> str:
    """The exception line of a collection error (pytest prefixes it with ``E``), redacted."""
    lines = [line.strip() for line in report.longreprtext.splitlines() if line.strip()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    text = errors[-1] if errors else (lines[0] if lines else "collection failed")
    return cap(redact(text))
