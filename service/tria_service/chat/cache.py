"""Answers to repeated questions, cached in Redis with a TTL.

The key is a digest of the normalised question, the knowledge version, the model, the collection
(when answers draw on one) and the conversation before the question: a follow-up such as "how long
does that take?" means something else in every conversation, so it is only replayed where the
conversation was the same. A reindex or a model change never serves an answer built from something
else. Only answers worth repeating are stored: never an escalation or a failure. Redis failing is a
miss, never an error.

A synthetic session (a deployment gate's own) must leave nothing behind once deleted, so each
entry it creates is claimed: written only if absent (an entry that existed belongs to real
traffic and stays) and named in the session's claims set, which outlives every entry it names;
deleting the session deletes its claimed entries and the set.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from tria_service.chat.intents import Intent
from tria_service.config import Settings
from tria_service.redis_guard import RedisGuard

KEY = "tria:answer:{digest}"
CLAIMS_KEY = "tria:synthetic:{id}:answers"

# KEYS: the answer, the session's claims set; ARGV: the answer's JSON, TTL in seconds. Stores the
# answer only if absent, and then names it in the set, whose TTL is renewed to the answer's: the
# set expires no earlier than the last entry it names. Returns 1 when the entry was created.
_CLAIM = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""
_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?!.…]+$")

log = structlog.get_logger(__name__)


class CachedSource(BaseModel):
    source_id: str
    title: str


class CachedAnswer(BaseModel):
    """What a cache hit replays."""

    reply: str
    intent: Intent
    confidence: float
    sources: list[CachedSource]


@dataclass
class _Counters:
    hits: int = 0
    misses: int = 0
    stores: int = 0


def normalise(question: str) -> str:
    """Case, spacing and closing punctuation do not make a question different."""
    return _TRAILING.sub("", _SPACE.sub(" ", question.casefold()).strip())


class ResponseCache:
    """Get and put answers; counts hits and misses for diagnostics."""

    def __init__(self, guard: RedisGuard, settings: Settings) -> None:
        self.ttl = settings.tria_cache_ttl
        self._guard = guard
        self._claim = guard.redis.register_script(_CLAIM)
        self._counters = _Counters()

    @staticmethod
    def key(
        question: str,
        *,
        version: str,
        model: str,
        knowledge: str | None,
        conversation: Sequence[str] = (),
    ) -> str:
        """``knowledge`` is the collection answers draw on, None when they draw on none;
        ``conversation`` the messages sent before the question, oldest first."""
        earlier = hashlib.sha256(json.dumps(list(conversation)).encode()).hexdigest()
        material = "\n".join([model, knowledge or "", version, earlier, normalise(question)])
        return KEY.format(digest=hashlib.sha256(material.encode()).hexdigest())

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under ``key``; None on a miss, or when Redis cannot be asked."""
        raw = await self._guard.run("cache_get", lambda redis: redis.get(key), None)
        answer = _parse(raw) if isinstance(raw, str) else None
        if answer is None:
            self._counters.misses += 1
            return None
        self._counters.hits += 1
        return answer

    async def put(self, key: str, answer: CachedAnswer, *, claim_for: UUID | None = None) -> None:
        """Store ``answer`` for TRIA_CACHE_TTL seconds (best effort). With ``claim_for`` (a
        synthetic session) only an absent entry is written, and it is claimed for that session."""
        value = answer.model_dump_json()
        if claim_for is None:
            stored = await self._guard.run(
                "cache_put", lambda redis: redis.set(key, value, ex=self.ttl), None
            )
        else:
            keys = [key, CLAIMS_KEY.format(id=claim_for)]
            stored = await self._guard.run(
                "cache_claim",
                lambda redis: self._claim(keys=keys, args=[value, self.ttl], client=redis),
                None,
            )
        if stored:
            self._counters.stores += 1

    async def forget(self, session_id: UUID) -> None:
        """Delete the entries ``session_id`` claimed, and its claims set (best effort: when Redis
        cannot be asked, they expire with their TTL)."""
        claims = CLAIMS_KEY.format(id=session_id)

        async def delete(redis: Redis) -> None:
            claimed = await redis.smembers(claims)
            await redis.delete(claims, *claimed)

        await self._guard.run("cache_forget", delete, None)

    async def close(self) -> None:
        """The shutdown step: the entries stay in Redis with their TTL, but the counters end with
        the process, so their final figures go to the log (was the TTL worth it?)."""
        log.info("cache.closed", **self._figures())

    async def diagnostics(self) -> dict[str, Any]:
        return {
            "status": "warn" if self._guard.bypassing else "pass",
            "ttl_s": self.ttl,
            **self._figures(),
        }

    def _figures(self) -> dict[str, Any]:
        counters = self._counters
        lookups = counters.hits + counters.misses
        return {
            **asdict(counters),
            "hit_ratio": round(counters.hits / lookups, 4) if lookups else None,
        }


def _parse(raw: str) -> CachedAnswer | None:
    """A stored answer, or None for one written by an incompatible version (a miss)."""
    try:
        return CachedAnswer.model_validate_json(raw)
    except ValidationError:
        return None
