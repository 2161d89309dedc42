"""``tria-deploy targets``: the targets a gate can verify, and whether their secrets resolve.

A target's secrets are ``${VAR}`` references resolved from the environment when a run selects
it; this checks the same resolution (``Target.resolve``) ahead of the run and names every unset
variable. It never prints a value: the table holds names, providers and descriptions only, and a
problem names the variable and the field that uses it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import pytest
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pytest_tria_deploy.cli import pytest_view
from pytest_tria_deploy.cli.group import USAGE_ERROR
from pytest_tria_deploy.cli.options import ConfigOption
from pytest_tria_deploy.cli.output import fail, print_wide
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.settings import format_problems
from pytest_tria_deploy.targets import Target, TargetError, load_config, unknown_target

SHORT_HELP = "List the targets and check that their secrets resolve (values never shown)."
HELP = (
    "List the targets (the built-in local, containers and compose, and those in tria.toml) with "
    "their provider, protection and description, and check that each one's ${VAR} references "
    "are set in this environment. Values are never printed; an unset variable is named with the "
    "field that uses it (on stderr, after the table)."
    "\n\nWith NAME arguments only those targets are listed and checked."
    "\n\nExit status: 0 every listed target resolves, 1 a target has unset variables, 4 usage "
    "error (an unknown target, a config file that is missing or invalid)."
)
EPILOG = (
    "Examples:\n\n"
    "Every target: `tria-deploy targets`\n\n"
    "Before a deploy gate on prod: `tria-deploy targets prod && tria-deploy verify --target prod`"
)


def _check(target: Target) -> list[str]:
    """The problems resolving ``target`` from the environment (variable names, no values)."""
    try:
        target.resolve(os.environ)
    except TargetError as exc:
        return exc.problems
    return []


def _table(rows: list[tuple[Target, list[str]]], source: str) -> Table:
    table = Table(title="tria-deploy targets", caption=f"config: {source}")
    for column in ("target", "provider", "protected", "secrets", "description"):
        table.add_column(column)
    for target, problems in rows:
        secrets = (
            Text(f"{len(problems)} unresolved", style="red")
            if problems
            else Text("resolved", style="green")
        )
        table.add_row(
            target.name,
            target.provider,
            "yes" if target.protected else "no",
            secrets,
            redact(target.description),
        )
    return table


def targets(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME",
            help="Only these targets. Default: every target.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    here = Path.cwd()
    try:
        explicit = str(config) if config else pytest_view.gate_ini(here).config_file
    except pytest.UsageError as exc:
        raise fail(f"tria-deploy targets: {exc}", USAGE_ERROR) from None
    try:
        loaded = load_config(here, explicit, here)
    except TargetError as exc:
        raise fail(format_problems(exc.problems), USAGE_ERROR) from None
    if loaded.problems:
        raise fail(format_problems(loaded.problems), USAGE_ERROR)
    wanted = list(dict.fromkeys(names or loaded.targets))
    unknown = [
        unknown_target(name, loaded.targets) for name in wanted if name not in loaded.targets
    ]
    if unknown:
        raise fail(format_problems(unknown), USAGE_ERROR)
    rows = [(loaded.targets[name], _check(loaded.targets[name])) for name in wanted]
    print_wide(_table(rows, loaded.source))
    problems = [problem for _, found in rows for problem in found]
    for problem in problems:
        Console(stderr=True).print(Text.assemble(("✗ ", "red"), problem), soft_wrap=True)
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``targets`` to the ``tria-deploy`` app."""
    app.command(help=HELP, short_help=SHORT_HELP, epilog=EPILOG)(targets)
