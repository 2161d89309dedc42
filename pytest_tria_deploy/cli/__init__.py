"""``tria-deploy``: the command line of Tria Deploy (typer + rich).

Each command lives in its own module and registers itself on ``app``, the console script's
entry point (``pytest_tria_deploy.cli:app``).
"""

from __future__ import annotations

import typer

from pytest_tria_deploy.cli import report, stack, targets, verify
from pytest_tria_deploy.cli.group import TriaGroup

HELP = (
    "Tria Deploy: may this deployment of Tria take traffic? Verify it, read the reports, "
    "check the targets, or run a throwaway local stack."
    "\n\nEvery command exits 4 on a command-line mistake (an unknown option, a bad value), as "
    "pytest does; `tria-deploy COMMAND --help` gives each one's options and exit codes."
)

app = typer.Typer(
    cls=TriaGroup,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback must never print a local holding a secret
)
verify.register(app)
report.register(app)
targets.register(app)
stack.register(app)

__all__ = ["app"]
