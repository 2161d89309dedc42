"""redact(): every credential shape the service's redaction knows, and run-scoped known secrets."""

from __future__ import annotations

import pytest

from pytest_tria_deploy.redact import MASK, close_scope, open_scope, redact, register_secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:planted-pw-9@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:ab/cd@h/db", "postgresql://u:***@h/db"),  # "/" in the password
        ("redis://:p@ss@h:6379/0", "redis://:***@h:6379/0"),  # "@" in the password
        (
            "dsn postgresql+asyncpg://tria:s3cr3t@db:5432/x ok",
            "dsn postgresql+asyncpg://tria:***@db:5432/x ok",
        ),
        ("key sk-abcdef123456 used", f"key {MASK} used"),
        ("Authorization: Bearer eyJhbGciOi.x.y", f"Authorization: Bearer {MASK}"),
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {MASK}"),
        (
            "host=db user=tria password=libpq-pw dbname=x",
            f"host=db user=tria password={MASK} dbname=x",
        ),
        ('{"password": "json-pw"}', f'{{"password": "{MASK}"}}'),
        ("SECRET_KEY=abc123def OPENAI_API_KEY=xyz", f"SECRET_KEY={MASK} OPENAI_API_KEY={MASK}"),
        ("token: t0k3n-value", f"token: {MASK}"),
        ("http://h:8000/health and nothing else", "http://h:8000/health and nothing else"),
        ("plain text with no credential", "plain text with no credential"),
        (
            "Endpoints(diagnostics_token=SecretStr('**********'), env_file=None)",
            "Endpoints(diagnostics_token=SecretStr('**********'), env_file=None)",
        ),
    ],
    ids=[
        "url",
        "slash-in-password",
        "at-in-password",
        "asyncpg-url",
        "openai-key",
        "bearer",
        "basic",
        "libpq",
        "json",
        "env",
        "token",
        "url-without-password",
        "plain",
        "already-masked-repr",
    ],
)
def test_credential_shapes(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_registered_secrets_are_scoped_to_a_run() -> None:
    scope = open_scope()
    try:
        register_secrets(["postgresql://u:p%40ss-scoped-7@h/db", "opaque-scoped-token"])
        register_secrets(["redis://:ab/cd@pw-scoped-8@h:6379/0", "redis://h:6379"])
        assert redact("assert 'ab/cd@pw-scoped-8' == 'x'") == f"assert '{MASK}' == 'x'"
        assert redact("x opaque-scoped-token y") == f"x {MASK} y"
        assert redact("decoded p@ss-scoped-7, quoted p%40ss-scoped-7") == (
            f"decoded {MASK}, quoted {MASK}"
        )
        register_secrets(["abc"])  # too short to mask without mangling ordinary text
        assert redact("abc") == "abc"
    finally:
        close_scope(scope)
    assert redact("x opaque-scoped-token y") == "x opaque-scoped-token y"


def test_inner_scope_keeps_the_outer_scopes_secrets() -> None:
    outer = open_scope()
    register_secrets(["outer-secret-value"])
    inner = open_scope()
    register_secrets(["inner-secret-value"])
    close_scope(inner)
    try:
        assert redact("outer-secret-value inner-secret-value") == f"{MASK} inner-secret-value"
    finally:
        close_scope(outer)
