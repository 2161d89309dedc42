"""One redaction for every string that leaves the process: logs, probe errors, diagnostics."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

MASK = "***"
MIN_SECRET_LENGTH = 3

# The password runs to the last "@" before the host, so "u:p@ss@host" loses all of "p@ss"; it
# may hold "/" too ("redis://default:pa/ss@host"), so only whitespace ends the user-info.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)\S+(?=@[^\s@]*)")
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_AUTH_SCHEME = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
# SECRET_KEY=, OPENAI_API_KEY=, "password": "..." (JSON), token: ... — with or without quotes.
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![A-Za-z0-9])(?:\w*_)?(?:password|passwd|pwd|secret(?:_key)?|token|api_?key)"
    # pydantic's SecretStr('**********') and an already-masked value are left as they are.
    r"[\"']?\s*[:=]\s*[\"']?)(?!SecretStr\(|\*+(?:[\s&;,'\")]|$))[^\s&;,'\"]+",
    re.IGNORECASE,
)

_lock = threading.Lock()
_registered: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values process-wide so every later redact() masks them."""
    with _lock:
        _registered.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def registered_secrets() -> frozenset[str]:
    """The process-wide secrets, for tools that redact elsewhere (e.g. a report writer)."""
    with _lock:
        return frozenset(_registered)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secrets (and URL-quoted forms), URL passwords, sk- keys and bearer tokens."""
    known = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH} | registered_secrets()
    variants = known | {quote(s, safe="") for s in known}
    for value in sorted(variants, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)
    text = _OPENAI_KEY.sub(MASK, text)
    text = _AUTH_SCHEME.sub(rf"\g<head>{MASK}", text)
    return _KEY_VALUE.sub(rf"\g<head>{MASK}", text)


def redact_value(value: Any, secrets: Iterable[str] = ()) -> Any:
    """redact() on every string inside dicts, lists and tuples; anything else as its redacted repr.

    A renderer would repr() unknown objects (sets, dataclasses, paths) after redaction ran, so they
    are turned into text here, where the redaction still applies.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {k: redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, secrets) for v in value]
    if isinstance(value, tuple):
        items = tuple(redact_value(v, secrets) for v in value)
        return items if type(value) is tuple else redact(repr(value), secrets)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}", secrets)
    return redact(repr(value), secrets)


def redact_event(logger: Any, method_name: str, event_dict: Any) -> Any:
    """structlog processor: no log line carries a secret, whatever the caller put in it."""
    return {key: redact_value(value) for key, value in event_dict.items()}
