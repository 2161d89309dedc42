"""The customer-service agent: one turn from a customer's message to a durable, cited reply.

A turn is: rate limit → session → answer cache → (intent ‖ knowledge search) → answer or hand
over → commit to PostgreSQL → cache. The cache is consulted before anything else, so a repeated
question costs no model call at all. The agent hands a conversation to a human (an escalation
row, and a reply that says so) on a complaint, a request for a person, a classification it is not
sure of, a run of failed turns, or when the model cannot be reached; a failing dependency never
turns into an error for the customer, only PostgreSQL failing does (nothing could be made
durable).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

import httpx
import openai
import structlog
from openai.types.chat import ChatCompletionMessageParam

from tria_service.chat import prompts
from tria_service.chat.cache import CachedAnswer, CachedSource, ResponseCache
from tria_service.chat.errors import RateLimitedError, SessionNotFoundError
from tria_service.chat.intents import Classification, Intent, IntentClassifier
from tria_service.chat.knowledge import KnowledgeBase, SearchHit
from tria_service.chat.rate_limit import RateDecision, RateLimiter
from tria_service.chat.resources import Resources, resolve
from tria_service.chat.sessions import Session, SessionManager, TurnRecord
from tria_service.chroma_http import ChromaError
from tria_service.clients import Clients
from tria_service.config import Settings
from tria_service.production.failures import ClientsClosedError, describe_error

# Intents whose questions the help centre should answer: a reply citing nothing is a failed turn.
KNOWLEDGE_INTENTS = frozenset({Intent.ORDER_STATUS, Intent.BILLING, Intent.TECHNICAL_SUPPORT})
NO_VERSION = "none"

log = structlog.get_logger(__name__)


class EmptyReplyError(Exception):
    """The model answered with no text: for the customer, as good as no answer at all."""


# What a turn survives with a graceful reply: the model or the knowledge base failing, too slow,
# or closed while the service stops. Anything else is a bug of ours: it surfaces as a 500, not as
# a polite reply and an escalation that would hide it.
DEPENDENCY_ERRORS = (
    openai.APIError,
    httpx.HTTPError,
    ChromaError,
    TimeoutError,
    EmptyReplyError,
    ClientsClosedError,
)


class EscalationReason(StrEnum):
    COMPLAINT = "complaint"
    HUMAN_HANDOFF = "human_handoff"
    ASSISTANT_UNAVAILABLE = "assistant_unavailable"
    LOW_CONFIDENCE = "low_confidence"
    REPEATED_FAILURES = "repeated_failures"


_REQUESTED = {
    Intent.COMPLAINT: (EscalationReason.COMPLAINT, prompts.COMPLAINT_REPLY),
    Intent.HUMAN_HANDOFF: (EscalationReason.HUMAN_HANDOFF, prompts.HANDOFF_REPLY),
}


@dataclass(frozen=True)
class Source:
    source_id: str
    title: str


@dataclass(frozen=True)
class ChatReply:
    """What one turn returns to the customer."""

    session_id: UUID
    reply: str
    intent: Intent
    confidence: float
    sources: list[Source]
    escalated: bool
    cached: bool
    rate: RateDecision | None = None


@dataclass(frozen=True)
class _Outcome:
    reply: str
    intent: Intent
    confidence: float
    sources: list[Source]
    cached: bool = False
    failed: bool = False
    escalation: EscalationReason | None = None


@dataclass
class _Counters:
    turns: int = 0
    cached: int = 0
    assistant_errors: int = 0
    escalations: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    last_turn_failed: bool = False


class AsyncCustomerServiceAgent:
    """Answers customer messages with the classifier, the knowledge base, cache and limits."""

    def __init__(
        self,
        api_key: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        enable_rag: bool = True,
        enable_escalation: bool = True,
        enable_cache: bool = True,
        enable_rate_limiting: bool = True,
        *,
        base_url: str | None = None,
        settings: Settings | None = None,
        clients: Clients | None = None,
        classifier: IntentClassifier | None = None,
        knowledge_base: KnowledgeBase | None = None,
        sessions: SessionManager | None = None,
        cache: ResponseCache | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._resources: Resources = resolve(
            api_key, base_url=base_url, settings=settings, clients=clients
        )
        config = self._resources.settings
        shared = self._resources.clients
        self.settings = config
        self.model = model or config.openai_model
        self.temperature = config.tria_agent_temperature if temperature is None else temperature
        self.enable_rag = enable_rag
        self.enable_escalation = enable_escalation
        self.enable_cache = enable_cache
        self.enable_rate_limiting = enable_rate_limiting
        self.classifier = classifier or IntentClassifier(api_key, base_url=base_url, clients=shared)
        self.knowledge_base = knowledge_base or KnowledgeBase(
            api_key, base_url=base_url, clients=shared
        )
        self.sessions = sessions or SessionManager(clients=shared)
        self.cache = cache or ResponseCache(shared.redis_guard, config)
        self.rate_limiter = rate_limiter or RateLimiter(shared.redis_guard, config)
        self._counters = _Counters()

    async def close(self) -> None:
        """Close the clients if this agent opened them (its parts share them)."""
        await self._resources.close()

    async def chat(
        self,
        message: str,
        *,
        session_id: UUID | None = None,
        client_id: str = "local",
        synthetic: bool = False,
    ) -> ChatReply:
        """One turn. Raises RateLimitedError, SessionNotFoundError or StorageUnavailableError.

        ``synthetic`` (the caller proved it is a deployment gate) marks a new session, and counts
        the turn for the session alone: nothing is left under the client once the session is
        deleted.
        """
        client_scope = not synthetic
        if session_id is None:
            session = self.sessions.start(client_id, synthetic=synthetic)
            # a first turn counts too (for the client as well, unless synthetic)
            rate = await self.limit(client_id, session.id, client_scope=client_scope)
        else:
            rate = await self.limit(client_id, session_id, client_scope=client_scope)
            try:
                session = await self.sessions.open(session_id)
            except SessionNotFoundError as exc:
                exc.rate = rate
                raise
        cache_key = await self._cache_key(message, session)
        outcome = await self._cached(cache_key) if cache_key else None
        if outcome is None:
            outcome = await self._answer_turn(session, message)
        await self._record(session, message, outcome)
        if cache_key and not (outcome.cached or outcome.failed or outcome.escalation):
            await self.cache.put(
                cache_key,
                CachedAnswer(
                    reply=outcome.reply,
                    intent=outcome.intent,
                    confidence=outcome.confidence,
                    sources=[CachedSource(**asdict(s)) for s in outcome.sources],
                ),
                claim_for=session.id if synthetic or session.synthetic else None,
            )
        self._count(outcome)
        return ChatReply(
            session_id=session.id,
            reply=outcome.reply,
            intent=outcome.intent,
            confidence=outcome.confidence,
            sources=outcome.sources,
            escalated=outcome.escalation is not None,
            cached=outcome.cached,
            rate=rate,
        )

    async def limit(
        self, client_id: str, session_id: UUID | None = None, *, client_scope: bool = True
    ) -> RateDecision | None:
        """Count a request (a turn, or a read of a session's messages without ``session_id``);
        raises RateLimitedError over a limit. None when limiting is off or Redis is unreachable.
        ``client_scope=False`` counts it for the session alone (synthetic traffic)."""
        if not self.enable_rate_limiting:
            return None
        rate = await self.rate_limiter.hit(client_id, session_id, client_scope=client_scope)
        if rate is not None and not rate.allowed:
            raise RateLimitedError(rate)
        return rate

    async def delete_session(self, session_id: UUID) -> dict[str, int]:
        """Delete a session everywhere (PostgreSQL rows, hot state, its rate counter, the cache
        entries it claimed)."""
        deleted = await self.sessions.delete(session_id)
        await self.rate_limiter.forget(session_id)
        await self.cache.forget(session_id)
        return {"messages": deleted.messages, "escalations": deleted.escalations}

    async def diagnostics(self) -> dict[str, Any]:
        counters = self._counters
        return {
            "status": "warn" if counters.last_turn_failed else "pass",
            "model": self.model,
            "temperature": self.temperature,
            "features": {
                "rag": self.enable_rag,
                "escalation": self.enable_escalation,
                "cache": self.enable_cache,
                "rate_limiting": self.enable_rate_limiting,
            },
            "escalation_confidence": self.settings.tria_escalation_confidence,
            "escalation_max_failures": self.settings.tria_escalation_max_failures,
            "turns": counters.turns,
            "cached_turns": counters.cached,
            "escalations": dict(counters.escalations),
            "assistant_errors": counters.assistant_errors,
            "last_error": counters.last_error,
        }

    # ---------------------------------------------------------------- a turn

    async def _record(self, session: Session, message: str, outcome: _Outcome) -> None:
        """Make the turn durable; the run of failed turns ends with a success or an escalation."""
        failures = 0 if outcome.escalation or not outcome.failed else session.failures + 1
        await self.sessions.record(
            session,
            TurnRecord(
                message=message,
                intent=outcome.intent.value,
                confidence=outcome.confidence,
                reply=outcome.reply,
                reply_metadata={
                    "sources": [asdict(s) for s in outcome.sources],
                    "cached": outcome.cached,
                    "failed": outcome.failed,
                    "escalated": outcome.escalation is not None,
                    "escalation_reason": outcome.escalation,
                },
                escalation_reason=outcome.escalation,
                failures=failures,
            ),
        )

    async def _cache_key(self, message: str, session: Session) -> str | None:
        if not self.enable_cache:
            return None
        version = await self.knowledge_base.version() if self.enable_rag else NO_VERSION
        if version is None:  # the knowledge in use is unknown: neither serve nor store
            return None
        return self.cache.key(
            message,
            version=version,
            model=self.model,
            knowledge=self.knowledge_base.collection if self.enable_rag else None,
            conversation=[f"{m.role}: {m.content}" for m in session.history],
        )

    async def _cached(self, key: str) -> _Outcome | None:
        hit = await self.cache.get(key)
        if hit is None:
            return None
        sources = [Source(s.source_id, s.title) for s in hit.sources]
        return _Outcome(hit.reply, hit.intent, hit.confidence, sources, cached=True)

    async def _answer_turn(self, session: Session, message: str) -> _Outcome:
        history = _history(session)
        classification, hits = await asyncio.gather(
            self.classifier.classify(message, history),
            self._search(message),
            return_exceptions=True,
        )
        assert isinstance(classification, Classification)  # classify() never raises
        intent, confidence = classification.intent, classification.confidence
        if self.enable_escalation and intent in _REQUESTED:
            requested, handoff = _REQUESTED[intent]
            return _Outcome(handoff, intent, confidence, [], escalation=requested)
        try:
            if isinstance(hits, BaseException):
                raise hits
            reply, used = await self._answer(message, history, hits)
        except DEPENDENCY_ERRORS as exc:
            return self._unavailable(classification, exc)
        sources = [Source(hit.source_id, hit.title) for hit in used]
        failed = classification.failed or (
            self.enable_rag and intent in KNOWLEDGE_INTENTS and not sources
        )
        reason = self._escalation(classification, session, failed)
        if reason is EscalationReason.LOW_CONFIDENCE:
            reply = f"{reply}\n\n{prompts.LOW_CONFIDENCE_NOTE}"
        elif reason is EscalationReason.REPEATED_FAILURES:
            reply = f"{reply}\n\n{prompts.REPEATED_FAILURE_NOTE}"
        return _Outcome(reply, intent, confidence, sources, failed=failed, escalation=reason)

    def _escalation(
        self, classification: Classification, session: Session, failed: bool
    ) -> EscalationReason | None:
        if not self.enable_escalation:
            return None
        if classification.confidence < self.settings.tria_escalation_confidence:
            return EscalationReason.LOW_CONFIDENCE
        if failed and session.failures + 1 >= self.settings.tria_escalation_max_failures:
            return EscalationReason.REPEATED_FAILURES
        return None

    def _unavailable(self, classification: Classification, exc: BaseException) -> _Outcome:
        """The model (or the knowledge base) failed: a graceful reply, escalated if enabled."""
        cause = describe_error(exc, self.settings)
        self._counters.assistant_errors += 1
        self._counters.last_error = cause
        log.error("agent.answer_failed", error=cause)
        intent, confidence = classification.intent, classification.confidence
        if not self.enable_escalation:
            return _Outcome(prompts.UNAVAILABLE_REPLY, intent, confidence, [], failed=True)
        return _Outcome(
            prompts.UNAVAILABLE_ESCALATED_REPLY,
            intent,
            confidence,
            [],
            failed=True,
            escalation=EscalationReason.ASSISTANT_UNAVAILABLE,
        )

    async def _search(self, message: str) -> list[SearchHit]:
        if not self.enable_rag:
            return []
        return await self.knowledge_base.search(
            message,
            k=self.settings.tria_rag_top_k,
            min_score=self.settings.tria_rag_min_score,
        )

    async def _answer(
        self,
        message: str,
        history: Sequence[ChatCompletionMessageParam],
        hits: Sequence[SearchHit],
    ) -> tuple[str, list[SearchHit]]:
        """The model's reply and the retrieved chunks it cites."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": prompts.SYSTEM_PROMPT},
            *history,
            {"role": "user", "content": prompts.user_prompt(message, hits)},
        ]
        async with asyncio.timeout(self.settings.tria_openai_request_timeout):
            completion = await self._resources.openai.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=self.temperature,
                max_completion_tokens=self.settings.tria_agent_max_tokens,
            )
        content = (completion.choices[0].message.content or "").strip()
        if not content:
            raise EmptyReplyError("the model returned an empty reply")
        return content, prompts.cited(content, hits)

    def _count(self, outcome: _Outcome) -> None:
        counters = self._counters
        counters.turns += 1
        counters.cached += outcome.cached
        counters.last_turn_failed = outcome.failed
        if outcome.escalation is not None:
            counters.escalations[outcome.escalation.value] += 1


def _history(session: Session) -> list[ChatCompletionMessageParam]:
    """The session's recent window as chat messages, oldest first."""
    messages: list[ChatCompletionMessageParam] = []
    for message in session.history:
        if message.role == "user":
            messages.append({"role": "user", "content": message.content})
        else:
            messages.append({"role": "assistant", "content": message.content})
    return messages
