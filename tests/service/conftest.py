"""Fixtures of the service tests; the dependencies come from tests/conftest.py's session fixtures.

Tests that break a dependency start their own copy through ``fresh_deps``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

import pytest
from tria_service.config import Settings, load_settings


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
