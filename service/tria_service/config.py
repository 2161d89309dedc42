"""Service settings: environment first, then an env file, validated to show every problem at once.

Each problem is one line, "VAR: what is wrong — how to fix", and never echoes a value: pydantic's
own errors are rewritten into that form and the model hides inputs in its errors as a second guard.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError


class Dependency(StrEnum):
    """The external services the platform cannot answer without."""

    DATABASE = "database"
    REDIS = "redis"
    OPENAI = "openai"
    CHROMA = "chroma"


DEFAULT_ENV_FILE = ".env"
OPENAI_HOST = "api.openai.com"
OPENAI_KEY_MIN_LENGTH = 20
SECRET_KEY_MIN_LENGTH = 32
TOKEN_MIN_LENGTH = 16
NO_CRITICAL_DEPENDENCIES = "none"
# Chroma's own rule for collection names (checked here so a bad name fails at startup, not later).
_CHROMA_COLLECTION = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")
_DATABASE_SCHEMES = ("postgresql", "postgresql+asyncpg")
_REDIS_SCHEMES = ("redis", "rediss")
_PLACEHOLDERS = (
    "changeme",
    "changeit",
    "changethis",
    "replaceme",
    "secret",
    "secretkey",
    "yoursecretkey",
    "yoursecretkeyhere",
    "mysecretkey",
    "supersecret",
    "supersecretkey",
    "password",
    "placeholder",
    "default",
    "example",
    "dummy",
    "test",
    "todo",
    "token",
    "xxx",
)
_PLACEHOLDER_MARKERS = (
    "changeme",
    "yoursecret",
    "changeinproduction",
    "replaceme",
    "placeholder",
    "yourapikey",
    "yourkey",
)
# An unexpanded ${VAR} reference: nothing expands them in the environment (an env file's are
# expanded when read), so one left in a value is a deployment mistake, never a real value.
_UNEXPANDED_REFERENCE = re.compile(r"\$\{[A-Za-z_]")
# urlsplit silently drops tabs and newlines, so a URL that holds them validates as another one.
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
HOST_NAME_MAX_LENGTH = 253


# Bounds and an example value for the chat settings: (lowest, highest, example).
_CHAT_RANGES: dict[str, tuple[float, float, str]] = {
    "tria_chat_max_message_chars": (1, 100_000, "4000"),
    "tria_session_ttl": (1, 30 * 86_400, "3600"),
    "tria_session_history": (1, 200, "20"),
    "tria_classifier_temperature": (0, 2, "0"),
    "tria_agent_temperature": (0, 2, "0.3"),
    "tria_agent_max_tokens": (16, 16_384, "512"),
    "tria_escalation_confidence": (0, 1, "0.3"),
    "tria_escalation_max_failures": (1, 100, "3"),
    "tria_cache_ttl": (1, 30 * 86_400, "3600"),
    "tria_rate_limit_per_session": (1, 1_000_000, "30"),
    "tria_rate_limit_per_client": (1, 1_000_000, "120"),
    "tria_rate_limit_window": (1, 86_400, "60"),
    "tria_rag_top_k": (1, 50, "4"),
    "tria_rag_min_score": (0, 1, "0.2"),
    "tria_embedding_batch_size": (1, 2048, "64"),
}


def is_placeholder(value: str) -> bool:
    """A value made of a known placeholder (repeated or not), or of too few distinct characters."""
    normalized = re.sub(r"[^a-z0-9]", "", value.lower())
    if len(set(normalized)) < 4:
        return True
    if any(marker in normalized for marker in _PLACEHOLDER_MARKERS):
        return True
    return any(re.fullmatch(f"(?:{p})+[0-9]*", normalized) for p in _PLACEHOLDERS)


def _problem(message: str) -> PydanticCustomError:
    """A validation error whose message is already the whole "what — fix" line."""
    return PydanticCustomError("tria_config", message)


def public_url(url: str) -> str:
    """The URL without its user-info, fit to show: credentials in a URL never leave the process."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def url_credentials(url: str) -> tuple[str, str] | None:
    """(user, password) from a URL's user-info, unquoted; None when it has none."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


def _check_secret(value: SecretStr, min_length: int, nbytes: int) -> SecretStr:
    """Long enough and not a placeholder; the fix names a generator, never the value."""
    fix = f"generate one with: python -c 'import secrets; print(secrets.token_urlsafe({nbytes}))'"
    secret = value.get_secret_value()
    if is_placeholder(secret):
        raise _problem(f"is a placeholder, not a secret — {fix}")
    if len(secret) < min_length:
        raise _problem(f"must be at least {min_length} characters — {fix}")
    return value


def host_problem(host: str) -> str | None:
    """Why ``host`` (an IPv6 address without brackets) is no host name or IP address; None when
    it is one. For URL hosts and TRIA_HOST alike."""
    if ":" in host:
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return "has an invalid IPv6 address"
        return None
    labels = host.removesuffix(".").split(".")
    if len(host) > HOST_NAME_MAX_LENGTH or not all(_HOST_LABEL.fullmatch(x) for x in labels):
        return (
            "has an invalid host name (letters, digits, '-' and '_' in dot-separated labels of "
            f"at most 63 characters, {HOST_NAME_MAX_LENGTH} in all)"
        )
    return None


def _url_shape(url: str, var: str, schemes: tuple[str, ...], example: str) -> None:
    """Check scheme and host of a URL without quoting the URL (it may hold a password)."""
    if _URL_UNSAFE.search(url):
        raise _problem(f"contains whitespace or control characters — remove them from {var}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _problem(f"is not a valid URL (bad port or brackets) — use {example}") from exc
    if parts.scheme not in schemes:
        allowed = " or ".join(f"{s}://" for s in schemes)
        # Only a real scheme is quoted: in "user:password@host" urlsplit takes the user for one.
        real = parts.scheme and url.lower().startswith(f"{parts.scheme}://")
        shown = f"'{parts.scheme}://'" if real else "no scheme"
        raise _problem(f"scheme must be {allowed}, got {shown} — use {example}")
    if not parts.hostname:
        raise _problem(f"has no host — use {example}")
    # A Unix-socket directory (%2F-quoted) is a host too, as libpq and asyncpg accept.
    problem = None if unquote(parts.hostname).startswith("/") else host_problem(parts.hostname)
    if problem is not None:
        raise _problem(f"{problem} — fix the host in {var}")
    if port is not None and not 1 <= port <= 65535:
        raise _problem(f"port must be in 1..65535 — fix the port in {var}")


class Settings(BaseSettings):
    """What the service reads from its environment; secrets stay SecretStr until used."""

    model_config = SettingsConfigDict(
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
        validate_default=True,
    )

    database_url: SecretStr

    redis_url: SecretStr | None = None
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_password: SecretStr | None = None
    redis_db: int = 0

    openai_base_url: str | None = None
    openai_api_key: SecretStr
    openai_model: str = "gpt-4o-mini"
    openai_embedding_model: str = "text-embedding-3-small"

    chroma_url: str | None = None
    chroma_host: str = "127.0.0.1"
    chroma_port: int = 8000
    chroma_collection: str = "tria_knowledge"

    secret_key: SecretStr
    tria_diagnostics_token: SecretStr
    tria_env: Literal["development", "staging", "production"] = "development"

    tria_timeout_database: float = 5.0
    tria_timeout_redis: float = 5.0
    tria_timeout_openai: float = 5.0
    tria_timeout_chroma: float = 5.0
    # The application's own limits on the shared clients; probes impose their stricter timeouts.
    tria_openai_request_timeout: float = 30.0
    tria_openai_max_retries: int = 2
    tria_db_command_timeout: float = 30.0
    tria_chroma_request_timeout: float = 30.0
    tria_degraded_fraction: float = Field(
        default=0.5, description="a probe slower than this fraction of its timeout is DEGRADED"
    )
    tria_critical_dependencies: Annotated[frozenset[Dependency], NoDecode] = frozenset(Dependency)
    tria_redis_baseline_round_trips: int = 20

    tria_health_refresh_interval: float = 2.0
    tria_health_ttl: float = 5.0
    tria_shutdown_grace: float = 20.0
    tria_release_id: str = "dev"
    tria_service_id: str = "tria-aibpo"

    # The customer-service components (tria_service.chat).
    tria_admin_token: SecretStr | None = None
    tria_knowledge_dir: Path | None = None
    tria_chat_max_message_chars: int = 4000
    tria_session_ttl: int = 3600
    tria_session_history: int = 20
    tria_enable_rag: bool = True
    tria_enable_escalation: bool = True
    tria_enable_cache: bool = True
    tria_enable_rate_limiting: bool = True
    tria_classifier_temperature: float = 0.0
    tria_agent_temperature: float = 0.3
    tria_agent_max_tokens: int = 512
    tria_escalation_confidence: float = 0.3
    tria_escalation_max_failures: int = 3
    tria_cache_ttl: int = 3600
    tria_rate_limit_per_session: int = 30
    tria_rate_limit_per_client: int = 120
    tria_rate_limit_window: int = 60
    # True only behind a gateway that sets X-Client-Id itself: a client would pick its own budget.
    tria_trust_client_id_header: bool = False
    tria_rag_top_k: int = 4
    tria_rag_min_score: float = 0.2
    tria_embedding_batch_size: int = 64

    @field_validator("*", mode="before")
    @classmethod
    def _no_unexpanded_reference(cls, value: object) -> object:
        if isinstance(value, str) and _UNEXPANDED_REFERENCE.search(value):
            raise _problem(
                "holds an unexpanded ${VAR} reference — set the value itself: nothing expands "
                "references in the environment"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr) -> SecretStr:
        example = "postgresql://user:password@host:5432/dbname"
        url = value.get_secret_value()
        _url_shape(url, "DATABASE_URL", _DATABASE_SCHEMES, example)
        if not urlsplit(url).path.strip("/"):
            raise _problem(f"has no database name — use {example}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            url = value.get_secret_value()
            _url_shape(url, "REDIS_URL", _REDIS_SCHEMES, "redis://:password@host:6379/0")
            db = urlsplit(url).path.strip("/")
            if db and not db.isdigit():
                raise _problem("database must be a number (redis://host:6379/0) — fix REDIS_URL")
        return value

    @field_validator("redis_port", "chroma_port")
    @classmethod
    def _port(cls, value: int, info: ValidationInfo) -> int:
        if not 1 <= value <= 65535:
            raise _problem(f"must be an integer in 1..65535 — set {_var(info.field_name)}")
        return value

    @field_validator("redis_db")
    @classmethod
    def _redis_db(cls, value: int) -> int:
        if value < 0:
            raise _problem("must be a non-negative integer — set REDIS_DB (usually 0)")
        return value

    @field_validator("openai_base_url", "chroma_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("openai_base_url")
    @classmethod
    def _openai_base_url(cls, value: str | None) -> str | None:
        if value is not None:
            _url_shape(value, "OPENAI_BASE_URL", ("http", "https"), "https://api.openai.com/v1")
        return value

    @field_validator("openai_api_key")
    @classmethod
    def _openai_api_key(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        key = value.get_secret_value().strip()
        if not key:
            raise _problem("is empty — set it to your OpenAI API key")
        if "openai_base_url" not in info.data:
            return value  # the base URL is itself invalid: which rule applies is unknown
        if not _is_real_openai(info.data["openai_base_url"]):
            return value
        if not key.startswith("sk-") or len(key) < OPENAI_KEY_MIN_LENGTH:
            raise _problem(
                f"does not look like an OpenAI key ('sk-' and at least {OPENAI_KEY_MIN_LENGTH} "
                "characters) — copy a key from platform.openai.com/api-keys, or set "
                "OPENAI_BASE_URL for another OpenAI-compatible endpoint"
            )
        if is_placeholder(key.removeprefix("sk-")):
            raise _problem(
                "is a placeholder, not a key — copy a key from platform.openai.com/api-keys"
            )
        return value

    @field_validator("chroma_url")
    @classmethod
    def _chroma_url(cls, value: str | None) -> str | None:
        if value is not None:
            _url_shape(value, "CHROMA_URL", ("http", "https"), "http://host:8000")
        return value

    @field_validator("chroma_collection")
    @classmethod
    def _chroma_collection(cls, value: str) -> str:
        if not _CHROMA_COLLECTION.fullmatch(value):
            raise _problem(
                "must be 3-512 characters of letters, digits, '.', '_' or '-', starting and "
                "ending with a letter or digit (Chroma's rule) — set CHROMA_COLLECTION, e.g. "
                "tria_knowledge"
            )
        return value

    @field_validator("openai_model", "openai_embedding_model")
    @classmethod
    def _model(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            example = {"openai_model": "gpt-4o-mini"}.get(
                info.field_name or "", "text-embedding-3-small"
            )
            raise _problem(f"is empty — set {_var(info.field_name)} to a model id, e.g. {example}")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr) -> SecretStr:
        return _check_secret(value, SECRET_KEY_MIN_LENGTH, nbytes=48)

    @field_validator("tria_diagnostics_token")
    @classmethod
    def _diagnostics_token(cls, value: SecretStr) -> SecretStr:
        return _check_secret(value, TOKEN_MIN_LENGTH, nbytes=32)

    @field_validator("tria_admin_token", mode="before")
    @classmethod
    def _blank_token_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("tria_admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_secret(value, TOKEN_MIN_LENGTH, nbytes=32) if value is not None else None

    @field_validator("tria_knowledge_dir")
    @classmethod
    def _knowledge_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise _problem(
                "is not a directory — set it to the folder of Markdown help-centre articles, "
                "or unset it to use the service's own service/knowledge"
            )
        return value

    @field_validator(*_CHAT_RANGES)
    @classmethod
    def _chat_range(cls, value: float, info: ValidationInfo) -> float:
        low, high, example = _CHAT_RANGES[info.field_name or ""]
        if not math.isfinite(value) or not low <= value <= high:
            raise _problem(
                f"must be in {low:g}..{high:g} — set {_var(info.field_name)}, e.g. {example}"
            )
        return value

    @field_validator(
        "tria_timeout_database",
        "tria_timeout_redis",
        "tria_timeout_openai",
        "tria_timeout_chroma",
        "tria_openai_request_timeout",
        "tria_db_command_timeout",
        "tria_chroma_request_timeout",
        "tria_health_refresh_interval",
        "tria_health_ttl",
        "tria_shutdown_grace",
    )
    @classmethod
    def _positive_seconds(cls, value: float, info: ValidationInfo) -> float:
        if not math.isfinite(value) or value <= 0:
            raise _problem(f"must be a positive number of seconds — set {_var(info.field_name)}")
        return value

    @field_validator("tria_openai_max_retries")
    @classmethod
    def _retries(cls, value: int) -> int:
        if not 0 <= value <= 10:
            raise _problem("must be an integer in 0..10 — set TRIA_OPENAI_MAX_RETRIES, e.g. 2")
        return value

    @field_validator("tria_degraded_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise _problem("must be a number in (0, 1] — set TRIA_DEGRADED_FRACTION, e.g. 0.5")
        return value

    @field_validator("tria_redis_baseline_round_trips")
    @classmethod
    def _round_trips(cls, value: int) -> int:
        if not 1 <= value <= 10_000:
            raise _problem("must be an integer in 1..10000 — set TRIA_REDIS_BASELINE_ROUND_TRIPS")
        return value

    @field_validator("tria_critical_dependencies", mode="before")
    @classmethod
    def _critical(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        known = [d.value for d in Dependency]
        accepted = f"a comma list of {', '.join(known)}, or '{NO_CRITICAL_DEPENDENCIES}'"
        if not names:
            # Empty would silently disable fail-fast: opting out must be spelled out.
            raise _problem(
                f"is empty — set it to {accepted} to start even when every dependency is down"
            )
        if names == [NO_CRITICAL_DEPENDENCIES]:
            return frozenset()
        if any(n not in known for n in names):
            # The unknown entries are not quoted: a mistyped line may have put a secret here.
            raise _problem(f"names an unknown dependency — set it to {accepted}")
        return frozenset(Dependency(n) for n in names)

    @field_serializer("openai_base_url", "chroma_url")
    def _url_without_credentials(self, value: str | None) -> str | None:
        return public_url(value) if value is not None else None

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """As pydantic's, with credentials in the plain-text URLs dropped."""
        for name, value in super().__repr_args__():
            shown = public_url(value) if name in _PLAIN_URL_FIELDS and value else value
            yield name, shown

    def knowledge_dir(self) -> Path:
        """TRIA_KNOWLEDGE_DIR, or the articles shipped beside the package (service/knowledge)."""
        if self.tria_knowledge_dir is not None:
            return self.tria_knowledge_dir
        return Path(__file__).resolve().parents[1] / "knowledge"

    def asyncpg_dsn(self) -> str:
        """DATABASE_URL in the form asyncpg accepts (the SQLAlchemy driver suffix dropped)."""
        url = self.database_url.get_secret_value()
        return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)

    def redis_dsn(self) -> str:
        """REDIS_URL, or one built from REDIS_HOST/PORT/PASSWORD/DB."""
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        auth = ""
        if self.redis_password is not None and self.redis_password.get_secret_value():
            auth = f":{quote(self.redis_password.get_secret_value(), safe='')}@"
        return f"redis://{auth}{_host_for_url(self.redis_host)}:{self.redis_port}/{self.redis_db}"

    def chroma_base_url(self) -> str:
        """CHROMA_URL, or one built from CHROMA_HOST/PORT; no trailing slash."""
        if self.chroma_url is not None:
            return self.chroma_url.rstrip("/")
        return f"http://{_host_for_url(self.chroma_host)}:{self.chroma_port}"

    def openai_endpoint(self) -> str:
        """The OpenAI-compatible base URL in use (the real API when OPENAI_BASE_URL is unset)."""
        return (self.openai_base_url or f"https://{OPENAI_HOST}/v1").rstrip("/")

    def address(self, dep: Dependency) -> str:
        """host:port of a dependency, for messages (never carries credentials)."""
        url = {
            Dependency.DATABASE: self.asyncpg_dsn(),
            Dependency.REDIS: self.redis_dsn(),
            Dependency.OPENAI: self.openai_endpoint(),
            Dependency.CHROMA: self.chroma_base_url(),
        }[dep]
        parts = urlsplit(url)
        default = {"postgresql": 5432, "redis": 6379, "rediss": 6379, "https": 443, "http": 80}
        port = parts.port or default.get(parts.scheme, 0)
        return f"{_host_for_url(parts.hostname or '')}:{port}"

    def config_vars(self, dep: Dependency) -> str:
        """The variables that decide where a dependency is, for hints."""
        if dep is Dependency.DATABASE:
            return "DATABASE_URL"
        if dep is Dependency.REDIS:
            return "REDIS_URL" if self.redis_url is not None else "REDIS_HOST/REDIS_PORT"
        if dep is Dependency.OPENAI:
            return "OPENAI_BASE_URL" if self.openai_base_url else "OPENAI_BASE_URL/OPENAI_API_KEY"
        return "CHROMA_URL" if self.chroma_url is not None else "CHROMA_HOST/CHROMA_PORT"

    def credential_vars(self, dep: Dependency) -> str:
        """The variables that hold a dependency's credentials, for auth-failure hints."""
        return {
            Dependency.DATABASE: "the password in DATABASE_URL",
            Dependency.REDIS: (
                "the password in REDIS_URL" if self.redis_url is not None else "REDIS_PASSWORD"
            ),
            Dependency.OPENAI: "OPENAI_API_KEY",
            Dependency.CHROMA: "CHROMA_URL",
        }[dep]

    def timeout_for(self, dep: Dependency) -> float:
        """Seconds one check of this dependency may take."""
        return {
            Dependency.DATABASE: self.tria_timeout_database,
            Dependency.REDIS: self.tria_timeout_redis,
            Dependency.OPENAI: self.tria_timeout_openai,
            Dependency.CHROMA: self.tria_timeout_chroma,
        }[dep]

    def latency_budget_ms(self, dep: Dependency) -> float:
        """A check slower than this is DEGRADED: still working, but too slow to be trusted."""
        return self.timeout_for(dep) * self.tria_degraded_fraction * 1000.0

    def is_critical(self, dep: Dependency) -> bool:
        """Whether the service may not take traffic without this dependency."""
        return dep in self.tria_critical_dependencies

    def secret_values(self) -> list[str]:
        """Every secret value, including passwords inside URLs, for the redactor."""
        values = [self.database_url.get_secret_value(), self.openai_api_key.get_secret_value()]
        values += [
            self.secret_key.get_secret_value(),
            self.tria_diagnostics_token.get_secret_value(),
        ]
        if self.tria_admin_token is not None:
            values.append(self.tria_admin_token.get_secret_value())
        if self.redis_url is not None:
            values.append(self.redis_url.get_secret_value())
        if self.redis_password is not None:
            values.append(self.redis_password.get_secret_value())
        for url in (
            self.asyncpg_dsn(),
            self.redis_dsn(),
            self.openai_endpoint(),
            self.chroma_base_url(),
        ):
            password = urlsplit(url).password
            if password:
                values += [password, unquote(password)]
        return sorted({v for v in values if v}, key=len, reverse=True)

    def summary(self) -> dict[str, object]:
        """Non-secret view of the configuration, for diagnostics; secrets only as set/unset."""
        return {
            "env": self.tria_env,
            "release_id": self.tria_release_id,
            "service_id": self.tria_service_id,
            "database": {"address": self.address(Dependency.DATABASE), **_db_name(self)},
            "redis": {"address": self.address(Dependency.REDIS), "db": _redis_db(self)},
            "openai": {
                "base_url": public_url(self.openai_endpoint()),
                "model": self.openai_model,
                "embedding_model": self.openai_embedding_model,
            },
            "chroma": {
                "url": public_url(self.chroma_base_url()),
                "collection": self.chroma_collection,
            },
            "timeouts_s": {d.value: self.timeout_for(d) for d in Dependency},
            "client_limits": {
                "openai_request_timeout_s": self.tria_openai_request_timeout,
                "openai_max_retries": self.tria_openai_max_retries,
                "db_command_timeout_s": self.tria_db_command_timeout,
                "chroma_request_timeout_s": self.tria_chroma_request_timeout,
            },
            "critical_dependencies": sorted(d.value for d in self.tria_critical_dependencies),
            "chat": self._chat_summary(),
            "secrets": {
                "DATABASE_URL": "set",
                "OPENAI_API_KEY": "set",
                "SECRET_KEY": "set",
                "TRIA_DIAGNOSTICS_TOKEN": "set",
                "TRIA_ADMIN_TOKEN": "set" if self.tria_admin_token is not None else "unset",
                "REDIS_PASSWORD": "set" if urlsplit(self.redis_dsn()).password else "unset",
            },
        }

    def _chat_summary(self) -> dict[str, object]:
        return {
            "knowledge_dir": str(self.knowledge_dir()),
            "features": {
                "rag": self.tria_enable_rag,
                "escalation": self.tria_enable_escalation,
                "cache": self.tria_enable_cache,
                "rate_limiting": self.tria_enable_rate_limiting,
            },
            "limits": {name.removeprefix("tria_"): getattr(self, name) for name in _CHAT_RANGES},
            "rate_limit_client": (
                "X-Client-Id header" if self.tria_trust_client_id_header else "peer address"
            ),
        }


