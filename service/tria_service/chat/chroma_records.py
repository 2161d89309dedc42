"""Reading and deleting a collection's records by id, over the shared ``ChromaHttp`` client.

``ChromaHttp`` covers what the probes and the first ingestion needed (add, upsert, query, count);
re-ingestion must also list what is stored and delete what is stale. These two calls use its
request method so they go through the same owned connection pool, timeouts and error types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tria_service.chroma_http import ChromaHttp

PAGE_SIZE = 1000


@dataclass(frozen=True)
class StoredRecord:
    id: str
    metadata: dict[str, Any]


def _records_path(chroma: ChromaHttp, collection_id: str, action: str) -> str:
    return f"{chroma._collections}/{collection_id}/{action}"


async def all_records(chroma: ChromaHttp, collection_id: str) -> list[StoredRecord]:
    """Every record's id and metadata, page by page."""
    records: list[StoredRecord] = []
    path = _records_path(chroma, collection_id, "get")
    while True:
        body = {"include": ["metadatas"], "limit": PAGE_SIZE, "offset": len(records)}
        page = await chroma._request("POST", path, json=body)
        ids: list[str] = page["ids"]
        metadatas: list[dict[str, Any] | None] = page.get("metadatas") or [None] * len(ids)
        records += [StoredRecord(i, m or {}) for i, m in zip(ids, metadatas, strict=True)]
        if len(ids) < PAGE_SIZE:
            return records


async def delete_records(chroma: ChromaHttp, collection_id: str, ids: Sequence[str]) -> None:
    """Delete the records with these ids (ids that do not exist are ignored by Chroma)."""
    if ids:
        path = _records_path(chroma, collection_id, "delete")
        await chroma._request("POST", path, json={"ids": list(ids)})
