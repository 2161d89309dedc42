"""The knowledge base: help-centre articles in a Chroma collection, embedded through OpenAI.

Ingestion is idempotent and per collection. What is stored is read back from Chroma itself (each
chunk carries its article's checksum), so an unchanged folder costs no embedding call and no
write, a changed article has its chunks replaced, and a removed one has them deleted. Instances
that ingest the same collection at once take turns under a PostgreSQL advisory lock, and the
catalog table records what each collection holds. The *version* is a digest of the stored
checksums; it is shared through Redis so every instance keys its answer cache on the same one.

The lock is a session-level one, held on one pooled connection with no transaction open: the
embedding and Chroma calls in between would otherwise leave a transaction idle (holding back
vacuum, and killed by an idle_in_transaction_session_timeout). Only the catalog's own statements
run in a transaction. The whole ingestion is bounded (ingestion_bound), and so is the wait for
another instance's turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import structlog

from tria_service.chat.articles import Article, Chunk, Folder, read_folder
from tria_service.chat.errors import KnowledgeError
from tria_service.chat.resources import Resources, resolve
from tria_service.chroma_http import ChromaNotFoundError
from tria_service.clients import Clients
from tria_service.config import Dependency, Settings
from tria_service.production.failures import describe_error

T = TypeVar("T")
VERSION_KEY = "tria:knowledge:{collection}:version"
NO_KNOWLEDGE = "empty"
# Besides one embedding call and one upsert per batch, an ingestion makes about this many Chroma
# calls (find the collection, again if it was recreated, read what it holds, delete) and PostgreSQL
# statements (the catalog's upsert and delete) while it holds the lock.
CHROMA_CALLS = 4
DATABASE_STATEMENTS = 2
_LOCK = "SELECT pg_advisory_lock(hashtextextended($1, 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended($1, 0))"

log = structlog.get_logger(__name__)

_UPSERT_CATALOG = """
INSERT INTO knowledge_documents (collection, source_id, title, checksum, chunk_count)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (collection, source_id) DO UPDATE SET
    title = EXCLUDED.title,
    checksum = EXCLUDED.checksum,
    chunk_count = EXCLUDED.chunk_count,
    ingested_at = CASE WHEN knowledge_documents.checksum = EXCLUDED.checksum
                       THEN knowledge_documents.ingested_at ELSE now() END
"""


@dataclass(frozen=True)
class SearchHit:
    """A chunk found for a query; ``score`` is cosine similarity (1 is identical)."""

    chunk_id: str
    source_id: str
    title: str
    section: str
    text: str
    score: float


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion did, counted in articles (and in chunks where noted)."""

    added: int
    updated: int
    deleted: int
    unchanged: int
    chunks_written: int
    chunks_deleted: int
    chunks: int
    version: str
    skipped: list[str]
    seconds: float
    finished_at: str


@dataclass
class _Stored:
    """One article as the collection holds it."""

    checksum: str | None = None
    embedding_model: str | None = None
    ids: set[str] = field(default_factory=set)


@dataclass
class _Plan:
    added: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    unchanged: list[Article] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stale_ids: list[str] = field(default_factory=list)

    def chunks_to_write(self) -> list[Chunk]:
        return [chunk for article in [*self.added, *self.updated] for chunk in article.chunks]


