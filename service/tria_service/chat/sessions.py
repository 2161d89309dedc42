"""Conversation state: hot in Redis with a TTL, durable in PostgreSQL, written through.

Every turn is committed to PostgreSQL before the reply goes out, so an acknowledged message is
never lost; Redis holds the recent window the agent sends as context. When Redis has lost a
session (flushed, expired, restarted) it is rebuilt from PostgreSQL on next use. Redis trouble
is logged and worked around; PostgreSQL trouble means nothing can be acknowledged, and raises
StorageUnavailableError.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
import redis.exceptions
import structlog

from tria_service.chat.errors import SessionNotFoundError, StorageUnavailableError, describe_error
from tria_service.chat.resources import Resources, resolve
from tria_service.clients import Clients
from tria_service.config import Dependency, Settings
from tria_service.production.failures import ClientsClosedError

Role = Literal["user", "assistant"]
SESSION_KEY = "tria:session:{id}"
MESSAGES_KEY = "tria:session:{id}:messages"
_STORAGE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

# Append to the hot window if the session is still in Redis; otherwise write the whole window,
# so a session Redis lost mid-turn never comes back with only its latest messages.
# KEYS: session hash, messages list. ARGV: ttl, window, new message count, client_id, metadata,
# created_at, failures, then the whole window (oldest first, the new messages last).
_RECORD = """
local ttl, window, fresh = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local first = 8
if redis.call('EXISTS', KEYS[1]) == 1 then
  first = #ARGV - fresh + 1
else
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'client_id', ARGV[4], 'metadata', ARGV[5], 'created_at', ARGV[6])
end
redis.call('HSET', KEYS[1], 'failures', ARGV[7])
for i = first, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('LTRIM', KEYS[2], -window, -1)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StoredMessage:
    """One message as persisted; ``metadata`` holds an assistant reply's sources and flags."""

    id: int
    role: Role
    content: str
    intent: str | None
    confidence: float | None
    metadata: dict[str, Any]
    created_at: datetime

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "role": self.role,
                "content": self.content,
                "intent": self.intent,
                "confidence": self.confidence,
                "metadata": self.metadata,
                "created_at": self.created_at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> StoredMessage:
        data = json.loads(raw)
        return cls(
            id=int(data["id"]),
            role=data["role"],
            content=data["content"],
            intent=data.get("intent"),
            confidence=data.get("confidence"),
            metadata=data.get("metadata") or {},
            created_at=datetime.fromisoformat(data["created_at"]),
        )

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredMessage:
        return cls(
            id=row["id"],
            role=row["role"],
            content=row["content"],
            intent=row["intent"],
            confidence=row["confidence"],
            metadata=json.loads(row["metadata"]),
            created_at=row["created_at"],
        )


@dataclass
class Session:
    """A conversation: who it belongs to, its recent window, and its run of failed turns."""

    id: UUID
    client_id: str
    metadata: dict[str, Any]
    created_at: datetime
    history: list[StoredMessage] = field(default_factory=list)
    failures: int = 0
    new: bool = False


@dataclass(frozen=True)
class TurnRecord:
    """What one turn adds: the user's message, its classification, the reply and its outcome."""

    message: str
    intent: str
    confidence: float
    reply: str
    reply_metadata: dict[str, Any]
    escalation_reason: str | None
    failures: int


@dataclass(frozen=True)
class DeletedSession:
    messages: int
    escalations: int


@dataclass
class _Counters:
    created: int = 0
    hot_hits: int = 0
    rebuilt: int = 0
    redis_errors: int = 0


