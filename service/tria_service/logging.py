"""Structured JSON logs on stderr, every event redacted, the standard library's loggers included."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

from tria_service.redaction import redact_event

HANDLER_NAME = "tria-json"


def ensure_redacted_logging() -> None:
    """Give structlog a redacting default, unless someone has configured it already.

    Structlog's own default prints events as they are, so code that logs before (or without)
    configure_logging() would print secrets; configure_logging() later replaces this default.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    )


def configure_logging(level: str = "INFO") -> None:
    """Route structlog and stdlib logging (uvicorn, asyncpg) through one redacting JSON renderer.

    Calling it again replaces only its own handler, leaving others (e.g. pytest's) in place.
    """
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_event,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != HANDLER_NAME] + [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)  # one line per probe request is noise


ensure_redacted_logging()
