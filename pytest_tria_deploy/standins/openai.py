"""OpenAI-compatible stand-in server for local and CI targets where OpenAI cannot be reached.

Run it with ``python -m pytest_tria_deploy.standins.openai --host 127.0.0.1 --port P``;
use :func:`create_app` to serve it in-process.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
import uvicorn

from pytest_tria_deploy.standins.openai_app import MODELS, create_app

__all__ = ["MODELS", "create_app", "main"]

_GRACEFUL_SHUTDOWN_S = 3


class FaultChoice(StrEnum):
    NONE = "none"
    UNAUTHORIZED = "401"
    RATE_LIMITED = "429"
    SERVER_ERROR = "500"
    LATENCY = "latency"
    HANG = "hang"


class LogLevel(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to bind.", min=1, max=65535)] = 8089,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Only this bearer key is accepted (otherwise any non-empty key). "
            "Prefer the env var: it stays out of the process list.",
            envvar="TRIA_STANDIN_API_KEY",
            show_default=False,
        ),
    ] = None,
    fault: Annotated[
        FaultChoice, typer.Option(help="Fault active from startup until changed or reset.")
    ] = FaultChoice.NONE,
    latency_ms: Annotated[
        int | None,
        typer.Option(help="Delay added to each /v1 request (implies --fault latency).", min=0),
    ] = None,
    retry_after: Annotated[
        int, typer.Option(help="Seconds in the retry-after header of the 429 fault.", min=0)
    ] = 1,
    allow_remote_admin: Annotated[
        bool, typer.Option(help="Let non-loopback clients use the /_admin routes.")
    ] = False,
    log_level: Annotated[LogLevel, typer.Option(help="uvicorn log level.")] = LogLevel.INFO,
) -> None:
    """Serve the OpenAI stand-in under uvicorn until interrupted."""
    if latency_ms is not None and fault is FaultChoice.NONE:
        fault = FaultChoice.LATENCY
    app = create_app(
        api_key,
        fault.value,
        latency_ms=1000 if latency_ms is None else latency_ms,
        retry_after=retry_after,
        allow_remote_admin=allow_remote_admin,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.value,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
