"""Fixtures of the service tests; the dependencies come from tests/conftest.py's session fixtures.

Tests that break a dependency start their own copy through ``fresh_deps``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import asyncpg
import pytest
from tria_service.chroma_http import ChromaHttp, ChromaNotFoundError
from tria_service.config import Settings, load_settings
from tria_service.db import migrate

from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.service.helpers import write_articles


@pytest.fixture
def canaries() -> dict[str, str]:
    """Distinctive secret values that must never come back in a body or a log line."""
    return {
        "SECRET_KEY": f"canarysecretkey{secrets.token_hex(24)}",
        "TRIA_DIAGNOSTICS_TOKEN": f"canarytoken{secrets.token_hex(16)}",
    }


@pytest.fixture
def make_settings(service_env: Mapping[str, str]) -> Callable[..., Settings]:
    """Settings for the shared dependencies, with env-var overrides (TRIA_HEALTH_TTL="0.5").

    Built by the service's own loader: explicit values win over the environment and any `.env`.
    """

    def build(**overrides: str) -> Settings:
        return load_settings(**{**service_env, **overrides})

    return build


@pytest.fixture
async def chat_settings(
    make_settings: Callable[..., Settings], deps: DependencyEndpoints, tmp_path: Path
) -> AsyncIterator[Callable[..., Settings]]:
    """Settings with the test articles (tests/service/helpers.ARTICLES) in a Chroma collection of
    the test's own, dropped afterwards; env-var overrides as for ``make_settings``."""
    collections: list[str] = []

    def build(**overrides: str) -> Settings:
        collection = f"test_chat_{secrets.token_hex(6)}"
        collections.append(collection)
        folder = overrides.pop("TRIA_KNOWLEDGE_DIR", None) or str(
            write_articles(tmp_path / f"knowledge-{len(collections)}")
        )
        return make_settings(CHROMA_COLLECTION=collection, TRIA_KNOWLEDGE_DIR=folder, **overrides)

    yield build
    chroma = ChromaHttp(deps.chroma_url, timeout=10.0)
    try:
        for name in collections:
            with contextlib.suppress(ChromaNotFoundError):
                await chroma.delete_collection(name)
    finally:
        await chroma.aclose()


@pytest.fixture
def seed_env(
    chat_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """The environment a component built the integration guide's way (``KnowledgeBase(api_key=
    ...)``) reads its settings from: ``chat_settings()``'s, but OPENAI_API_KEY is one the
    stand-in refuses, so only the ``api_key`` argument can make OpenAI calls work."""
    settings = chat_settings()
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    environment = {
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "REDIS_URL": settings.redis_dsn(),
        "CHROMA_URL": settings.chroma_base_url(),
        "CHROMA_COLLECTION": settings.chroma_collection,
        "OPENAI_BASE_URL": settings.openai_endpoint(),
        "SECRET_KEY": settings.secret_key.get_secret_value(),
        "TRIA_DIAGNOSTICS_TOKEN": settings.tria_diagnostics_token.get_secret_value(),
        "TRIA_KNOWLEDGE_DIR": str(settings.knowledge_dir()),
        "TRIA_ENV_FILE": str(env_file),
    }
    environment["OPENAI_API_KEY"] = f"sk-refused-{secrets.token_hex(12)}"
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return settings


@pytest.fixture
async def migrated(deps: DependencyEndpoints) -> None:
    """The shared database at the current schema, as the orchestrator leaves it before the
    components start (for tests that build components without a service)."""
    conn = await asyncpg.connect(deps.database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
