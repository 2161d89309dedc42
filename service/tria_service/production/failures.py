"""One wording for a dependency failure, whoever meets it: a probe, or the clients connecting.

describe_failure() turns an exception into (error, hint): the cause in a few words and the variable
to check. Texts may still hold a secret the driver echoed; callers redact before showing them, or
use describe_error(), which gives one redacted line.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import asyncpg
import httpx
import openai
import redis.exceptions

from tria_service.chroma_http import ChromaAuthError, ChromaError
from tria_service.config import Dependency, Settings
from tria_service.redaction import redact

DISPLAY_NAMES = {
    Dependency.DATABASE: "PostgreSQL",
    Dependency.REDIS: "Redis",
    Dependency.OPENAI: "the OpenAI endpoint",
    Dependency.CHROMA: "Chroma",
}
_REFUSED_TEXT = ("connection refused", "[errno 111]", "all connection attempts failed")
_REDIS_AUTH_TEXT = ("noauth", "wrongpass", "invalid password", "invalid username-password")
MAX_ERROR_LENGTH = 300


class ProbeFailure(Exception):
    """The dependency answered, but not as required; carries the exact error and hint to report."""

    def __init__(self, error: str, hint: str) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.error, self.hint)


class ClientsClosedError(RuntimeError):
    """A client was asked for after Clients.close(): reopening it would leak a pool."""


def describe_failure(dep: Dependency, exc: BaseException, settings: Settings) -> tuple[str, str]:
    """(error, hint) for a failed check or connection; never quotes a URL (it may hold secrets)."""
    name = DISPLAY_NAMES[dep]
    address = settings.address(dep)
    where = settings.config_vars(dep)
    if isinstance(exc, ProbeFailure):
        return exc.error, exc.hint
    if isinstance(exc, ClientsClosedError):
        return "client closed", "the service is shutting down (its clients are closed)"
    if _is_timeout(exc):
        return (
            f"timed out after {settings.timeout_for(dep):.1f}s",
            f"is {name} at {address} hung or unreachable? check {where}, or raise "
            f"TRIA_TIMEOUT_{dep.value.upper()}",
        )
    auth = _auth_failure(dep, exc, settings)
    if auth is not None:
        return auth, f"check {settings.credential_vars(dep)}"
    if _is_refused(exc):
        return f"connection refused at {address}", f"is {name} running? check {where}"
    if any(isinstance(e, socket.gaierror) for e in _chain(exc)):
        host = address.rsplit(":", 1)[0]
        return f"cannot resolve host {host}", f"check the host in {where}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        database = urlsplit(settings.asyncpg_dsn()).path.strip("/")
        return f'database "{database}" does not exist', "create it, or fix the name in DATABASE_URL"
    if isinstance(exc, openai.RateLimitError):
        return "rate limited (HTTP 429)", "check the quota of the account behind OPENAI_API_KEY"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} from {address}", f"check {where}"
    if isinstance(exc, ChromaError):
        return f"HTTP {exc.status_code} from {address}: {exc.message}", f"check {where}"
    first_line = (str(exc).strip().splitlines() or [""])[0]
    cause = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return cause, f"is {name} at {address} healthy? check {where}"


def dependency_of(exc: BaseException) -> Dependency | None:
    """Which dependency an exception came from, when its type says so."""
    if isinstance(exc, openai.OpenAIError):
        return Dependency.OPENAI
    if isinstance(exc, ChromaError | httpx.HTTPError):
        return Dependency.CHROMA
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return Dependency.DATABASE
    if isinstance(exc, redis.exceptions.RedisError):
        return Dependency.REDIS
    return None


def describe_error(exc: BaseException, settings: Settings, dep: Dependency | None = None) -> str:
    """One short, redacted line: the probes' wording (cause — hint) when the dependency is known
    (given, or told by the exception's type)."""
    dep = dep or dependency_of(exc)
    if dep is not None:
        error, hint = describe_failure(dep, exc, settings)
        text = f"{dep.value}: {error} — {hint}"
    elif isinstance(exc, TimeoutError):
        text = "timed out"
    else:
        lines = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return redact(text, settings.secret_values())[:MAX_ERROR_LENGTH]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes, as drivers wrap socket errors in their own types."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            yield from (e for sub in current.exceptions for e in _chain(sub))
        current = current.__cause__ or current.__context__


def _is_timeout(exc: BaseException) -> bool:
    timeouts = (
        TimeoutError,
        openai.APITimeoutError,
        redis.exceptions.TimeoutError,
        httpx.TimeoutException,
    )
    return isinstance(exc, timeouts)


def _is_refused(exc: BaseException) -> bool:
    for error in _chain(exc):
        if isinstance(error, ConnectionRefusedError):
            return True
        if isinstance(error, OSError) and error.errno == errno.ECONNREFUSED:
            return True
        if any(text in str(error).lower() for text in _REFUSED_TEXT):
            return True
    return False


def _auth_failure(dep: Dependency, exc: BaseException, settings: Settings) -> str | None:
    """An authentication error, named with the user but never the password."""
    if dep is Dependency.DATABASE and isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        user = unquote(urlsplit(settings.asyncpg_dsn()).username or "") or "(default)"
        return f'authentication failed for user "{user}"'
    if dep is Dependency.REDIS:
        auth_types = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)
        text = str(exc).lower()
        if isinstance(exc, auth_types) or any(t in text for t in _REDIS_AUTH_TEXT):
            user = unquote(urlsplit(settings.redis_dsn()).username or "") or "default"
            return f'authentication failed for user "{user}"'
    if dep is Dependency.OPENAI and isinstance(
        exc, openai.AuthenticationError | openai.PermissionDeniedError
    ):
        return f"authentication failed (HTTP {exc.status_code}): the API key was rejected"
    if dep is Dependency.CHROMA and isinstance(exc, ChromaAuthError):
        return f"authentication failed (HTTP {exc.status_code}): Chroma rejected the credentials"
    return None
