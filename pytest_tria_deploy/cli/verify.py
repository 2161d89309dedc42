"""``tria-deploy verify``: the gate, as ``pytest`` on the shipped suites with ``--tria-*`` options.

A thin layer: each option becomes the plugin's option of the same meaning, anything after ``--``
goes to pytest unchanged, and the exit code is pytest's (the plugin's), so the reports and the
answer are exactly those of ``pytest suites --tria-target=...``.
"""

from __future__ import annotations

import glob
import importlib.util
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import pytest
import typer

from pytest_tria_deploy.cli.options import ConfigOption
from pytest_tria_deploy.cli.progress import StageProgress
from pytest_tria_deploy.settings import DEFAULT_REPORT_DIR, DEFAULT_TARGET, GateMode
from pytest_tria_deploy.stages import BUILTIN_STAGES
from pytest_tria_deploy.targets import BUILTIN_TARGETS

SHORT_HELP = "Run the gate (the shipped suites) against a target; exit 0 PASS/WARN, 1 FAIL."
HELP = (
    "Run the gate against a target: pytest on the shipped suites (--suites) with the tria-deploy "
    "plugin, stage by stage, with a progress line per stage."
    "\n\nIt writes the same reports as `pytest suites --tria-target=NAME` (verdict.json and the "
    "rest, under --report-dir). Options you leave out are not passed, so the plugin's defaults and "
    "your pytest ini keys (tria_*) apply, except the target: local unless --target says otherwise."
    " Anything after `--` is passed to pytest unchanged, after these options; a test path "
    "there (suites/test_30_redis.py, a node id) runs instead of the whole --suites directory, "
    "and -v gives pytest's verbose output (one line per test)."
    "\n\nExit status: 0 PASS or WARN, 1 FAIL or BLOCKED, 2 interrupted, 3 internal error, 4 usage "
    "error (a bad option or value, a missing suites directory), 5 no tests collected: pytest's "
    "codes, as the plugin sets them."
)
EPILOG = (
    "Examples:\n\n"
    "The local target (a throwaway stack): `tria-deploy verify`\n\n"
    "A WARN fails the gate too: `tria-deploy verify --target staging --gate strict`\n\n"
    "The database stage and those before it: `tria-deploy verify --target prod --stage "
    "database`\n\n"
    "Two xdist workers, and -x for pytest: `tria-deploy verify -n 2 -- -x`\n\n"
    "One suite file, a line per test: `tria-deploy verify -- suites/test_30_redis.py -v`"
)
BUILTIN_TARGET_NAMES = ", ".join(BUILTIN_TARGETS)
BUILTIN_STAGE_NAMES = ", ".join(stage.name for stage in BUILTIN_STAGES)


def pytest_args(
    suites: Path,
    targets: list[str],
    stages: list[str],
    no_deps: bool,
    workers: int | None,
    gate: GateMode | None,
    config: Path | None,
    report_dir: Path | None,
    extra: Sequence[str],
) -> list[str]:
    """The pytest command line for these options (without the ``pytest`` itself).

    The suites directory is pytest's ``testpaths``, not an argument: pytest searches it only
    when ``extra`` names no test path of its own (pytest's rule, so an option's value such as
    ``-k redis`` is never taken for one).
    """
    args = [
        f"--rootdir={Path.cwd()}",  # tria.toml and reports/ are found where the user stands
        "-o",
        f"testpaths={shlex.quote(glob.escape(str(suites)))}",
        "-o",
        "console_output_style=classic",  # no [ 42%] column: the stages show the progress
    ]
    args += [f"--tria-target={name}" for name in targets or [DEFAULT_TARGET]]
    args += [f"--tria-stage={name}" for name in stages]
    if no_deps:
        args.append("--tria-no-deps")
    if workers is not None:
        args += ["-n", str(workers)]
    if gate is not None:
        args.append(f"--tria-gate={gate.value}")
    if config is not None:
        args.append(f"--tria-config={config}")
    if report_dir is not None:
        args.append(f"--tria-report-dir={report_dir}")
    return [*args, *extra]


def verify(
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            metavar="NAME",
            help=f"Target to verify: one of the built-in {BUILTIN_TARGET_NAMES}, or one from "
            f"tria.toml. Repeat to verify several. Default: {DEFAULT_TARGET}.",
            show_default=False,
        ),
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage",
            metavar="NAME",
            help=f"Run only this stage and the stages it depends on ({BUILTIN_STAGE_NAMES}, or "
            "one from tria.toml). Repeatable. Default: every stage (or the ini key tria_stage).",
            show_default=False,
        ),
    ] = None,
    no_deps: Annotated[
        bool,
        typer.Option(
            "--no-deps",
            help="With --stage: trust the stages it depends on instead of running them.",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--workers",
            min=1,
            metavar="N",
            help="Run on N pytest-xdist workers (needs pytest-xdist). Default: one process.",
            show_default=False,
        ),
    ] = None,
    gate: Annotated[
        GateMode | None,
        typer.Option(
            "--gate",
            help="strict: a WARN fails the gate too; normal: a failure blocks the stages that "
            "depend on it; off: every stage runs (none blocked), the verdict and exit code "
            "still report failures. Default: normal (or the ini key tria_gate).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report-dir",
            metavar="PATH",
            help="Where verdict.json and the other reports go. Default: the ini key "
            f"tria_report_dir, else {DEFAULT_REPORT_DIR}/ here.",
            show_default=False,
        ),
    ] = None,
    suites: Annotated[
        Path,
        typer.Option(
            "--suites",
            metavar="PATH",
            help="The suites to run (the gate's tests), unless the arguments after `--` name test "
            "paths.",
        ),
    ] = Path("suites"),
    extra: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PYTEST_ARGS",
            help="Passed to pytest unchanged, e.g. -- -x -k redis.",
            show_default=False,
        ),
    ] = None,
) -> None:
    if no_deps and not stage:
        raise typer.BadParameter("--no-deps needs --stage NAME", param_hint="'--no-deps'")
    if workers is not None and importlib.util.find_spec("xdist") is None:
        raise typer.BadParameter(
            "needs pytest-xdist: pip install pytest-xdist", param_hint="'-n' / '--workers'"
        )
    if not suites.is_dir():
        raise typer.BadParameter(
            f"{suites} is not a directory of suites; run from the directory that holds suites/, "
            "or give --suites PATH",
            param_hint="'--suites'",
        )
    args = pytest_args(
        suites, target or [], stage or [], no_deps, workers, gate, config, report_dir, extra or []
    )
    code = pytest.main(args, plugins=[StageProgress()])
    raise typer.Exit(int(code))


def register(app: typer.Typer) -> None:
    """Add ``verify`` to the ``tria-deploy`` app."""
    app.command(help=HELP, short_help=SHORT_HELP, epilog=EPILOG)(verify)
