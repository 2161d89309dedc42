"""The knowledge base against real Chroma, PostgreSQL and the stand-in's embeddings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from tria_service.chat.articles import MAX_CHUNK_CHARS, parse_article, read_folder
from tria_service.chat.errors import KnowledgeError
from tria_service.chat.knowledge import KnowledgeBase, ingestion_bound, ingestion_lock
from tria_service.clients import Clients
from tria_service.config import Settings

from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.service.helpers import (
    ARTICLES,
    eventually,
    set_fault_async,
    standin_stats,
    write_articles,
)

if TYPE_CHECKING:
    from tests.conftest import FreshDeps

SHIPPED = Path(__file__).resolve().parents[2] / "service" / "knowledge"


@pytest.fixture
async def clients(chat_settings: Callable[..., Settings], migrated: None) -> AsyncIterator[Clients]:
    shared = Clients(chat_settings())
    yield shared
    await shared.close()


def knowledge(clients: Clients, folder: Path, collection: str | None = None) -> KnowledgeBase:
    return KnowledgeBase(clients=clients, knowledge_dir=folder, collection=collection)


async def embedding_calls(deps: DependencyEndpoints) -> int:
    assert deps.servers.openai is not None
    return int((await standin_stats(deps.servers.openai.url))["embeddings"])


async def catalog(clients: Clients, collection: str) -> dict[str, tuple[str, int]]:
    pool = await clients.database()
    rows = await pool.fetch(
        "SELECT source_id, checksum, chunk_count FROM knowledge_documents WHERE collection = $1",
        collection,
    )
    return {r["source_id"]: (r["checksum"], r["chunk_count"]) for r in rows}


async def stored_ids(clients: Clients, collection: str) -> set[str]:
    """The ids of every record in the collection, read from Chroma directly."""
    found = await clients.chroma().get_collection(collection)
    return {record.id for record in await clients.chroma().records(found.id)}


def test_articles_are_cut_by_section_with_stable_ids_and_checksums() -> None:
    text = ARTICLES["returns"]
    article = parse_article("returns", text)
    assert article.title == "Returns and refunds"
    assert [(c.id, c.section) for c in article.chunks] == [
        ("returns#0", "Returning an item"),
        ("returns#1", "Refund timing"),
    ]
    assert article.chunks[0].text.startswith("You can return most items")
    assert "Returns and refunds: Refund timing" in article.chunks[1].embedding_input()
    assert parse_article("returns", text.replace("\n", "\r\n")).checksum == article.checksum
    assert parse_article("returns", text + "More.").checksum != article.checksum


def test_intro_text_and_long_sections_make_their_own_chunks() -> None:
    paragraph = "The warranty covers manufacturing faults for two years. " * 20
    text = f"# Warranty\n\nRead this first.\n\n## Cover\n{paragraph}\n\n{paragraph}\n"
    article = parse_article("warranty", text)
    assert [c.section for c in article.chunks] == ["Overview", "Cover", "Cover"]
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in article.chunks)
    untitled = parse_article("gift-cards", "Gift cards never expire.")
    assert untitled.title == "Gift cards"


def test_folder_reading_skips_readme_and_undecodable_files(tmp_path: Path) -> None:
    write_articles(tmp_path)
    (tmp_path / "README.md").write_text("# About this folder\n\nNot an article.\n")
    (tmp_path / "latin1.md").write_bytes("# Caf\xe9\n\n## Menu\nCr\xeapes.\n".encode("latin-1"))
    (tmp_path / "empty.md").write_text("# Nothing here\n")
    folder = read_folder(tmp_path)
    assert [a.source_id for a in folder.articles] == ["passwords", "payments", "returns"]
    assert folder.skipped == ("empty.md: no text under its title", "latin1.md: not UTF-8 text")


def test_the_shipped_help_centre_is_10_to_20_sectioned_articles() -> None:
    folder = read_folder(SHIPPED)
    assert folder.skipped == ()
    assert 10 <= len(folder.articles) <= 20
    for article in folder.articles:
        assert article.title != article.source_id, article.source_id
        assert len(article.chunks) >= 2, article.source_id
        assert all(c.section != "Overview" for c in article.chunks), article.source_id


async def test_reingesting_an_unchanged_folder_adds_nothing_and_embeds_nothing(
    clients: Clients, deps: DependencyEndpoints, tmp_path: Path
) -> None:
    base = knowledge(clients, write_articles(tmp_path / "kb"))
    first = await base.ingest()
    calls = await embedding_calls(deps)
    again = await base.ingest()

    assert (first.added, first.updated, first.deleted, first.unchanged) == (3, 0, 0, 0)
    assert first.chunks_written == first.chunks == 6
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 3)
    assert again.chunks_written == again.chunks_deleted == 0
    assert await embedding_calls(deps) == calls  # unchanged: not one embedding call
    assert again.version == first.version
    assert await base.version() == first.version
    assert len(await stored_ids(clients, base.collection)) == 6
    assert set(await catalog(clients, base.collection)) == set(ARTICLES)


async def test_a_changed_article_replaces_its_chunks_and_a_removed_one_is_deleted(
    clients: Clients, tmp_path: Path
) -> None:
    folder = write_articles(tmp_path / "kb")
    base = knowledge(clients, folder)
    first = await base.ingest()
    shorter = "# Returns and refunds\n\n## Returning an item\nReturns are free for 60 days.\n"
    (folder / "returns.md").write_text(shorter)
    (folder / "payments.md").unlink()
    second = await base.ingest()

    assert (second.added, second.updated, second.deleted, second.unchanged) == (0, 1, 1, 1)
    assert second.chunks_written == 1
    assert second.chunks_deleted == 3  # returns#1, payments#0, payments#1
    assert second.version != first.version
    assert await stored_ids(clients, base.collection) == {"returns#0", "passwords#0", "passwords#1"}
    [hit] = await base.search("How many days are returns free?", k=1)
    assert (hit.chunk_id, hit.text) == ("returns#0", "Returns are free for 60 days.")
    assert set(await catalog(clients, base.collection)) == {"returns", "passwords"}
    assert (await catalog(clients, base.collection))["returns"][1] == 1


async def test_ingestion_state_is_per_collection(clients: Clients, tmp_path: Path) -> None:
    folder = write_articles(tmp_path / "kb")
    first = await knowledge(clients, folder).ingest()
    other = knowledge(clients, folder, collection=f"{clients.settings.chroma_collection}_other")
    try:
        second = await other.ingest()
    finally:
        await clients.chroma().delete_collection(other.collection)
    assert first.added == second.added == 3  # the other collection was not taken as ingested


async def test_instances_ingesting_at_once_do_not_duplicate(
    clients: Clients, tmp_path: Path
) -> None:
    folder = write_articles(tmp_path / "kb")
    other_clients = Clients(clients.settings)  # another instance: its own pool and connections
    try:
        reports = await asyncio.gather(
            knowledge(clients, folder).ingest(), knowledge(other_clients, folder).ingest()
        )
    finally:
        await other_clients.close()
    assert sorted(r.added for r in reports) == [0, 3]
    assert sorted(r.unchanged for r in reports) == [0, 3]
    assert len(await stored_ids(clients, clients.settings.chroma_collection)) == 6


async def lock_holder(database_url: str, collection: str) -> asyncpg.Record | None:
    """The session holding the collection's ingestion lock: its state and transaction start."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow(
            "SELECT a.state, a.xact_start FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)",
            ingestion_lock(collection),
        )
    finally:
        await conn.close()


