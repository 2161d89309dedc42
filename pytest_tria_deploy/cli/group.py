"""The ``tria-deploy`` command group: a command-line mistake exits 4, as pytest's usage errors do.

click exits 2 on a bad option; ``tria-deploy verify`` must answer with the plugin's codes (0
PASS/WARN, 1 FAIL/BLOCKED, 4 usage), and one rule for every command is easier to script against.

Typer exports ``BadParameter`` but not its base, click's ``UsageError`` (a separate ``click``
before typer vendored it, ``typer._click`` since, neither a public name of typer). Every usage
error carries click's documented ``exit_code`` 2, which typer's ``main`` exits with; that
attribute, public in both layouts, is what is re-coded here.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pytest
import typer
from typer.core import TyperGroup

USAGE_ERROR = int(pytest.ExitCode.USAGE_ERROR)
CLICK_USAGE_ERROR = 2  # click.UsageError.exit_code: an unknown option, a bad value, ...


@runtime_checkable
class _Coded(Protocol):
    exit_code: int


def recode(exc: BaseException) -> None:
    """Turn click's usage error (exit 2) into pytest's (exit 4); a command's own ``typer.Exit(2)``
    (``serve``: a bad configuration) keeps its code."""
    if isinstance(exc, typer.Exit | typer.Abort) or not isinstance(exc, _Coded):
        return
    if exc.exit_code == CLICK_USAGE_ERROR:
        exc.exit_code = USAGE_ERROR


class TriaGroup(TyperGroup):
    """Re-codes click's usage errors (unknown option, bad value, missing argument) as exit 4:
    those of parsing the group's and the command's options, and those a command raises
    (``typer.BadParameter``)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except Exception as exc:
            recode(exc)
            raise

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().invoke(*args, **kwargs)
        except Exception as exc:
            recode(exc)
            raise