_PLAIN_URL_FIELDS = ("openai_base_url", "chroma_url")


def _var(field: str | None) -> str:
    return (field or "").upper()


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_real_openai(base_url: str | None) -> bool:
    return base_url is None or urlsplit(base_url).hostname == OPENAI_HOST


def _db_name(settings: Settings) -> dict[str, str]:
    parts = urlsplit(settings.asyncpg_dsn())
    return {"name": parts.path.strip("/"), "user": unquote(parts.username or "")}


def _redis_db(settings: Settings) -> int:
    path = urlsplit(settings.redis_dsn()).path.strip("/")
    return int(path) if path.isdigit() else 0


class ConfigError(Exception):
    """Every configuration problem at once; str() is the whole human message, no values echoed."""

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.message())

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt from its fields, so it survives pickling (xdist, multiprocessing)."""
        return type(self), (self.problems, self.source)

    def message(self) -> str:
        where = f" (environment, then {self.source})" if self.source else ""
        count = len(self.problems)
        header = f"Invalid configuration{where}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([header, *(f"  - {p}" for p in self.problems)])

    def __str__(self) -> str:
        return self.message()


_FIELD_FIXES = {
    "redis_port": "set REDIS_PORT to an integer in 1..65535",
    "chroma_port": "set CHROMA_PORT to an integer in 1..65535",
    "redis_db": "set REDIS_DB to a non-negative integer (usually 0)",
    "tria_openai_max_retries": "set TRIA_OPENAI_MAX_RETRIES to an integer, e.g. 2",
    **{
        f"tria_timeout_{d.value}": f"set TRIA_TIMEOUT_{d.value.upper()} to seconds, e.g. 5"
        for d in Dependency
    },
    **{
        name: f"set {_var(name)} to a value in {low:g}..{high:g}, e.g. {example}"
        for name, (low, high, example) in _CHAT_RANGES.items()
    },
    **{
        f"tria_enable_{feature}": f"set TRIA_ENABLE_{feature.upper()} to true or false"
        for feature in ("rag", "escalation", "cache", "rate_limiting")
    },
    "tria_trust_client_id_header": "set TRIA_TRUST_CLIENT_ID_HEADER to true or false",
}
_TYPE_FIXES = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
}


def _describe(error: ErrorDetails, env_file: str) -> str:
    """One line for one pydantic error, built from its type and location only, never its input."""
    loc = error["loc"]
    field = str(loc[0]) if loc else "settings"
    var = _var(field)
    kind = error["type"]
    if kind == "tria_config":
        return f"{var}: {error['msg']}"
    if kind == "missing":
        return f"{var}: is not set — set {var} in the environment or in {env_file}"
    if kind == "literal_error":
        choices = str(error.get("ctx", {}).get("expected", ""))
        return f"{var}: must be one of {choices} — set {var} to one of them"
    what = _TYPE_FIXES.get(kind, "is invalid")
    return f"{var}: {what} — {_FIELD_FIXES.get(field, f'fix the value of {var}')}"


def resolve_env_file(env_file: str | None = None) -> str:
    """The env file to read: the argument, else $TRIA_ENV_FILE, else `.env`."""
    return env_file or os.environ.get("TRIA_ENV_FILE") or DEFAULT_ENV_FILE


def load_settings(env_file: str | None = None, **overrides: Any) -> Settings:
    """Settings from the environment then the env file; raises ConfigError listing every problem."""
    path = resolve_env_file(env_file)
    problems: list[str] = []
    explicit = env_file is not None or bool(os.environ.get("TRIA_ENV_FILE"))
    if explicit and Path(path).is_dir():
        problems.append(f"TRIA_ENV_FILE: {path} is a directory — name an env file")
    elif explicit and not Path(path).is_file():
        problems.append(
            f"TRIA_ENV_FILE: env file {path} does not exist — create it or name an existing file"
        )
    try:
        settings = _validated(path, overrides, path)
    except (UnicodeDecodeError, OSError, SettingsError) as exc:
        problems.append(_unreadable(path, exc))
        try:
            _validated(None, overrides, path)  # still report what the environment alone gets wrong
        except ConfigError as env_error:
            problems += env_error.problems
        raise ConfigError(problems, path) from None
    except ConfigError as error:
        raise ConfigError([*problems, *error.problems], path) from None
    if problems:
        raise ConfigError(problems, path)
    return settings


def _validated(env_file: str | None, overrides: dict[str, Any], shown: str) -> Settings:
    """Settings, with pydantic's errors rewritten into problem lines (raised as ConfigError)."""
    try:
        return Settings(**{"_env_file": env_file, **overrides})
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise ConfigError([_describe(e, shown) for e in errors]) from None


def _unreadable(path: str, exc: Exception) -> str:
    """The env file could not be read or parsed; the error's text may quote a line, so not shown."""
    if isinstance(exc, UnicodeDecodeError):
        what = f"env file {path} is not valid UTF-8 (byte {exc.start})"
        fix = "save it as UTF-8, or name another file in TRIA_ENV_FILE"
    elif isinstance(exc, OSError):
        what = f"env file {path} cannot be read ({exc.strerror or type(exc).__name__})"
        fix = "make it readable by the service's user, or name another file in TRIA_ENV_FILE"
    else:
        what = f"env file {path} cannot be parsed"
        fix = "check its lines are VAR=value, or name another file in TRIA_ENV_FILE"
    return f"TRIA_ENV_FILE: {what} — {fix}"