async def test_an_ingestion_keeps_no_transaction_open_across_its_calls_and_frees_its_lock(
    chat_settings: Callable[..., Settings],
    fresh_deps: FreshDeps,
    migrated: None,
    tmp_path: Path,
) -> None:
    own = fresh_deps("openai")
    assert own.servers.openai is not None
    settings = chat_settings(
        OPENAI_BASE_URL=own.openai_base_url,
        OPENAI_API_KEY=own.openai_api_key,
        TRIA_OPENAI_MAX_RETRIES="0",
        TRIA_OPENAI_REQUEST_TIMEOUT="3",
    )
    shared = Clients(settings)
    base = knowledge(shared, write_articles(tmp_path / "kb"))
    holder: asyncpg.Record | None = None

    async def embedding_under_way() -> bool:
        nonlocal holder
        holder = await lock_holder(settings.asyncpg_dsn(), base.collection)
        return holder is not None and holder["state"] != "active"

    try:
        await set_fault_async(own.servers.openai, "hang")
        hung = asyncio.create_task(base.ingest())
        assert await eventually(embedding_under_way)
        with pytest.raises(KnowledgeError, match="timed out"):
            await hung
        released = await lock_holder(settings.asyncpg_dsn(), base.collection)
        await set_fault_async(own.servers.openai, "none")
        report = await base.ingest()  # would wait for a lock left behind
    finally:
        await shared.close()

    assert holder is not None
    # the lock is held between the statements, without a transaction left idle across the calls
    assert (holder["state"], holder["xact_start"]) == ("idle", None)
    assert released is None
    assert report.added == 3


