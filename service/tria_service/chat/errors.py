"""What the chat components raise (each maps to one HTTP status), and how a failure is worded."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
import httpx
import openai
import redis.exceptions

from tria_service.chroma_http import ChromaError
from tria_service.config import Dependency, Settings
from tria_service.production.failures import describe_failure
from tria_service.redaction import redact

MAX_ERROR_LENGTH = 300

if TYPE_CHECKING:
    from tria_service.chat.rate_limit import RateDecision


class SessionNotFoundError(LookupError):
    """No session with this id, in Redis or in PostgreSQL (404)."""

    def __init__(self, session_id: UUID, rate: RateDecision | None = None) -> None:
        super().__init__(f"session {session_id} not found")
        self.session_id = session_id
        self.rate = rate


class RateLimitedError(Exception):
    """The session or the client is over its limit for the current window (429)."""

    def __init__(self, decision: RateDecision) -> None:
        super().__init__(f"rate limit of {decision.limit} per {decision.window}s reached")
        self.decision = decision


class StorageUnavailableError(Exception):
    """PostgreSQL could not make the conversation durable, so nothing is acknowledged (503)."""


class KnowledgeError(Exception):
    """Ingestion could not run; the message says why and what to check (503 on reindex)."""


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
