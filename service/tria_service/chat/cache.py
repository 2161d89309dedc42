"""Answers to repeated questions, cached in Redis with a TTL.

The key is a digest of the normalised question, the knowledge version and the model (with the
collection, and whether answers draw on it), so a reindex or a model change never serves an answer
built from something else, and services sharing a Redis with other collections keep apart. Only
answers worth repeating are stored: never an escalation or a failure. A Redis failure is a miss,
never an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any

import redis.exceptions
import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from tria_service.chat.errors import describe_error
from tria_service.chat.intents import Intent
from tria_service.config import Settings

KEY = "tria:answer:{digest}"
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
    errors: int = 0


def normalise(question: str) -> str:
    """Case, spacing and closing punctuation do not make a question different."""
    return _TRAILING.sub("", _SPACE.sub(" ", question.casefold()).strip())


class ResponseCache:
    """Get and put answers; counts hits and misses for diagnostics."""

    def __init__(self, redis_client: Redis, settings: Settings) -> None:
        self.ttl = settings.tria_cache_ttl
        self.settings = settings
        self._redis = redis_client
        self._counters = _Counters()

    @staticmethod
    def key(question: str, *, version: str, model: str, knowledge: str | None) -> str:
        """``knowledge`` is the collection answers draw on, None when they draw on none."""
        material = "\n".join([model, knowledge or "", version, normalise(question)])
        return KEY.format(digest=hashlib.sha256(material.encode()).hexdigest())

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            raw = await self._redis.get(key)
        except redis.exceptions.RedisError as exc:
            self._trouble("get", exc)
            return None
        answer = _parse(raw) if isinstance(raw, str) else None
        if answer is None:
            self._counters.misses += 1
            return None
        self._counters.hits += 1
        return answer

    async def put(self, key: str, answer: CachedAnswer) -> None:
        try:
            await self._redis.set(key, answer.model_dump_json(), ex=self.ttl)
        except redis.exceptions.RedisError as exc:
            self._trouble("put", exc)
            return
        self._counters.stores += 1

    async def diagnostics(self) -> dict[str, Any]:
        counters = self._counters
        lookups = counters.hits + counters.misses
        return {
            "status": "pass" if counters.errors == 0 else "warn",
            "ttl_s": self.ttl,
            **asdict(counters),
            "hit_ratio": round(counters.hits / lookups, 4) if lookups else None,
        }

    def _trouble(self, action: str, exc: BaseException) -> None:
        self._counters.errors += 1
        log.warning("cache.redis_failed", action=action, error=describe_error(exc, self.settings))


def _parse(raw: str) -> CachedAnswer | None:
    """A stored answer, or None for one written by an incompatible version (a miss)."""
    try:
        return CachedAnswer.model_validate_json(raw)
    except ValidationError:
        return None