class KnowledgeBase:
    """Ingests a folder of articles into ``CHROMA_COLLECTION`` and searches it."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        embedding_model: str | None = None,
        collection: str | None = None,
        knowledge_dir: Path | None = None,
        base_url: str | None = None,
        settings: Settings | None = None,
        clients: Clients | None = None,
    ) -> None:
        self._resources: Resources = resolve(
            api_key, base_url=base_url, settings=settings, clients=clients
        )
        config = self._resources.settings
        self.settings = config
        self.embedding_model = embedding_model or config.openai_embedding_model
        self.collection = collection or config.chroma_collection
        self.knowledge_dir = knowledge_dir or config.knowledge_dir()
        self.last_ingest: IngestReport | None = None
        self.last_error: str | None = None
        self._collection_id: str | None = None
        self._version: str | None = None
        self._lock = asyncio.Lock()

    @property
    def _clients(self) -> Clients:
        return self._resources.clients

    @property
    def _version_key(self) -> str:
        return VERSION_KEY.format(collection=self.collection)

    async def close(self) -> None:
        """Let an ingestion in progress finish, then release clients this base opened."""
        async with self._lock:
            await self._resources.close()

    # ---------------------------------------------------------------- ingestion

    async def ingest(self) -> IngestReport:
        """Bring the collection in line with the folder; raises KnowledgeError saying why not."""
        started = time.perf_counter()
        try:
            async with self._lock:
                report = await self._ingest(started)
        except KnowledgeError as exc:
            self.last_error = str(exc)
            raise
        except Exception as exc:
            self.last_error = describe_error(exc, self.settings)
            raise KnowledgeError(self.last_error) from exc
        self.last_ingest, self.last_error = report, None
        log.info("knowledge.ingested", collection=self.collection, **asdict(report))
        return report

    def note_skipped(self, reason: str) -> None:
        """Record why ingestion did not run (e.g. OpenAI down at startup), for diagnostics."""
        self.last_error = f"ingestion skipped: {reason}"
        log.warning("knowledge.ingestion_skipped", collection=self.collection, reason=reason)

    async def _ingest(self, started: float) -> IngestReport:
        folder = await asyncio.to_thread(self._read_folder)
        bound = ingestion_bound(self.settings, sum(len(a.chunks) for a in folder.articles))
        pool = await self._clients.database()
        async with pool.acquire(timeout=self.settings.timeout_for(Dependency.DATABASE)) as conn:
            await self._wait_turn(conn, bound)
            deadline = asyncio.timeout(bound)
            try:
                async with deadline:
                    plan = await self._sync(conn, folder)
            except BaseException as exc:
                conn.terminate()  # perhaps mid-statement: ending the session drops its lock
                if isinstance(exc, TimeoutError) and deadline.expired():
                    raise KnowledgeError(
                        f"ingestion of {self.collection} did not finish within {bound:g}s — is "
                        "OpenAI, Chroma or PostgreSQL hung? raise TRIA_OPENAI_REQUEST_TIMEOUT, "
                        "TRIA_CHROMA_REQUEST_TIMEOUT or TRIA_DB_COMMAND_TIMEOUT"
                    ) from exc
                raise
            await conn.execute(_UNLOCK, ingestion_lock(self.collection))
        version = _digest(folder.articles, self.embedding_model)
        await self._publish_version(version)
        written = plan.chunks_to_write()
        return IngestReport(
            added=len(plan.added),
            updated=len(plan.updated),
            deleted=len(plan.removed),
            unchanged=len(plan.unchanged),
            chunks_written=len(written),
            chunks_deleted=len(plan.stale_ids),
            chunks=sum(len(a.chunks) for a in folder.articles),
            version=version,
            skipped=list(folder.skipped),
            seconds=round(time.perf_counter() - started, 3),
            finished_at=datetime.now(UTC).isoformat(),
        )

    async def _wait_turn(self, conn: asyncpg.pool.PoolConnectionProxy, bound: float) -> None:
        """Take the collection's lock: instances ingesting it take turns, other collections do
        not wait. Another instance holds it at most its own bound, so a longer wait means it
        is stuck."""
        try:
            await conn.execute(_LOCK, ingestion_lock(self.collection), timeout=bound)
        except TimeoutError as exc:
            raise KnowledgeError(
                f"another instance has been ingesting {self.collection} for over {bound:g}s — "
                "is it stuck? reindex once it has finished or stopped"
            ) from exc

    async def _sync(self, conn: asyncpg.pool.PoolConnectionProxy, folder: Folder) -> _Plan:
        """Write what changed to Chroma, then record the folder in the catalog."""
        stored = await self._with_collection(self._stored)
        plan = _plan(folder.articles, stored, self.embedding_model)
        await self._write(plan)
        async with conn.transaction():
            await conn.executemany(
                _UPSERT_CATALOG,
                [
                    (self.collection, a.source_id, a.title, a.checksum, len(a.chunks))
                    for a in folder.articles
                ],
            )
            await conn.execute(
                "DELETE FROM knowledge_documents"
                " WHERE collection = $1 AND NOT (source_id = ANY($2::text[]))",
                self.collection,
                [a.source_id for a in folder.articles],
            )
        return plan

    def _read_folder(self) -> Folder:
        directory = self.knowledge_dir
        if not directory.is_dir():
            raise KnowledgeError(
                f"knowledge folder {directory} does not exist — set TRIA_KNOWLEDGE_DIR"
            )
        folder = read_folder(directory)
        if not folder.articles:
            # An empty folder is far likelier a mistake than a wish to delete every article.
            raise KnowledgeError(
                f"no articles (*.md) in {directory}, nothing changed — check TRIA_KNOWLEDGE_DIR"
            )
        return folder

    async def _stored(self, collection_id: str) -> dict[str, _Stored]:
        stored: dict[str, _Stored] = {}
        records = await self._clients.chroma().records(collection_id)
        for record in records:
            source_id = record.metadata.get("source_id")
            if not isinstance(source_id, str):
                continue  # not a chunk of ours: left alone
            entry = stored.setdefault(source_id, _Stored())
            entry.checksum = record.metadata.get("checksum")
            entry.embedding_model = record.metadata.get("embedding_model")
            entry.ids.add(record.id)
        return stored

    async def _write(self, plan: _Plan) -> None:
        """Upsert the new chunks first, then delete the stale ones: no moment without knowledge."""
        chunks = plan.chunks_to_write()
        batch = self.settings.tria_embedding_batch_size
        checksums = {a.source_id: a.checksum for a in [*plan.added, *plan.updated]}
        for start in range(0, len(chunks), batch):
            part = chunks[start : start + batch]
            vectors = await self.embed([c.embedding_input() for c in part])
            await self._with_collection(partial(self._upsert, part, vectors, checksums))
        chroma = self._clients.chroma()
        await self._with_collection(partial(chroma.delete, ids=plan.stale_ids))

    async def _upsert(
        self,
        chunks: list[Chunk],
        vectors: list[list[float]],
        checksums: dict[str, str],
        collection_id: str,
    ) -> None:
        await self._clients.chroma().upsert(
            collection_id,
            ids=[c.id for c in chunks],
            embeddings=vectors,
            documents=[c.text for c in chunks],
            metadatas=[
                {
                    "source_id": c.source_id,
                    "title": c.title,
                    "section": c.section,
                    "checksum": checksums[c.source_id],
                    "embedding_model": self.embedding_model,
                }
                for c in chunks
            ],
        )

    # ---------------------------------------------------------------- search

    async def search(self, query: str, k: int = 4, min_score: float = 0.0) -> list[SearchHit]:
        """The ``k`` chunks nearest to ``query`` scoring at least ``min_score``, best first."""
        [vector] = await self.embed([query])

        async def nearest(collection_id: str) -> list[SearchHit]:
            found = await self._clients.chroma().query(
                collection_id, query_embeddings=[vector], n_results=k
            )
            hits: list[SearchHit] = []
            documents = (found.documents or [[]])[0]
            metadatas = (found.metadatas or [[]])[0]
            distances = (found.distances or [[]])[0]
            for chunk_id, text, metadata, distance in zip(
                found.ids[0], documents, metadatas, distances, strict=True
            ):
                meta = metadata or {}
                score = 1.0 - float(distance)
                if isinstance(meta.get("source_id"), str) and score >= min_score:
                    hits.append(
                        SearchHit(
                            chunk_id=chunk_id,
                            source_id=meta["source_id"],
                            title=str(meta.get("title") or meta["source_id"]),
                            section=str(meta.get("section") or ""),
                            text=text or "",
                            score=round(score, 4),
                        )
                    )
            return hits

        return await self._with_collection(nearest)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings from the OpenAI API, one call per batch, each call under the app's timeout."""
        vectors: list[list[float]] = []
        batch = self.settings.tria_embedding_batch_size
        for start in range(0, len(texts), batch):
            async with asyncio.timeout(self.settings.tria_openai_request_timeout):
                response = await self._resources.openai.embeddings.create(
                    model=self.embedding_model,
                    input=list(texts[start : start + batch]),
                    encoding_format="float",
                )
            vectors += [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        return vectors

    # ---------------------------------------------------------------- version

    async def version(self) -> str | None:
        """The knowledge version answers are cached under; None when it cannot be known now."""
        key = self._version_key
        shared = await self._clients.redis_guard.run(
            "knowledge_version", lambda redis: redis.get(key), None
        )
        if isinstance(shared, str):
            return shared
        if self._version is None:
            try:
                stored = await self._with_collection(self._stored)
            except Exception as exc:
                log.warning("knowledge.version_unknown", error=describe_error(exc, self.settings))
                return None
            self._version = _stored_digest(stored)
        return self._version

    async def _publish_version(self, version: str) -> None:
        """Share the version; this instance keeps its own copy should Redis not take it."""
        self._version = version
        key = self._version_key
        await self._clients.redis_guard.run(
            "knowledge_version", lambda redis: redis.set(key, version), None
        )

    # ---------------------------------------------------------------- diagnostics

    async def diagnostics(self) -> dict[str, Any]:
        """The diagnostics section: collection size, catalog, version, last ingestion."""
        chroma = self._clients.chroma()
        chunks = await self._with_collection(chroma.count)
        pool = await self._clients.database()
        documents = await pool.fetchval(
            "SELECT count(*) FROM knowledge_documents WHERE collection = $1", self.collection
        )
        ok = chunks > 0 and self.last_error is None
        return {
            "status": "pass" if ok else "warn",
            "collection": self.collection,
            "chunks": chunks,
            "documents": documents,
            "version": await self.version(),
            "embedding_model": self.embedding_model,
            "knowledge_dir": str(self.knowledge_dir),
            "last_ingest": asdict(self.last_ingest) if self.last_ingest else None,
            "last_error": self.last_error,
        }

    # ---------------------------------------------------------------- helpers

    async def _with_collection(self, action: Callable[[str], Awaitable[T]]) -> T:
        """Run ``action`` with the collection's id, finding it again once if it was recreated."""
        if self._collection_id is None:
            self._collection_id = await self._collection()
        try:
            return await action(self._collection_id)
        except ChromaNotFoundError:
            self._collection_id = await self._collection()
            return await action(self._collection_id)

    async def _collection(self) -> str:
        found = await self._clients.chroma().get_or_create_collection(self.collection)
        return found.id


def ingestion_lock(collection: str) -> str:
    """The name of the advisory lock under which a collection is ingested."""
    return f"tria-knowledge:{collection}"


def ingestion_bound(settings: Settings, chunks: int) -> float:
    """The most an ingestion of ``chunks`` chunks may take: every call it can make waiting out its
    own timeout (all chunks re-embedded, as after a change of embedding model)."""
    batches = math.ceil(chunks / settings.tria_embedding_batch_size)
    chroma = settings.tria_chroma_request_timeout
    return (
        batches * (settings.tria_openai_request_timeout + chroma)
        + CHROMA_CALLS * chroma
        + DATABASE_STATEMENTS * settings.tria_db_command_timeout
    )


def _plan(articles: Sequence[Article], stored: dict[str, _Stored], model: str) -> _Plan:
    plan = _Plan()
    for article in articles:
        held = stored.get(article.source_id)
        wanted = {chunk.id for chunk in article.chunks}
        if held is None:
            plan.added.append(article)
        elif (held.checksum, held.embedding_model, held.ids) == (article.checksum, model, wanted):
            plan.unchanged.append(article)
        else:
            plan.updated.append(article)
            plan.stale_ids += sorted(held.ids - wanted)
    present = {article.source_id for article in articles}
    for source_id, held in sorted(stored.items()):
        if source_id not in present:
            plan.removed.append(source_id)
            plan.stale_ids += sorted(held.ids)
    return plan


def _digest(articles: Sequence[Article], model: str) -> str:
    return _version_of({a.source_id: a.checksum for a in articles}, model)


def _stored_digest(stored: dict[str, _Stored]) -> str:
    checksums = {s: held.checksum or "" for s, held in stored.items()}
    models = {held.embedding_model or "" for held in stored.values()}
    return _version_of(checksums, ",".join(sorted(models))) if stored else NO_KNOWLEDGE


def _version_of(checksums: dict[str, str], model: str) -> str:
    lines = [model] + [f"{s}:{c}" for s, c in sorted(checksums.items())]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
