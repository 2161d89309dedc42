"""Conversation state: hot in Redis with a TTL, durable in PostgreSQL, written through.

Every turn is committed to PostgreSQL before the reply goes out, so an acknowledged message is
never lost; Redis holds the recent window the agent sends as context, as a sorted set scored by
message id, so turns of one session finishing in any order still read back in PostgreSQL's order.
A turn only appends to a window Redis still holds: when Redis has lost it (flushed, expired,
restarted) the next use rebuilds it from PostgreSQL, holding the session row so that no turn
commits between the read and the write. Redis trouble is worked around (through the clients'
RedisGuard); PostgreSQL trouble means nothing can be acknowledged, and raises
StorageUnavailableError.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
import structlog
from redis.asyncio import Redis

from tria_service.chat.errors import SessionNotFoundError, StorageUnavailableError
from tria_service.chat.resources import Resources, resolve
from tria_service.clients import Clients
from tria_service.config import Dependency, Settings
from tria_service.production.failures import ClientsClosedError, describe_error

Role = Literal["user", "assistant"]
# v2: the window became a sorted set; new names keep instances of the old layout out of its way.
SESSION_KEY = "tria:session:v2:{id}"
WINDOW_KEY = "tria:session:v2:{id}:window"
_STORAGE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

# KEYS: session hash, window (sorted set: score message id, member its JSON). ARGV: mode, ttl,
# window size, failures, messages stored (in PostgreSQL, this turn's included), messages stored
# before this turn, client_id, metadata, created_at, then (id, JSON) pairs. "replace" writes the
# whole window. "append" adds a turn only to a window holding every message before it: one that
# Redis lost, or that a skipped or reordered write left behind, is dropped (0 returned) and the
# next use rebuilds it from PostgreSQL.
_WRITE = """
local mode, ttl, size = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if mode == 'append' then
  if redis.call('HGET', KEYS[1], 'count') ~= ARGV[6] then
    redis.call('DEL', KEYS[1], KEYS[2])
    return 0
  end
else
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'client_id', ARGV[7], 'metadata', ARGV[8], 'created_at', ARGV[9])
end
redis.call('HSET', KEYS[1], 'failures', ARGV[4], 'count', ARGV[5])
for i = 10, #ARGV, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[i], ARGV[i])
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -size - 1)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""
_COUNT = "SELECT count(*) FROM chat_messages WHERE session_id = $1"

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

    @property
    def synthetic(self) -> bool:
        """A deployment gate's own session (marked on its first turn)."""
        return bool(self.metadata.get("synthetic"))


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
        self._guard = self._clients.redis_guard
        self._write = self._guard.redis.register_script(_WRITE)
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
        async with self._storage() as conn, conn.transaction():
            # FOR SHARE holds off this session's turns (their UPDATE waits) until the window read
            # here is in Redis, so none of them can commit a message the window then misses.
            row = await conn.fetchrow(
                "SELECT client_id, metadata, created_at FROM chat_sessions WHERE id = $1 FOR SHARE",
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
            stored = await conn.fetchval(_COUNT, session_id)
            history = [StoredMessage.from_row(r) for r in reversed(rows)]
            session = Session(
                session_id,
                row["client_id"],
                json.loads(row["metadata"]),
                row["created_at"],
                history,
                failures=_failure_run(history),
            )
            await self._write_hot(session, history, stored=stored, replace=True)
        self._counters.rebuilt += 1
        log.info("session.rebuilt", session_id=str(session_id), messages=len(history))
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
            stored = await conn.fetchval(_COUNT, session.id)
        created, session.new = session.new, False
        session.failures = turn.failures
        session.history = [*session.history, user, reply][-self.window :]
        await self._write_hot(session, [user, reply], stored=stored, replace=created)
        self._counters.created += created

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
            "status": "warn" if self._guard.bypassing else "pass",
            "ttl_s": self.ttl,
            "history_window": self.window,
            "created": counters.created,
            "served_from_redis": counters.hot_hits,
            "rebuilt_from_database": counters.rebuilt,
        }

    # ---------------------------------------------------------------- Redis

    async def _hot(self, session_id: UUID) -> Session | None:
        """The session as Redis holds it; None when it does not (or cannot be asked)."""

        async def read(redis: Redis) -> list[Any]:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(SESSION_KEY.format(id=session_id))
                pipe.zrange(WINDOW_KEY.format(id=session_id), 0, -1)
                found: list[Any] = await pipe.execute()
            return found

        found = await self._guard.run("session_read", read, None)
        if not found or not found[0]:
            return None
        fields, window = found
        try:
            return Session(
                session_id,
                fields["client_id"],
                json.loads(fields["metadata"]),
                datetime.fromisoformat(fields["created_at"]),
                [StoredMessage.from_json(m) for m in window],
                failures=int(fields.get("failures", 0)),
            )
        except (KeyError, ValueError, TypeError) as exc:  # not written by this version: rebuild
            log.warning("session.unreadable", session_id=str(session_id), error=repr(exc))
            return None

    async def _write_hot(
        self, session: Session, messages: Sequence[StoredMessage], *, stored: int, replace: bool
    ) -> None:
        """Best effort: PostgreSQL has every message already, and a lost window is rebuilt.

        ``stored`` counts the session's messages in PostgreSQL, ``messages`` included.
        """
        args: list[str | int] = [
            "replace" if replace else "append",
            self.ttl,
            self.window,
            session.failures,
            stored,
            stored - len(messages),
            session.client_id,
            json.dumps(session.metadata),
            session.created_at.isoformat(),
        ]
        for message in messages:
            args += [message.id, message.to_json()]
        keys = [SESSION_KEY.format(id=session.id), WINDOW_KEY.format(id=session.id)]
        await self._guard.run("session_write", lambda r: self._write(keys, args, r), None)

    async def _forget_hot(self, session_id: UUID) -> None:
        keys = [SESSION_KEY.format(id=session_id), WINDOW_KEY.format(id=session_id)]
        await self._guard.run("session_delete", lambda redis: redis.delete(*keys), None)

    # ---------------------------------------------------------------- PostgreSQL

    @asynccontextmanager
    async def _storage(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A pooled connection; a failure of PostgreSQL itself becomes StorageUnavailableError.

        The whole use is bounded by TRIA_DB_COMMAND_TIMEOUT, and a connection cut off by it is
        closed rather than released: a hung server otherwise cost a turn that timeout twice over
        (the statement, then resetting the connection on release).
        """
        limit = self.settings.tria_db_command_timeout
        try:
            async with asyncio.timeout(limit):
                pool = await self._clients.database()
                async with pool.acquire() as conn:
                    try:
                        yield conn
                    except asyncio.CancelledError:
                        conn.terminate()  # else releasing it waits on the hung server again
                        raise
        except TimeoutError as exc:
            cause = (
                f"database: no answer within {limit:g}s — is PostgreSQL at "
                f"{self.settings.address(Dependency.DATABASE)} overloaded or hung? check "
                "DATABASE_URL, or raise TRIA_DB_COMMAND_TIMEOUT"
            )
            log.error("session.storage_failed", error=cause)
            raise StorageUnavailableError(cause) from exc
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
