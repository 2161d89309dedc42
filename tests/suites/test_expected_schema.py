"""suites/expected_schema.toml says what the service's migrations build, so it cannot drift.

The database stage reads only that file (the suites never import the service); this test is the
one place the two meet.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from tria_service.db.schema import EXPECTED_INDEXES, EXPECTED_TABLES, SCHEMA_VERSION

EXPECTED_SCHEMA = Path(__file__).parents[2] / "suites" / "expected_schema.toml"


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return tomllib.loads(EXPECTED_SCHEMA.read_text(encoding="utf-8"))


def test_the_schema_version_is_the_last_migration(expected: dict[str, Any]) -> None:
    assert expected["schema"]["version"] == SCHEMA_VERSION


def test_every_table_and_column_is_the_services(expected: dict[str, Any]) -> None:
    written = {table: sorted(columns) for table, columns in expected["tables"].items()}
    assert written == {table: sorted(columns) for table, columns in EXPECTED_TABLES.items()}


def test_every_index_is_the_services(expected: dict[str, Any]) -> None:
    assert expected["indexes"] == EXPECTED_INDEXES
