"""Options more than one command takes, declared once so their help cannot drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="PATH",
        exists=True,
        dir_okay=False,
        help="The targets file. Default: the ini key tria_config, else tria.toml here, else "
        "\\[tool.tria] in pyproject.toml.",
        show_default=False,
    ),
]
