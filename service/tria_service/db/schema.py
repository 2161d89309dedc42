"""The schema as versioned migrations, plus what a migrated database must contain."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One forward step; applied once, recorded in schema_migrations."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="chat sessions, messages and escalations",
        sql="""
CREATE TABLE chat_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX chat_sessions_client_id_idx ON chat_sessions (client_id);

CREATE TABLE chat_messages (
    id bigserial PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content text NOT NULL,
    intent text,
    confidence double precision CHECK (confidence BETWEEN 0 AND 1),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_messages_session_id_id_idx ON chat_messages (session_id, id);

CREATE TABLE escalations (
    id bigserial PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    message_id bigint REFERENCES chat_messages (id) ON DELETE SET NULL,
    reason text NOT NULL,
    intent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved boolean NOT NULL DEFAULT false
);
CREATE INDEX escalations_session_id_idx ON escalations (session_id);
CREATE INDEX escalations_unresolved_idx ON escalations (created_at) WHERE NOT resolved;
""",
    ),
    Migration(
        version=2,
        name="knowledge documents",
        sql="""
CREATE TABLE knowledge_documents (
    source_id text PRIMARY KEY,
    checksum text NOT NULL,
    chunk_count integer NOT NULL CHECK (chunk_count >= 0),
    ingested_at timestamptz NOT NULL DEFAULT now()
);
""",
    ),
    Migration(
        version=3,
        name="chat message metadata",
        sql="""
ALTER TABLE chat_messages ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
""",
    ),
    Migration(
        version=4,
        name="knowledge documents per collection",
        # Never written before this version, so it is recreated rather than altered: instances
        # sharing a database may ingest into different Chroma collections.
        sql="""
DROP TABLE IF EXISTS knowledge_documents;
CREATE TABLE knowledge_documents (
    collection text NOT NULL,
    source_id text NOT NULL,
    title text NOT NULL,
    checksum text NOT NULL,
    chunk_count integer NOT NULL CHECK (chunk_count >= 0),
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, source_id)
);
""",
    ),
)

SCHEMA_VERSION: int = MIGRATIONS[-1].version

EXPECTED_TABLES: dict[str, list[str]] = {
    "schema_migrations": ["version", "name", "applied_at"],
    "chat_sessions": ["id", "client_id", "created_at", "updated_at", "metadata"],
    "chat_messages": [
        "id",
        "session_id",
        "role",
        "content",
        "intent",
        "confidence",
        "metadata",
        "created_at",
    ],
    "escalations": [
        "id",
        "session_id",
        "message_id",
        "reason",
        "intent",
        "created_at",
        "resolved",
    ],
    "knowledge_documents": [
        "collection",
        "source_id",
        "title",
        "checksum",
        "chunk_count",
        "ingested_at",
    ],
}

EXPECTED_INDEXES: dict[str, str] = {
    "chat_sessions_client_id_idx": "chat_sessions",
    "chat_messages_session_id_id_idx": "chat_messages",
    "escalations_session_id_idx": "escalations",
    "escalations_unresolved_idx": "escalations",
}
