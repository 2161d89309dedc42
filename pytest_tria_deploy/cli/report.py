"""``tria-deploy report``: the HTML report of the last gate run, or the trend of past runs."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from rich.console import Console

from pytest_tria_deploy.cli import pytest_view
from pytest_tria_deploy.cli.allure_html import (
    ALLURE_PACKAGE,
    MIN_NODE,
    REPORT_DIR,
    NodeMissing,
    allure_command,
    find_npx,
    generate,
    has_results,
)
from pytest_tria_deploy.cli.group import USAGE_ERROR
from pytest_tria_deploy.cli.output import fail, print_wide
from pytest_tria_deploy.report.defaults import ALLURE_DIR
from pytest_tria_deploy.report.history import HISTORY_FILE, read_history, trend_table
from pytest_tria_deploy.report.summary import SUMMARY_FILE
from pytest_tria_deploy.report.verdict import VERDICT_FILE
from pytest_tria_deploy.settings import DEFAULT_REPORT_DIR

SHORT_HELP = "Build the HTML report (Allure 3, one file), or print the trend of past runs."
HELP = (
    "Build the HTML report of the last gate run from <report-dir>/allure-results: one "
    "self-contained file, <report-dir>/allure-report/index.html, made by the Allure 3 CLI (the "
    f"npm package allure, no Java) through npx. It needs Node.js {MIN_NODE}+; without it, this "
    "says how to get the report and exits 1. The report of an earlier run is removed first, so "
    "a report that could not be built never leaves an old one looking current."
    "\n\nWith --trend it prints the last runs instead (from <report-dir>/history.jsonl): time, "
    "verdict, duration and each latency against the run before it."
    "\n\nExit status: 0 report written or trend printed, 1 no results or history (run "
    "`tria-deploy verify` first), Node.js missing, or Allure failed, 4 usage error."
)
EPILOG = (
    "Examples:\n\n"
    "The report of the last run: `tria-deploy report`, then open "
    "reports/allure-report/index.html\n\n"
    "The last 20 runs of staging: `tria-deploy report --trend --target staging --last 20`"
)
NO_NODE = (
    "tria-deploy report: cannot build the HTML report: {cause}.\n"
    "The report is made by Allure 3 (the npm package allure, no Java), which needs Node.js "
    "{min_node} or newer:\n"
    "  1. install Node.js {min_node}+ (https://nodejs.org/en/download, or your package manager);\n"
    "  2. run: tria-deploy report --report-dir {report_dir}\n"
    "     (which runs: {command})\n"
    "The results themselves are in {results}; {summary} and {verdict} need nothing more."
)


def _report_name(report_dir: Path) -> str:
    """ "Tria Deploy: staging, prod": the targets of the run the results come from."""
    try:
        verdict: dict[str, Any] = json.loads((report_dir / VERDICT_FILE).read_text("utf-8"))
        targets = [str(t["target"]) for t in verdict["targets"]]
    except (OSError, ValueError, KeyError, TypeError):
        return "Tria Deploy"
    return f"Tria Deploy: {', '.join(targets)}"


def html_report(report_dir: Path, package: str) -> None:
    results, output = report_dir / ALLURE_DIR, report_dir / REPORT_DIR
    if not has_results(results):
        raise fail(
            f"tria-deploy report: no Allure results in {results}; run the gate first "
            f"(tria-deploy verify --report-dir {report_dir})"
        )
    shutil.rmtree(output, ignore_errors=True)  # an old report must not pass for this run's
    try:
        npx = find_npx()
    except NodeMissing as exc:
        command = allure_command("npx", package, results, output, "Tria Deploy")
        raise fail(
            NO_NODE.format(
                cause=exc,
                min_node=MIN_NODE,
                report_dir=report_dir,
                command="ALLURE_NO_ANALYTICS=true " + shlex.join(command),
                results=results,
                summary=report_dir / SUMMARY_FILE,
                verdict=report_dir / VERDICT_FILE,
            )
        ) from None
    console = Console(stderr=True)
    with console.status(f"building the report with {package} (npx fetches it the first time)"):
        run = generate(npx, package, results, output, _report_name(report_dir))
    index = output / "index.html"
    if run.returncode != 0 or not index.is_file():
        tail = "\n".join(run.output.splitlines()[-20:])
        raise fail(
            f"tria-deploy report: Allure failed (exit {run.returncode}): {' '.join(run.command)}"
            f"\n{tail}"
        )
    typer.echo(f"HTML report: {index.resolve()}")


def report(
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report-dir",
            metavar="PATH",
            help="The gate's report directory. Default: the ini key tria_report_dir (as "
            f"`tria-deploy verify` reads it), else {DEFAULT_REPORT_DIR}/ here.",
            show_default=False,
        ),
    ] = None,
    trend: Annotated[
        bool,
        typer.Option("--trend", help="Print the last runs as a table instead of building HTML."),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="NAME",
            help="With --trend: only this target's runs. Default: every target's.",
            show_default=False,
        ),
    ] = None,
    last: Annotated[
        int | None,
        typer.Option(
            "--last",
            metavar="N",
            min=1,
            help="With --trend: how many runs to show. Default: 10.",
            show_default=False,
        ),
    ] = None,
    allure: Annotated[
        str,
        typer.Option(
            "--allure",
            metavar="PACKAGE",
            help="The Allure 3 CLI npx runs; pin an exact release with e.g. allure@3.18.0.",
        ),
    ] = ALLURE_PACKAGE,
) -> None:
    if not trend:
        for given, name in ((target, "--target"), (last, "--last")):
            if given is not None:
                raise typer.BadParameter("only with --trend", param_hint=f"'{name}'")
    if report_dir is None:
        try:
            report_dir = pytest_view.gate_ini(Path.cwd()).report_dir
        except pytest.UsageError as exc:
            raise fail(f"tria-deploy report: {exc}", USAGE_ERROR) from None
    if not trend:
        html_report(report_dir, allure)
        return
    entries = read_history(report_dir, target, last or 10)
    if not entries:
        of = f" of target {target}" if target else ""
        raise fail(
            f"tria-deploy report: no runs{of} recorded in {report_dir / HISTORY_FILE}; "
            "run the gate first (tria-deploy verify)"
        )
    print_wide(trend_table(entries))


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``tria-deploy`` app."""
    app.command(help=HELP, short_help=SHORT_HELP, epilog=EPILOG)(report)
