"""Chroma's REST API (v2) through an httpx client this object owns.

chromadb's own async client shares one class-level registry of HTTP clients across the process, so
closing one instance closes all of them; talking HTTP directly keeps each client's lifetime its own.
Embeddings are always passed in explicitly: the service computes them, Chroma only stores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"
PAGE_SIZE = 1000
Space = Literal["cosine", "l2", "ip"]
Include = Literal["documents", "metadatas", "distances", "embeddings"]
Metadata = Mapping[str, str | int | float | bool | None]


class ChromaError(Exception):
    """Chroma answered with an error status; the message is Chroma's own (it never echoes keys)."""

    def __init__(self, status_code: int, kind: str, message: str) -> None:
        super().__init__(f"HTTP {status_code} {kind}: {message}")
        self.status_code = status_code
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.status_code, self.kind, self.message)


class ChromaNotFoundError(ChromaError):
    """The collection (or tenant, or database) does not exist."""


class ChromaAuthError(ChromaError):
    """Chroma refused the client's credentials (HTTP 401 or 403)."""


@dataclass(frozen=True)
class ChromaCollection:
    """A collection as Chroma describes it; `dimension` stays None until the first vector."""

    id: str
    name: str
    metadata: dict[str, Any] | None
    dimension: int | None


@dataclass(frozen=True)
class StoredRecord:
    """A stored record's id and metadata (what re-ingestion compares against)."""

    id: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class QueryResult:
    """One list per query embedding, nearest first; a list is None when not included."""

    ids: list[list[str]]
    documents: list[list[str | None]] | None
    metadatas: list[list[dict[str, Any] | None]] | None
    distances: list[list[float]] | None


class ChromaHttp:
    """A Chroma client for one tenant and database, over one owned connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._collections = (
            f"/tenants/{quote(tenant, safe='')}/databases/{quote(database, safe='')}/collections"
        )
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/api/v2",
            timeout=httpx.Timeout(timeout),
            auth=httpx.BasicAuth(*auth) if auth else None,
            headers=dict(headers or {}),
        )

    @property
    def closed(self) -> bool:
        """Whether aclose() has run; a closed client refuses every request."""
        return self._http.is_closed

    async def aclose(self) -> None:
        """Close this client's connections (and only this client's)."""
        await self._http.aclose()

    async def heartbeat(self) -> int:
        """Chroma's clock in nanoseconds: proof that the server answers."""
        body = await self._request("GET", "/heartbeat")
        return int(body["nanosecond heartbeat"])

    async def version(self) -> str:
        return str(await self._request("GET", "/version"))

    async def get_or_create_collection(
        self, name: str, *, space: Space = "cosine", metadata: Metadata | None = None
    ) -> ChromaCollection:
        """The named collection, created with an HNSW index in `space` if it does not exist."""
        body = {
            "name": name,
            "configuration": {"hnsw": {"space": space}},
            "metadata": dict(metadata) if metadata else None,
            "get_or_create": True,
        }
        return _collection(await self._request("POST", self._collections, json=body))

    async def get_collection(self, name: str) -> ChromaCollection:
        """The named collection; raises ChromaNotFoundError if it does not exist."""
        return _collection(await self._request("GET", f"{self._collections}/{_segment(name)}"))

    async def delete_collection(self, name: str) -> None:
        """Drop the named collection and its records; raises ChromaNotFoundError if absent."""
        await self._request("DELETE", f"{self._collections}/{_segment(name)}")

    async def count(self, collection_id: str) -> int:
        return int(await self._request("GET", f"{self._collections}/{collection_id}/count"))

    async def add(
        self,
        collection_id: str,
        *,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        documents: Sequence[str] | None = None,
        metadatas: Sequence[Metadata | None] | None = None,
    ) -> None:
        """Insert records; an id that already exists is left as it was (Chroma's rule)."""
        body = _records(ids, embeddings, documents, metadatas)
        await self._request("POST", f"{self._collections}/{collection_id}/add", json=body)

    async def upsert(
        self,
        collection_id: str,
        *,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        documents: Sequence[str] | None = None,
        metadatas: Sequence[Metadata | None] | None = None,
    ) -> None:
        """Insert records, replacing any with the same id."""
        body = _records(ids, embeddings, documents, metadatas)
        await self._request("POST", f"{self._collections}/{collection_id}/upsert", json=body)

    async def query(
        self,
        collection_id: str,
        *,
        query_embeddings: Sequence[Sequence[float]],
        n_results: int = 10,
        where: Mapping[str, Any] | None = None,
        include: Sequence[Include] = ("documents", "metadatas", "distances"),
    ) -> QueryResult:
        """The `n_results` nearest records to each query embedding, optionally filtered."""
        body = {
            "query_embeddings": [list(map(float, e)) for e in query_embeddings],
            "n_results": n_results,
            "where": dict(where) if where else None,
            "include": list(include),
        }
        found = await self._request("POST", f"{self._collections}/{collection_id}/query", json=body)
        return QueryResult(
            ids=found["ids"],
            documents=found.get("documents"),
            metadatas=found.get("metadatas"),
            distances=found.get("distances"),
        )

    async def records(self, collection_id: str) -> list[StoredRecord]:
        """Every record's id and metadata, page by page."""
        records: list[StoredRecord] = []
        path = f"{self._collections}/{collection_id}/get"
        while True:
            body = {"include": ["metadatas"], "limit": PAGE_SIZE, "offset": len(records)}
            page = await self._request("POST", path, json=body)
            ids: list[str] = page["ids"]
            metadatas: list[dict[str, Any] | None] = page.get("metadatas") or [None] * len(ids)
            records += [StoredRecord(i, m or {}) for i, m in zip(ids, metadatas, strict=True)]
            if len(ids) < PAGE_SIZE:
                return records

    async def delete(self, collection_id: str, ids: Sequence[str]) -> None:
        """Delete the records with these ids (Chroma ignores ids that do not exist)."""
        if ids:
            path = f"{self._collections}/{collection_id}/delete"
            await self._request("POST", path, json={"ids": list(ids)})

    async def _request(self, method: str, path: str, json: object = None) -> Any:
        response = await self._http.request(method, path, json=json)
        if response.is_success:
            return response.json()
        raise _error(response)


def _segment(name: str) -> str:
    return quote(name, safe="")


def _collection(body: Mapping[str, Any]) -> ChromaCollection:
    return ChromaCollection(
        id=str(body["id"]),
        name=str(body["name"]),
        metadata=body.get("metadata"),
        dimension=body.get("dimension"),
    )


def _records(
    ids: Sequence[str],
    embeddings: Sequence[Sequence[float]],
    documents: Sequence[str] | None,
    metadatas: Sequence[Metadata | None] | None,
) -> dict[str, Any]:
    if len(embeddings) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(embeddings)} embeddings: give one per id")
    return {
        "ids": list(ids),
        "embeddings": [list(map(float, e)) for e in embeddings],
        "documents": list(documents) if documents is not None else None,
        "metadatas": [dict(m) if m else None for m in metadatas] if metadatas else None,
    }


def _error(response: httpx.Response) -> ChromaError:
    """Chroma's {"error", "message"} body as an exception typed by what a caller can do about it."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        kind, message = str(body.get("error", "Error")), str(body.get("message", ""))
    else:
        kind, message = "Error", response.reason_phrase
    status = response.status_code
    if status == 404 or kind == "NotFoundError":
        return ChromaNotFoundError(status, kind, message)
    if status in (401, 403):
        return ChromaAuthError(status, kind, message)
    return ChromaError(status, kind, message)
