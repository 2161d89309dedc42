"""Redact what pytest writes straight out, bypassing reports: log records and warnings.

Live logs (``log_cli``), ``--log-file``, the "Captured log" sections and ``caplog`` all come from
handlers of pytest's logging plugin; each gets a filter that redacts a record in place before any
of them formats it. Warnings are rewritten when recorded, before the terminal's summary keeps them.
"""

from __future__ import annotations

import logging
import warnings

from pytest_tria_deploy.redact import redact

_DONE = "_tria_redacted"


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, exception text and stack so no handler sees a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _DONE, False):
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed call: the handler reports it as logging always does
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, _DONE, True)
        return True


def protect_handlers(plugin: object, log_filter: logging.Filter) -> None:
    """Add ``log_filter`` to every handler pytest's logging plugin holds (live, file, capture)."""
    for handler in vars(plugin).values():
        if isinstance(handler, logging.Handler) and log_filter not in handler.filters:
            handler.addFilter(log_filter)


def redact_warning(message: warnings.WarningMessage) -> None:
    """Rewrite a recorded warning's text (and the source line shown with it) in place."""
    text = str(message.message)
    clean = redact(text)
    if clean != text:
        message.message = _same_category(message.category, clean)
    if message.line:
        message.line = redact(message.line)


def _same_category(category: type[Warning], text: str) -> Warning:
    """A warning of the original category if it can be built from a message, else UserWarning."""
    try:
        return category(text)
    except Exception:
        return UserWarning(text)
