"""The one redaction every output goes through: terminal, skip reasons, verdict.json and JUnit XML.

Known secret values (registered when a target is resolved or a provider starts) are masked first,
then anything shaped like a credential: a password in a URL, an ``sk-…`` key, a bearer token.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"
MIN_SECRET_LENGTH = 4

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@/\s]+@")
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{6,}")
_BEARER = re.compile(r"(?i)\b(?P<word>bearer)\s+[A-Za-z0-9._~+/=-]+")

_lock = threading.Lock()
_known: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values for this process; a URL contributes only its password."""
    found: set[str] = set()
    for value in values:
        if "://" in value:
            password = urlsplit(value).password
            if password:
                found.add(password)
            continue
        found.add(value)
    with _lock:
        _known.update(v for v in found if len(v) >= MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    """Mask every known secret value and every credential-shaped substring in ``text``."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    text = _OPENAI_KEY.sub(MASK, text)
    return _BEARER.sub(rf"\g<word> {MASK}", text)
