"""The run-time hooks: header, collection, gating, report annotation, verdict and exit code.

One instance is registered per configured run (like pytest-xdist's DSession), so every hook
has the run's state at hand without globals.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from pytest_tria_deploy import collection, distribute
from pytest_tria_deploy.outcomes import ItemInfo, annotate
from pytest_tria_deploy.provision.base import ProvisionError
from pytest_tria_deploy.provision.registry import provider_for
from pytest_tria_deploy.report import scrub
from pytest_tria_deploy.report.terminal import write_verdict_table
from pytest_tria_deploy.report.verdict import build_verdict, write_verdict
from pytest_tria_deploy.runstate import BLOCKED, WARNINGS, TriaRun
from pytest_tria_deploy.settings import GateMode


class TriaEngine:
    """Hooks for one run; the gate decides in the process that runs the staged tests."""

    def __init__(self, config: pytest.Config, run: TriaRun) -> None:
        self.config = config
        self.run = run
        self.settings = run.settings
        self.is_worker = hasattr(config, "workerinput")

    def pytest_report_header(self) -> list[str]:
        lines = []
        for target in self.settings.targets:
            protected = "protected" if target.protected else "not protected"
            try:
                starts = provider_for(target).describe().get("starts", "")
            except LookupError:
                starts = "not available in this version"
            lines.append(
                f"tria-deploy: target {target.name} "
                f"(provider {target.provider}: {starts}; {protected})"
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

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: object) -> None:
        """Tell each xdist worker to group staged items, as the controller schedules."""
        distribute.mark_node(self.config, node.workerinput)  # type: ignore[attr-defined]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        collection.parametrize(metafunc, self.settings)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        collection.assign(items, self.settings, grouped=distribute.grouping(self.config))
        kept, dropped = collection.select(items, self.settings)
        if dropped:
            self.config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    @pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
    def pytest_collection_order_items(self, items: list[pytest.Item]) -> None:
        collection.order(items, self.settings)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
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
        info: ItemInfo | None = item.stash.get(collection.ITEM_INFO, None)
        if info is not None:
            annotate(
                report,
                info,
                blocked=item.stash.get(BLOCKED, False),
                provision=call.excinfo is not None and call.excinfo.errisinstance(ProvisionError),
                warnings=item.stash.get(WARNINGS, []),
            )
        return scrub.scrub(self.config, report)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self,
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        # Only a failed collection carries text; a passed one carries the collected nodes.
        return scrub.scrub(self.config, report) if report.failed else report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = self.run.collector.add(report)
        if outcome is not None:
            self.run.record(outcome)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            return
        run = self.run
        for outcome in run.collector.unfinished():
            run.record(outcome)
        if not run.outcomes:
            return
        first_file = Path(run.outcomes[0].nodeid.split("::")[0])
        run.verdict = build_verdict(
            self.settings,
            run.outcomes,
            started=run.started,
            interrupted=exitstatus == pytest.ExitCode.INTERRUPTED,
            suites_dir=(self.config.rootpath / first_file).parent,
        )
        run.verdict_path = str(write_verdict(run.verdict, self.settings.report_dir))
        self.config.hook.pytest_tria_verdict(config=self.config, verdict=run.verdict.as_dict())
        if self.settings.gate is GateMode.OFF:
            return
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            failed = run.verdict.exit_code or run.collector.unstaged_failures
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.run.verdict is not None and self.run.verdict_path is not None:
            write_verdict_table(terminalreporter, self.run.verdict, self.run.verdict_path)


def _skip(reason: str) -> None:
    """Skip reported at the test's own location (as a skip marker would be), not at this hook."""
    raise pytest.skip.Exception(reason, _use_item_location=True)