class SessionManager:
    """Sessions over the shared Redis and PostgreSQL clients.

    ``runtime`` is accepted so the integration guide's ``SessionManager(runtime=None)`` works;
    the manager needs no runtime of its own.
    """

    def __init__(
        self,
        *,
        runtime: object = None,
        ttl: int | None = None,
        history: int | None = None,
        settings: Settings | None = None,
        clients: Clients | None = None,
    ) -> None:
        self._resources: Resources = resolve(settings=settings, clients=clients)
        self.settings = self._resources.settings
        self.ttl = ttl or self.settings.tria_session_ttl
        self.window = history or self.settings.tria_session_history
        self._record = self._clients.redis.register_script(_RECORD)
        self._counters = _Counters()

    @property
    def _clients(self) -> Clients:
        return self._resources.clients

    async def close(self) -> None:
        await self._resources.close()

    def start(self, client_id: str, *, synthetic: bool = False) -> Session:
        """A new session; it is stored with its first turn."""
        metadata: dict[str, Any] = {"synthetic": True} if synthetic else {}
        return Session(uuid.uuid4(), client_id, metadata, datetime.now(UTC), new=True)

    async def open(self, session_id: UUID) -> Session:
        """The session from Redis, else rebuilt from PostgreSQL; SessionNotFoundError if neither."""
        session = await self._hot(session_id)
        if session is not None:
            self._counters.hot_hits += 1
            return session
        async with self._storage() as conn:
            row = await conn.fetchrow(
                "SELECT client_id, metadata, created_at FROM chat_sessions WHERE id = $1",
                session_id,
            )
            if row is None:
                raise SessionNotFoundError(session_id)
            rows = await conn.fetch(
                "SELECT id, role, content, intent, confidence, metadata, created_at"
                " FROM chat_messages WHERE session_id = $1 ORDER BY id DESC LIMIT $2",
                session_id,
                self.window,
            )
        history = [StoredMessage.from_row(r) for r in reversed(rows)]
        session = Session(
            session_id,
            row["client_id"],
            json.loads(row["metadata"]),
            row["created_at"],
            history,
            failures=_failure_run(history),
        )
        self._counters.rebuilt += 1
        log.info("session.rebuilt", session_id=str(session_id), messages=len(history))
        await self._write_hot(session, [])
        return session

    async def record(self, session: Session, turn: TurnRecord) -> None:
        """Commit the turn to PostgreSQL (then to Redis); only then may the reply be returned."""
        async with self._storage() as conn, conn.transaction():
            if session.new:
                await conn.execute(
                    "INSERT INTO chat_sessions (id, client_id, metadata) VALUES ($1, $2, $3)",
                    session.id,
                    session.client_id,
                    json.dumps(session.metadata),
                )
            else:
                updated = await conn.execute(
                    "UPDATE chat_sessions SET updated_at = now() WHERE id = $1", session.id
                )
                if updated == "UPDATE 0":  # deleted while this turn was answered
                    raise SessionNotFoundError(session.id)
            user = await self._insert(
                conn, session.id, "user", turn.message, turn.intent, turn.confidence, {}
            )
            reply = await self._insert(
                conn, session.id, "assistant", turn.reply, None, None, turn.reply_metadata
            )
            if turn.escalation_reason is not None:
                await conn.execute(
                    "INSERT INTO escalations (session_id, message_id, reason, intent)"
                    " VALUES ($1, $2, $3, $4)",
                    session.id,
                    user.id,
                    turn.escalation_reason,
                    turn.intent,
                )
        if session.new:
            self._counters.created += 1
            session.new = False
        session.failures = turn.failures
        session.history = [*session.history, user, reply][-self.window :]
        await self._write_hot(session, [user, reply])

    async def messages(self, session_id: UUID) -> list[StoredMessage]:
        """Every message of the session in order, from PostgreSQL (the complete record)."""
        async with self._storage() as conn:
            exists = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM chat_sessions WHERE id = $1)", session_id
            )
            if not exists:
                raise SessionNotFoundError(session_id)
            rows = await conn.fetch(
                "SELECT id, role, content, intent, confidence, metadata, created_at"
                " FROM chat_messages WHERE session_id = $1 ORDER BY id",
                session_id,
            )
        return [StoredMessage.from_row(r) for r in rows]

    async def delete(self, session_id: UUID) -> DeletedSession:
        """Delete the session, its messages and escalations, and its Redis state."""
        async with self._storage() as conn, conn.transaction():
            counts = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM chat_messages WHERE session_id = $1) AS messages,"
                " (SELECT count(*) FROM escalations WHERE session_id = $1) AS escalations",
                session_id,
            )
            deleted = await conn.execute("DELETE FROM chat_sessions WHERE id = $1", session_id)
        if deleted == "DELETE 0" or counts is None:
            raise SessionNotFoundError(session_id)
        await self._forget_hot(session_id)
        return DeletedSession(counts["messages"], counts["escalations"])

    async def diagnostics(self) -> dict[str, Any]:
        counters = self._counters
        return {
            "status": "pass",
            "ttl_s": self.ttl,
            "history_window": self.window,
            "created": counters.created,
            "served_from_redis": counters.hot_hits,
            "rebuilt_from_database": counters.rebuilt,
            "redis_errors": counters.redis_errors,
        }

    # ---------------------------------------------------------------- Redis

    async def _hot(self, session_id: UUID) -> Session | None:
        try:
            async with self._clients.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(SESSION_KEY.format(id=session_id))
                pipe.lrange(MESSAGES_KEY.format(id=session_id), 0, -1)
                fields, raw_messages = await pipe.execute()
        except redis.exceptions.RedisError as exc:
            self._redis_trouble("read", exc)
            return None
        if not fields:
            return None
        try:
            return Session(
                session_id,
                fields["client_id"],
                json.loads(fields["metadata"]),
                datetime.fromisoformat(fields["created_at"]),
                [StoredMessage.from_json(m) for m in raw_messages],
                failures=int(fields.get("failures", 0)),
            )
        except (KeyError, ValueError, TypeError) as exc:  # not written by this version: rebuild
            self._redis_trouble("parse", exc)
            return None

    async def _write_hot(self, session: Session, fresh: Sequence[StoredMessage]) -> None:
        """Best effort: PostgreSQL has the turn already, and a lost window is rebuilt from it."""
        args: list[str | int] = [
            self.ttl,
            self.window,
            len(fresh),
            session.client_id,
            json.dumps(session.metadata),
            session.created_at.isoformat(),
            session.failures,
            *(m.to_json() for m in session.history),
        ]
        keys = [SESSION_KEY.format(id=session.id), MESSAGES_KEY.format(id=session.id)]
        try:
            await self._record(keys=keys, args=args)
        except redis.exceptions.RedisError as exc:
            self._redis_trouble("write", exc)
            await self._forget_hot(session.id)

    async def _forget_hot(self, session_id: UUID) -> None:
        keys = [SESSION_KEY.format(id=session_id), MESSAGES_KEY.format(id=session_id)]
        try:
            await self._clients.redis.delete(*keys)
        except redis.exceptions.RedisError as exc:
            self._redis_trouble("delete", exc)

    def _redis_trouble(self, action: str, exc: BaseException) -> None:
        self._counters.redis_errors += 1
        log.warning("session.redis_failed", action=action, error=describe_error(exc, self.settings))

    # ---------------------------------------------------------------- PostgreSQL

    @asynccontextmanager
    async def _storage(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A pooled connection; a failure of PostgreSQL itself becomes StorageUnavailableError."""
        try:
            pool = await self._clients.database()
            async with pool.acquire() as conn:
                yield conn
        except (*_STORAGE_ERRORS, ClientsClosedError) as exc:
            cause = describe_error(exc, self.settings, Dependency.DATABASE)
            log.error("session.storage_failed", error=cause)
            raise StorageUnavailableError(cause) from exc

    @staticmethod
    async def _insert(
        conn: asyncpg.pool.PoolConnectionProxy,
        session_id: UUID,
        role: Role,
        content: str,
        intent: str | None,
        confidence: float | None,
        metadata: dict[str, Any],
    ) -> StoredMessage:
        row = await conn.fetchrow(
            "INSERT INTO chat_messages (session_id, role, content, intent, confidence, metadata)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at",
            session_id,
            role,
            content,
            intent,
            confidence,
            json.dumps(metadata),
        )
        assert row is not None  # INSERT ... RETURNING always returns the row
        return StoredMessage(
            row["id"], role, content, intent, confidence, metadata, row["created_at"]
        )


def _failure_run(history: Sequence[StoredMessage]) -> int:
    """Failed replies at the end of the history, counted back to the last success or escalation."""
    run = 0
    for message in reversed(history):
        if message.role != "assistant":
            continue
        if message.metadata.get("escalated") or not message.metadata.get("failed"):
            break
        run += 1
    return run
