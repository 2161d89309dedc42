"""Schema and migrations."""

from tria_service.db.migrations import MIGRATION_LOCK_KEY, current_version, migrate, verify_schema
from tria_service.db.schema import (
    EXPECTED_INDEXES,
    EXPECTED_TABLES,
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
)

__all__ = [
    "EXPECTED_INDEXES",
    "EXPECTED_TABLES",
    "MIGRATIONS",
    "MIGRATION_LOCK_KEY",
    "SCHEMA_VERSION",
    "Migration",
    "current_version",
    "migrate",
    "verify_schema",
]
