"""Environment: the variables the target gives its service are set and well formed.

The variables are the target's env file over what its endpoints imply (``service_variables``).
Every failure names the variable and the fix and never shows its value: problems are listed
with ``fail_listing``, which prints no traceback a value could hide in. They read "NAME is ...",
never "NAME: ...", which the redactor would take for a ``key: value`` pair and mask.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, urlsplit

import pytest

from pytest_tria_deploy.helpers import fail_listing
from pytest_tria_deploy.targets import Target

REQUIRED = ("DATABASE_URL", "OPENAI_API_KEY", "SECRET_KEY", "TRIA_DIAGNOSTICS_TOKEN")
# The target's tria.toml key for each variable its endpoints can imply.
TARGET_KEYS = {
    "DATABASE_URL": "database_url",
    "OPENAI_API_KEY": "openai_api_key",
    "SECRET_KEY": "secret_key",
    "TRIA_DIAGNOSTICS_TOKEN": "diagnostics_token",
}
OPENAI_HOST = "api.openai.com"
SECRET_KEY_MIN_LENGTH = 32
OPENAI_KEY_MIN_LENGTH = 20
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
PLACEHOLDER_WORDS = ("changeme", "replaceme", "yoursecret", "placeholder", "example", "secretkey")
PLACEHOLDER_WHOLE = re.compile(r"(?:secret|password|test|dummy|default|todo|token|x)+[0-9]*")
REDIS_PARTS = ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB")


def test_required_variables_set(service_variables: dict[str, str], tria_target: Target) -> None:
    """Every required variable is set."""
    missing = [name for name in REQUIRED if not service_variables.get(name, "").strip()]
    if missing:
        fail_listing(
            [f"{name} is not set — {_where_to_set(name, tria_target)}" for name in missing]
        )


def test_database_url_format(service_variables: dict[str, str]) -> None:
    """DATABASE_URL has the right format."""
    url = _given(service_variables, "DATABASE_URL")
    example = "postgresql://user:password@host:5432/dbname"
    problems = _url_problems("DATABASE_URL", url, ("postgresql", "postgresql+asyncpg"), example)
    if not problems and not urlsplit(url).path.strip("/"):
        problems.append(f"DATABASE_URL has no database name — use {example}")
    if problems:
        fail_listing(problems)


def test_openai_api_key_format(service_variables: dict[str, str]) -> None:
    """OPENAI_API_KEY has the format of an OpenAI key (when the target uses the real OpenAI)."""
    base_url = service_variables.get("OPENAI_BASE_URL", "").strip()
    host = urlsplit(base_url).hostname if base_url else OPENAI_HOST
    if host != OPENAI_HOST:
        pytest.skip(f"OPENAI_BASE_URL points at {host}, not {OPENAI_HOST}: its keys are its own")
    key = _given(service_variables, "OPENAI_API_KEY")
    if not key.startswith("sk-") or len(key) < OPENAI_KEY_MIN_LENGTH or re.search(r"\s", key):
        fail_listing(
            [
                f"OPENAI_API_KEY does not look like an OpenAI key ('sk-', at least "
                f"{OPENAI_KEY_MIN_LENGTH} characters, no spaces) — copy one from "
                "platform.openai.com/api-keys"
            ]
        )


def test_secret_key_strength(service_variables: dict[str, str]) -> None:
    """SECRET_KEY is long enough and not a placeholder."""
    key = _given(service_variables, "SECRET_KEY")
    normalized = re.sub(r"[^a-z0-9]", "", key.lower())
    problems = []
    if len(key) < SECRET_KEY_MIN_LENGTH:
        problems.append(
            f"SECRET_KEY is under {SECRET_KEY_MIN_LENGTH} characters — generate one: {GENERATE}"
        )
    if (
        len(set(normalized)) < 6
        or any(word in normalized for word in PLACEHOLDER_WORDS)
        or PLACEHOLDER_WHOLE.fullmatch(normalized)
    ):
        problems.append(f"SECRET_KEY is a placeholder, not a secret — generate one: {GENERATE}")
    if problems:
        fail_listing(problems)


def test_redis_configuration(service_variables: dict[str, str]) -> None:
    """The REDIS_* configuration is well formed and consistent."""
    url = service_variables.get("REDIS_URL", "").strip()
    parts = {name: service_variables[name] for name in REDIS_PARTS if name in service_variables}
    if url:
        problems = _url_problems("REDIS_URL", url, ("redis", "rediss"), "redis://:pw@host:6379/0")
        if not problems:
            problems = _disagreements(urlsplit(url), parts)
    elif parts:
        problems = _part_problems(parts)
    else:
        problems = ["REDIS_URL is not set — set REDIS_URL (or REDIS_HOST and REDIS_PORT)"]
    if problems:
        fail_listing(problems)


def _disagreements(url: SplitResult, parts: dict[str, str]) -> list[str]:
    """REDIS_* variables that REDIS_URL overrides with a different value (the service uses the
    URL, so whoever set them expects something that will not happen)."""
    db = url.path.strip("/") or "0"
    if not db.isdigit():
        return ["REDIS_URL has a database that is not a number — use redis://host:6379/0"]
    from_url = {
        "REDIS_HOST": url.hostname or "",
        "REDIS_PORT": str(url.port or 6379),
        "REDIS_PASSWORD": unquote(url.password or ""),
        "REDIS_DB": db,
    }
    return [
        f"{name} disagrees with REDIS_URL, which the service uses instead — remove {name} or "
        "make the two agree"
        for name, value in parts.items()
        if value.strip() != from_url[name]
    ]


def _part_problems(parts: dict[str, str]) -> list[str]:
    """REDIS_HOST/PORT/DB when no REDIS_URL is given."""
    problems = []
    port, db = parts.get("REDIS_PORT", "6379").strip(), parts.get("REDIS_DB", "0").strip()
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        problems.append("REDIS_PORT is not a port in 1..65535 — set it to Redis's port, e.g. 6379")
    if not db.isdigit():
        problems.append("REDIS_DB is not a non-negative integer — set it, usually to 0")
    if "REDIS_HOST" in parts and not parts["REDIS_HOST"].strip():
        problems.append("REDIS_HOST is empty — set it to Redis's host name")
    return problems


def _where_to_set(name: str, target: Target) -> str:
    """How to give the service ``name`` on this target."""
    key = TARGET_KEYS.get(name)
    if key is None or target.provider != "external":
        return f"set {name} in the target's env file"
    ref = f"TRIA_{target.name.upper().replace('-', '_')}_{name.removeprefix('TRIA_')}"
    return (
        f'set {key} to "${{{ref}}}" in [targets.{target.name}] of tria.toml, or name its env_file'
    )


def _given(variables: dict[str, str], name: str) -> str:
    """The variable's value; skips the check when it is unset (test_required_variables_set
    reports that once)."""
    value = variables.get(name, "").strip()
    if not value:
        pytest.skip(f"{name} is not set")
    return value


def _url_problems(name: str, url: str, schemes: tuple[str, ...], example: str) -> list[str]:
    """Scheme, host and port of a URL, worded without quoting it (it may hold a password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return [f"{name} is not a valid URL (bad port or brackets) — use {example}"]
    problems = []
    if parts.scheme not in schemes:
        allowed = " or ".join(f"{s}://" for s in schemes)
        problems.append(f"{name} has a scheme other than {allowed} — use {example}")
    if not parts.hostname:
        problems.append(f"{name} has no host — use {example}")
    return problems
