"""`python -m tria_service [--check-config]`: validate the configuration, then serve with uvicorn.

`--check-config` validates the configuration and starts nothing: exit 0 when it is valid, 2 when
it is not (every problem listed). Any other argument is a usage error (exit 2, with the usage
line): the service is configured by its environment and env file only, never by arguments.

Exit codes: 2 for bad configuration (every problem listed), 1 when startup is refused because a
critical dependency failed (each one named). Both print a plain message to stderr, never a
traceback; Ctrl-C ends with 130, also without one. On SIGTERM readiness fails at once, new work
is still served for TRIA_SHUTDOWN_DRAIN_DELAY seconds and refused after it, in-flight requests
finish, and the process exits within TRIA_SHUTDOWN_GRACE seconds.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn
from pydantic import Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tria_service.app import create_app
from tria_service.check_config import CHECK_CONFIG_FLAG, check_config
from tria_service.config import (
    ConfigError,
    Settings,
    host_problem,
    load_settings,
    resolve_env_file,
)
from tria_service.logging import configure_logging
from tria_service.production.lifecycle_manager import get_lifecycle_manager
from tria_service.production.startup_orchestrator import StartupError
from tria_service.redaction import redact, register_secrets

EXIT_STARTUP_REFUSED = 1
EXIT_BAD_CONFIG = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
# Share of the grace period kept for the shutdown callbacks (closing pools and clients), at most.
LIFECYCLE_SHARE = 0.25
LIFECYCLE_MAX_SECONDS = 5.0
# Default drain delay: long enough for a load balancer polling readiness every few seconds to
# see the 503, and never more than a quarter of the grace period.
DRAIN_DELAY_MAX_SECONDS = 5.0
DRAIN_DELAY_SHARE = 0.25
TRUST_EVERY_PEER = "*"


class ServerSettings(BaseSettings):
    """Where to listen and how to drain: process concerns, not the service's own settings.

    Each field's description is the fix printed when its value is invalid.
    """

    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    tria_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="must be a host name or address — e.g. 127.0.0.1 or 0.0.0.0",
    )
    tria_port: int = Field(
        default=8000, ge=1, le=65535, description="must be an integer in 1..65535 — e.g. 8000"
    )
    tria_shutdown_drain_delay: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="must be zero or a positive number of seconds — e.g. 0 or 5 (unset: "
        "min(5, TRIA_SHUTDOWN_GRACE / 4))",
    )
    tria_log_level: str = Field(
        default="info",
        pattern="^(?i:debug|info|warning|error)$",
        description="must be one of debug, info, warning, error — e.g. info",
    )
    tria_forwarded_allow_ips: str = Field(
        default="",
        description="must be a comma list of proxy IP addresses or networks, or * — e.g. "
        "10.0.0.5,10.1.0.0/16 (unset: X-Forwarded-For is ignored)",
    )

    @field_validator("tria_host")
    @classmethod
    def _host(cls, value: str) -> str:
        """Checked here, as the URLs' hosts are: uvicorn would find out only when it binds, after
        a whole startup (and a label over 63 characters fails it with a traceback)."""
        if host_problem(value) is not None:
            raise ValueError("not a host name or address")  # the field's description says why
        return value

    @field_validator("tria_forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str) -> str:
        """Addresses and networks only: uvicorn would take any other word as a literal host name
        that no peer ever matches, so a typo would silently trust nobody."""
        entries = _entries(value)
        if TRUST_EVERY_PEER in entries and len(entries) > 1:
            raise ValueError("* stands alone")  # uvicorn would take it for a host name
        for entry in entries:
            if entry != TRUST_EVERY_PEER:
                ipaddress.ip_network(entry, strict=False)  # raises ValueError when it is not one
        return value

    def proxy_options(self) -> dict[str, Any]:
        """uvicorn's proxy settings: X-Forwarded-For is believed only from the listed peers, and
        from nobody by default (not even loopback, uvicorn's own default), so a client cannot
        choose the address its rate limit is counted under."""
        trusted = _entries(self.tria_forwarded_allow_ips)
        return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}

    def drain_delay(self, grace: float) -> float:
        """Seconds to keep accepting (readiness failing) after SIGTERM before draining."""
        if self.tria_shutdown_drain_delay is not None:
            return self.tria_shutdown_drain_delay
        return min(DRAIN_DELAY_MAX_SECONDS, grace * DRAIN_DELAY_SHARE)


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def server_problem(error: ErrorDetails) -> str:
    """One line naming the variable and its fix, from the error's location only (no value)."""
    field = str(error["loc"][0]) if error["loc"] else ""
    info = ServerSettings.model_fields.get(field)
    var = field.upper() or "server settings"
    if info is None or info.description is None:
        return f"{var}: is invalid ({error['type']}) — fix the value of {var}"
    return f"{var}: {info.description}"


@dataclass(frozen=True)
class ShutdownBudget:
    """How TRIA_SHUTDOWN_GRACE is split: drain delay, then connection drain, then callbacks."""

    drain_delay: float
    connection_drain: int
    callbacks: float

    @classmethod
    def split(cls, grace: float, drain_delay: float) -> ShutdownBudget:
        remaining = max(grace - drain_delay, 0.0)
        callbacks = min(LIFECYCLE_MAX_SECONDS, remaining * LIFECYCLE_SHARE)
        return cls(drain_delay, math.floor(remaining - callbacks), max(callbacks, 0.1))


def load_configuration() -> tuple[Settings, ServerSettings]:
    """Both settings, or one ConfigError listing every problem of both."""
    problems: list[str] = []
    settings: Settings | None = None
    server: ServerSettings | None = None
    try:
        settings = load_settings()
    except ConfigError as exc:
        problems += exc.problems
    try:
        server = ServerSettings(_env_file=resolve_env_file())  # type: ignore[call-arg]
    except ValidationError as exc:
        problems += sorted({server_problem(e) for e in exc.errors(include_input=False)})
    except (UnicodeDecodeError, OSError, SettingsError):
        # load_settings() has already named the unreadable env file; the environment still counts.
        server = ServerSettings(_env_file=None)  # type: ignore[call-arg]
    too_long = (
        settings is not None
        and server is not None
        and server.drain_delay(settings.tria_shutdown_grace) > settings.tria_shutdown_grace
    )
    if too_long:
        problems.append(
            "TRIA_SHUTDOWN_DRAIN_DELAY: is longer than TRIA_SHUTDOWN_GRACE — "
            "lower it, or raise TRIA_SHUTDOWN_GRACE"
        )
    if problems or settings is None or server is None:
        raise ConfigError(problems, resolve_env_file())
    return settings, server


class StartupFailureReporter:
    """ASGI wrapper that keeps a refused startup to our own message, without uvicorn's traceback.

    Starlette reports a lifespan exception to uvicorn with the formatted traceback, which uvicorn
    logs; for the failures we expect (a dependency down, bad configuration) that is noise around
    the one message that matters, so it is replaced by an empty one and the error kept for main().
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.error: StartupError | ConfigError | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except (StartupError, ConfigError) as exc:
            self.error = exc
            await send({"type": "lifespan.startup.failed", "message": ""})
        except BaseException:
            for message in held:
                await send(message)
            raise


def serve(settings: Settings, server_settings: ServerSettings) -> int:
    """Run uvicorn until it stops; the exit code for the process."""
    grace = settings.tria_shutdown_grace
    budget = ShutdownBudget.split(grace, server_settings.drain_delay(grace))
    lifecycle = get_lifecycle_manager()
    lifecycle.total_budget = budget.callbacks
    app = create_app(settings, handle_signals=True, drain_delay=budget.drain_delay)
    reporter = StartupFailureReporter(app)
    config = uvicorn.Config(
        reporter,
        host=server_settings.tria_host,
        port=server_settings.tria_port,
        lifespan="on",
        log_config=None,
        log_level=server_settings.tria_log_level.lower(),
        timeout_graceful_shutdown=budget.connection_drain,
        **server_settings.proxy_options(),
    )
    try:
        uvicorn.Server(config).run()
    except SystemExit as exc:
        if reporter.error is not None:
            return _report_refusal(reporter.error, settings)
        return exc.code if isinstance(exc.code, int) else EXIT_STARTUP_REFUSED
    return 0


def _report_refusal(error: StartupError | ConfigError, settings: Settings) -> int:
    print(redact(str(error), settings.secret_values()), file=sys.stderr)
    return EXIT_BAD_CONFIG if isinstance(error, ConfigError) else EXIT_STARTUP_REFUSED


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The only options; anything else exits 2 with the usage line (argparse's own)."""
    parser = argparse.ArgumentParser(
        prog="python -m tria_service",
        description="Serve the Tria service, configured by its environment and env file "
        "($TRIA_ENV_FILE, else .env).",
    )
    parser.add_argument(
        CHECK_CONFIG_FLAG,
        action="store_true",
        help="validate the configuration and start nothing: exit 0 when valid, 2 when not",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if parse_args(argv).check_config:
        return check_config(load_configuration)
    try:
        return _run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after a clean shutdown
        return EXIT_INTERRUPTED


def _run() -> int:
    try:
        settings, server_settings = load_configuration()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_CONFIG
    register_secrets(settings.secret_values())
    configure_logging(server_settings.tria_log_level)
    return serve(settings, server_settings)


if __name__ == "__main__":
    sys.exit(main())
