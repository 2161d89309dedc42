"""What the chat components raise, each mapped to one HTTP status by the chat API."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

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