async def test_an_instance_waits_for_another_ones_turn_only_as_long_as_an_ingestion_may_take(
    chat_settings: Callable[..., Settings], migrated: None, tmp_path: Path
) -> None:
    fast = {
        "TRIA_OPENAI_REQUEST_TIMEOUT": "0.5",
        "TRIA_CHROMA_REQUEST_TIMEOUT": "0.5",
        "TRIA_DB_COMMAND_TIMEOUT": "0.5",
    }
    settings = chat_settings(**fast)
    bound = ingestion_bound(settings, chunks=6)  # the test articles: 6 chunks, one batch
    shared = Clients(settings)
    stuck = await asyncpg.connect(settings.asyncpg_dsn())  # another instance, stuck mid-ingestion
    try:
        await stuck.execute(
            "SELECT pg_advisory_lock(hashtextextended($1, 0))",
            ingestion_lock(settings.chroma_collection),
        )
        with pytest.raises(KnowledgeError) as refused:
            await knowledge(shared, write_articles(tmp_path / "kb")).ingest()
    finally:
        await stuck.close()
        await shared.close()

    assert bound == 1 * (0.5 + 0.5) + 4 * 0.5 + 2 * 0.5  # a batch's calls, then the rest
    assert str(refused.value) == (
        f"another instance has been ingesting {settings.chroma_collection} for over {bound:g}s"
        " — is it stuck? reindex once it has finished or stopped"
    )


async def test_search_ranks_the_right_article_first_with_its_score(
    clients: Clients, tmp_path: Path
) -> None:
    base = knowledge(clients, write_articles(tmp_path / "kb"))
    await base.ingest()
    hits = await base.search("My account is locked after failed sign-in attempts", k=3)
    assert hits[0].chunk_id == "passwords#1"
    assert hits[0].title == "Password help"
    assert hits[0].section == "Locked accounts"
    assert 0 < hits[-1].score <= hits[0].score <= 1
    assert await base.search("qwertyuiop zxcvb", k=3, min_score=0.2) == []


async def test_an_empty_or_missing_folder_changes_nothing(clients: Clients, tmp_path: Path) -> None:
    base = knowledge(clients, write_articles(tmp_path / "kb"))
    await base.ingest()
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        base.knowledge_dir = folder
        with pytest.raises(KnowledgeError, match="TRIA_KNOWLEDGE_DIR"):
            await base.ingest()
    assert len(await stored_ids(clients, base.collection)) == 6
    assert base.last_error is not None


async def test_the_integration_guide_constructor_opens_and_closes_its_own_clients(
    seed_env: Settings, migrated: None
) -> None:
    base = KnowledgeBase(api_key=seed_env.openai_api_key.get_secret_value())
    try:
        report = await base.ingest()
        hits = await base.search("When do refunds arrive?", k=1)
    finally:
        await base.close()
    assert base.collection == seed_env.chroma_collection
    assert report.added == 3
    assert hits[0].source_id == "returns"
