"""The chat settings: defaults, one clear problem per bad value, the admin token kept secret."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from tria_service.config import ConfigError, Settings, load_settings

from tests.reliability.secrets_canaries import assert_no_secret

CANARY = "canary-value-7319"


@pytest.mark.parametrize(
    ("var", "value", "problem"),
    [
        ("TRIA_RATE_LIMIT_WINDOW", "0", "must be in 1..86400 — set TRIA_RATE_LIMIT_WINDOW"),
        ("TRIA_RATE_LIMIT_PER_CLIENT", "many", "must be an integer — set TRIA_RATE_LIMIT_PER"),
        ("TRIA_ESCALATION_CONFIDENCE", "1.5", "must be in 0..1 — set TRIA_ESCALATION_CONFIDENCE"),
        ("TRIA_AGENT_TEMPERATURE", "nan", "must be in 0..2"),
        ("TRIA_CHAT_MAX_MESSAGE_CHARS", "0", "must be in 1..100000"),
        ("TRIA_ENABLE_CACHE", "maybe", "must be true or false — set TRIA_ENABLE_CACHE"),
        ("TRIA_TRUST_CLIENT_ID_HEADER", "gateway", "must be true or false — set TRIA_TRUST_CLIENT"),
        ("TRIA_KNOWLEDGE_DIR", "/nonexistent/knowledge", "is not a directory"),
        ("TRIA_ADMIN_TOKEN", "changeme", "is a placeholder, not a secret"),
        ("TRIA_ADMIN_TOKEN", "Sh0rtT0ken", "must be at least 16 characters"),
    ],
)
def test_a_bad_chat_setting_is_one_problem_naming_it(
    service_env: Mapping[str, str], var: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(**{**service_env, var: value})
    (line,) = error.value.problems
    assert line.startswith(f"{var}: {problem}")


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TRIA_KNOWLEDGE_DIR", f"/nonexistent/{CANARY}"),
        ("TRIA_ADMIN_TOKEN", CANARY[:12]),
        ("TRIA_SESSION_TTL", CANARY),
    ],
)
def test_a_bad_value_is_never_echoed(service_env: Mapping[str, str], var: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(**{**service_env, var: value})
    assert_no_secret(
        {"the config error": str(error.value)},
        {f"the bad {var}": value, "the canary's first 12 characters": CANARY[:12]},
    )


def test_defaults_and_the_shipped_knowledge_folder(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert settings.knowledge_dir() == Path(__file__).resolve().parents[2] / "service/knowledge"
    assert settings.knowledge_dir().is_dir()
    assert (settings.tria_rate_limit_window, settings.tria_escalation_confidence) == (60, 0.3)
    chat = settings.summary()["chat"]
    assert isinstance(chat, dict)
    assert chat["features"] == {
        "rag": True,
        "escalation": True,
        "cache": True,
        "rate_limiting": True,
    }
    assert not settings.tria_trust_client_id_header
    assert chat["rate_limit_client"] == "peer address"  # X-Client-Id is not believed by default
    assert settings.summary()["secrets"]["TRIA_ADMIN_TOKEN"] == "unset"  # type: ignore[index]


def test_the_admin_token_is_a_secret(make_settings: Callable[..., Settings]) -> None:
    token = f"{CANARY}-{secrets.token_urlsafe(16)}"
    settings = make_settings(TRIA_ADMIN_TOKEN=token)
    assert token in settings.secret_values()
    assert_no_secret(
        {"repr(settings)": repr(settings), "settings.summary()": str(settings.summary())},
        {"TRIA_ADMIN_TOKEN": token},
    )
    assert make_settings(TRIA_ADMIN_TOKEN="  ").tria_admin_token is None  # blank is unset
