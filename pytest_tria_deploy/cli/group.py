"""The ``tria-deploy`` command group: a command-line mistake exits 4, as pytest's usage errors do.

click exits 2 on a bad option; ``tria-deploy verify`` must answer with the plugin's codes (0
PASS/WARN, 1 FAIL/BLOCKED, 4 usage), and one rule for every command is easier to script against.
Typer vendors click as ``typer._click``: its errors and context are the ones raised and passed here.
"""

from __future__ import annotations

from typing import Any

from typer._click.core import Context
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


def _recode(exc: UsageError) -> None:
    # click declares exit_code on the class and reads it from the instance when it exits.
    exc.exit_code = USAGE_ERROR


class TriaGroup(TyperGroup):
    """Re-codes click's usage errors (unknown option, bad value, missing argument) as exit 4."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as exc:
            _recode(exc)
            raise

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            _recode(exc)
            raise
