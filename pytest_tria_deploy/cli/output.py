"""How the commands print: tables on stdout, problems on stderr, neither squeezed in a log."""

from __future__ import annotations

import typer
from rich.console import Console, RenderableType
from rich.measure import Measurement


def print_wide(renderable: RenderableType) -> None:
    """On a terminal, as wide as it is; in a log or a pipe, as wide as the table needs (rich would
    otherwise squeeze it into 80 columns and cut every cell)."""
    console = Console()
    if not console.is_terminal:
        unbounded = console.options.update_width(10_000)
        console.width = max(80, Measurement.get(console, unbounded, renderable).maximum)
    console.print(renderable)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr as it is (no markup, no wrapping); returns the exit to raise."""
    Console(stderr=True).print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)
