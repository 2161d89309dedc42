"""The one redaction every output goes through: terminal, logs, warnings, verdict.json, JUnit XML.

Known secret values (registered when a target is resolved or a provider starts) are masked first,
then anything shaped like a credential: a password in a URL, an ``sk-…`` key, a ``Bearer`` or
``Basic`` credential, and ``password=``/``token:``-style key-value pairs (libpq DSNs, JSON, env).

The patterns match ``tria_service.redaction``'s, but the plugin keeps its own copy: it verifies a
deployment of that service and must not trust (or import) the code it is checking.

Registered secrets live in scopes: each tria run opens one at configure and closes it at
unconfigure, so in-process runs (pytester) never carry one run's secrets into the next. Values
registered outside any run stay for the life of the process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"
MIN_SECRET_LENGTH = 4

# The password runs to the last "@" before the host, so "u:p@ss@host" loses all of "p@ss"; it
# may hold "/" too ("postgresql://u:ab/cd@host"), so only whitespace ends the user-info.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)\S+(?=@[^\s@]*)")
# The same rule for one whole URL, to learn a registered URL's password (urlsplit would stop
# at its first "/" or "@").
_PASSWORD_OF_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:(?P<password>\S+)@[^\s@]*")
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_AUTH_SCHEME = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
# SECRET_KEY=, OPENAI_API_KEY=, password=... (libpq), "password": "..." (JSON), token: ...
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![A-Za-z0-9])(?:\w*_)?(?:password|passwd|pwd|secret(?:_key)?|token|api_?key)"
    # pydantic's SecretStr('**********') and an already-masked value are left as they are.
    r"[\"']?\s*[:=]\s*[\"']?)(?!SecretStr\(|\*+(?:[\s&;,'\")]|$))[^\s&;,'\"]+",
    re.IGNORECASE,
)
# Cheap pre-check: text without any of these cannot match a pattern above.
_HINTS = ("://", "sk-", "bearer", "basic", "pass", "pwd", "secret", "token", "key")


class SecretScope:
    """Secrets registered while this scope is the innermost open one."""

    def __init__(self) -> None:
        self.values: set[str] = set()


_lock = threading.Lock()
_scopes: list[SecretScope] = [SecretScope()]  # the first is the process-wide scope
_known: tuple[str, ...] = ()  # every open scope's values and their quoted forms, longest first


def _refresh() -> None:
    global _known
    values = set().union(*(scope.values for scope in _scopes))
    variants = values | {quote(v, safe="") for v in values}
    _known = tuple(sorted(variants, key=len, reverse=True))


def open_scope() -> SecretScope:
    """Start a run's scope: later registrations belong to it until it is closed."""
    scope = SecretScope()
    with _lock:
        _scopes.append(scope)
    return scope


def close_scope(scope: SecretScope) -> None:
    """Forget the secrets registered in ``scope`` (a run has ended)."""
    with _lock:
        if scope in _scopes[1:]:
            _scopes.remove(scope)
            _refresh()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values for the current run; a URL contributes only its password."""
    found: set[str] = set()
    for value in values:
        if "://" in value:
            match = _PASSWORD_OF_URL.fullmatch(value.strip())
            if match:
                found.update({match["password"], unquote(match["password"])})
            continue
        found.add(value)
    with _lock:
        _scopes[-1].values.update(v for v in found if len(v) >= MIN_SECRET_LENGTH)
        _refresh()


def redact(text: str, *, key_values: bool = True) -> str:
    """Mask every known secret value and every credential-shaped substring in ``text``.

    ``key_values=False`` skips the ``name: value`` heuristic, which also masks the word after
    ``SECRET_KEY:`` in a message about that variable; only for a caller that has registered
    every secret its text can hold (comprehensive_deploy.sh's log tee).
    """
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)
    text = _OPENAI_KEY.sub(MASK, text)
    text = _AUTH_SCHEME.sub(rf"\g<head>{MASK}", text)
    return _KEY_VALUE.sub(rf"\g<head>{MASK}", text) if key_values else text


def redact_tree(value: Any) -> Any:
    """redact() every string inside dicts, lists and tuples; other values are kept as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_tree(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_tree(v) for v in value)
    return value
