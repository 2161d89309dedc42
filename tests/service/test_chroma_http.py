"""The service's Chroma client against a real `chroma run` server: every call the service makes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from tria_service.chroma_http import (
    ChromaAuthError,
    ChromaCollection,
    ChromaError,
    ChromaHttp,
    ChromaNotFoundError,
)

from pytest_tria_deploy.provision.stack import DependencyEndpoints


@pytest.fixture
async def chroma(deps: DependencyEndpoints) -> AsyncIterator[ChromaHttp]:
    client = ChromaHttp(deps.chroma_url, timeout=10.0)
    yield client
    await client.aclose()


@pytest.fixture
async def collection(chroma: ChromaHttp) -> AsyncIterator[ChromaCollection]:
    """A fresh collection of the test's own, dropped afterwards."""
    created = await chroma.get_or_create_collection(f"test_http_{uuid.uuid4().hex[:10]}")
    yield created
    await chroma.delete_collection(created.name)


async def test_heartbeat_and_version(chroma: ChromaHttp) -> None:
    assert await chroma.heartbeat() > 0
    version = await chroma.version()
    assert version[0].isdigit()
    assert version.count(".") == 2


async def test_get_or_create_is_idempotent_and_get_finds_it(
    chroma: ChromaHttp, collection: ChromaCollection
) -> None:
    again = await chroma.get_or_create_collection(collection.name)
    found = await chroma.get_collection(collection.name)
    assert again.id == found.id == collection.id
    assert found.name == collection.name
    assert await chroma.count(collection.id) == 0


async def test_add_upsert_and_query_with_explicit_embeddings(
    chroma: ChromaHttp, collection: ChromaCollection
) -> None:
    await chroma.add(
        collection.id,
        ids=["returns", "shipping"],
        embeddings=[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]],
        documents=["Returns within 30 days", "Shipping takes 3 days"],
        metadatas=[{"topic": "returns"}, None],
    )
    await chroma.upsert(
        collection.id,
        ids=["returns", "warranty"],
        embeddings=[[0.9, 0.1, 0.0], [0.0, 0.0, 1.0]],
        documents=["Returns within 60 days", "Two-year warranty"],
        metadatas=[{"topic": "returns"}, {"topic": "warranty"}],
    )
    assert await chroma.count(collection.id) == 3

    found = await chroma.query(collection.id, query_embeddings=[[1.0, 0.0, 0.0]], n_results=2)
    assert found.ids == [["returns", "shipping"]]
    assert found.documents == [["Returns within 60 days", "Shipping takes 3 days"]]
    assert found.distances is not None
    assert found.distances[0][0] < found.distances[0][1]

    filtered = await chroma.query(
        collection.id,
        query_embeddings=[[0.0, 1.0, 0.0]],
        n_results=3,
        where={"topic": "warranty"},
        include=["metadatas"],
    )
    assert filtered.ids == [["warranty"]]
    assert filtered.metadatas == [[{"topic": "warranty"}]]
    assert filtered.documents is None


async def test_missing_collection_is_not_found(chroma: ChromaHttp) -> None:
    name = f"absent_{uuid.uuid4().hex[:10]}"
    with pytest.raises(ChromaNotFoundError) as caught:
        await chroma.get_collection(name)
    assert caught.value.status_code == 404
    with pytest.raises(ChromaNotFoundError):
        await chroma.delete_collection(name)


async def test_chroma_errors_are_typed_and_carry_its_message(
    chroma: ChromaHttp, collection: ChromaCollection
) -> None:
    with pytest.raises(ChromaError) as bad_name:
        await chroma.get_or_create_collection("a b")
    assert bad_name.value.status_code == 400
    assert "3-512 characters" in bad_name.value.message
    await chroma.add(collection.id, ids=["a"], embeddings=[[1.0, 0.0, 0.0]])
    with pytest.raises(ChromaError, match="dimension"):
        await chroma.add(collection.id, ids=["b"], embeddings=[[1.0, 0.0]])
    with pytest.raises(ValueError, match="one per id"):
        await chroma.add(collection.id, ids=["c", "d"], embeddings=[[1.0, 0.0, 0.0]])
    assert not issubclass(ChromaNotFoundError, ChromaAuthError)


async def test_closing_one_client_leaves_others_working(deps: DependencyEndpoints) -> None:
    first, second = (
        ChromaHttp(deps.chroma_url, timeout=10.0),
        ChromaHttp(deps.chroma_url, timeout=10.0),
    )
    try:
        await first.heartbeat()
        await first.aclose()
        assert first.closed
        assert await second.heartbeat() > 0
        with pytest.raises(RuntimeError):
            await first.heartbeat()
    finally:
        await second.aclose()
