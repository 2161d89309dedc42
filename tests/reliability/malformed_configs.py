"""A generated table of malformed service configurations, each one variable away from a valid one.

Every secret of the valid base holds ``CANARY``, and so does every malformed URL, so a message that
quotes a value is caught. The base points every dependency at 127.0.0.1 port 1 (nothing listens
there), so a malformed value the service wrongly accepted fails fast at startup and never reaches
a real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

CANARY = "Zq7CanaryX41v"
CLOSED = "127.0.0.1:1"
BASE_ENV: dict[str, str] = {
    "DATABASE_URL": f"postgresql://tria:{CANARY}-db@{CLOSED}/tria",
    "REDIS_URL": f"redis://:{CANARY}-redis@{CLOSED}/0",
    "OPENAI_BASE_URL": f"http://{CLOSED}/v1",
    "OPENAI_API_KEY": f"sk-{CANARY}-openai-key",
    "CHROMA_URL": f"http://{CLOSED}",
    "SECRET_KEY": f"{CANARY}-secret-key-9f8e7d6c5b4a3210",
    "TRIA_DIAGNOSTICS_TOKEN": f"{CANARY}-diagnostics",
    "TRIA_ADMIN_TOKEN": f"{CANARY}-admin-token",
    "TRIA_TIMEOUT_DATABASE": "2",
    "TRIA_TIMEOUT_REDIS": "2",
    "TRIA_TIMEOUT_OPENAI": "2",
    "TRIA_TIMEOUT_CHROMA": "2",
}


@dataclass(frozen=True)
class ConfigCase:
    """One malformed value (None: the variable unset) and a fragment of the expected problem."""

    name: str
    var: str
    value: str | None
    expected: str
    env: dict[str, str] = field(default_factory=dict)
    echoes_value: bool = False  # the message may quote it (a file path, never a secret)

    def environment(self) -> dict[str, str]:
        """The base with this case applied."""
        env = {**BASE_ENV, **self.env}
        if self.value is None:
            env.pop(self.var, None)
        else:
            env[self.var] = self.value
        return env

    @property
    def id(self) -> str:
        return f"{self.var}-{self.name}"


# (scheme, path) of a well-formed URL for each URL variable.
URL_VARS = {
    "DATABASE_URL": ("postgresql", "/tria"),
    "REDIS_URL": ("redis", "/0"),
    "OPENAI_BASE_URL": ("http", "/v1"),
    "CHROMA_URL": ("http", ""),
}


def _url_cases() -> Iterator[ConfigCase]:
    """Every URL variable, each with every kind of broken URL (a password planted in each)."""
    for var, (scheme, path) in URL_VARS.items():
        auth = f"tria:{CANARY}@"
        defects = {
            "wrong-scheme": (f"ftp://{auth}files.example:21{path}", "scheme must be"),
            "no-scheme": (f"{auth}db.example:5432{path}", "scheme must be"),
            "user-as-scheme": (f"{CANARY}:pw@db.example:5432{path}", "scheme must be"),
            "no-host": (f"{scheme}://{auth}:5432{path}", "has no host"),
            "port-out-of-range": (f"{scheme}://{auth}db:99999{path}", "is not a valid URL"),
            "port-zero": (f"{scheme}://{auth}db:0{path}", "port must be in 1..65535"),
            "port-not-a-number": (f"{scheme}://{auth}db:port{path}", "is not a valid URL"),
            "unclosed-bracket": (f"{scheme}://{auth}[::1:5432{path}", "is not a valid URL"),
            "placeholder-host": (f"{scheme}://{auth}<host>:5432{path}", "invalid host name"),
            "huge-host": (f"{scheme}://{auth}{'h' * 300}.example{path}", "invalid host name"),
            "newline": (f"{scheme}://{auth}db:5432{path}\nEXTRA=1", "whitespace or control"),
            "space-in-host": (f"{scheme}://{auth}db host:5432{path}", "whitespace or control"),
            "unexpanded-reference": (f"${{{var}}}", "unexpanded ${VAR} reference"),
        }
        for name, (value, expected) in defects.items():
            yield ConfigCase(name, var, value, expected)


def _number_cases() -> Iterator[ConfigCase]:
    """Ports and seconds: out of range, negative, not numbers, not finite, huge."""
    for var in ("REDIS_PORT", "CHROMA_PORT", "TRIA_PORT"):
        for name, value in {
            "zero": "0",
            "too-high": "65536",
            "negative": "-1",
            "word": "http",
            "huge": "9" * 40,
        }.items():
            yield ConfigCase(name, var, value, "must be an integer")
    seconds = ("TRIA_TIMEOUT_DATABASE", "TRIA_TIMEOUT_OPENAI", "TRIA_HEALTH_TTL")
    for var in (*seconds, "TRIA_SHUTDOWN_GRACE"):
        for name, value, expected in (
            ("negative", "-1", "must be a positive number of seconds"),
            ("zero", "0", "must be a positive number of seconds"),
            ("nan", "nan", "must be a positive number of seconds"),
            ("infinite", "1e400", "must be a positive number of seconds"),
            ("with-unit", "5s", "must be a number"),
            ("json-list", "[5]", "must be a number"),
        ):
            yield ConfigCase(name, var, value, expected)


def _secret_cases() -> Iterator[ConfigCase]:
    """Secrets that are placeholders, too short, empty or unset; the key for the real API."""
    real_api = {"OPENAI_BASE_URL": ""}
    yield ConfigCase("placeholder", "SECRET_KEY", "changeme", "is a placeholder")
    yield ConfigCase("placeholder-phrase", "SECRET_KEY", "your-secret-key-here", "placeholder")
    yield ConfigCase("too-short", "SECRET_KEY", CANARY, "must be at least 32 characters")
    yield ConfigCase("empty", "SECRET_KEY", "", "is a placeholder")
    yield ConfigCase("unset", "SECRET_KEY", None, "is not set")
    yield ConfigCase("placeholder", "TRIA_DIAGNOSTICS_TOKEN", "token", "is a placeholder")
    yield ConfigCase("too-short", "TRIA_DIAGNOSTICS_TOKEN", CANARY, "at least 16 characters")
    yield ConfigCase("placeholder", "TRIA_ADMIN_TOKEN", "changeme", "is a placeholder")
    yield ConfigCase("empty", "OPENAI_API_KEY", "", "is empty")
    yield ConfigCase("not-a-key", "OPENAI_API_KEY", CANARY, "does not look like", real_api)
    yield ConfigCase(
        "placeholder", "OPENAI_API_KEY", "sk-your-api-key-here", "is a placeholder", real_api
    )
    yield ConfigCase("unset", "DATABASE_URL", None, "is not set")
    yield ConfigCase("empty", "DATABASE_URL", "", "scheme must be")
    yield ConfigCase(
        "mysql", "DATABASE_URL", f"mysql://root:{CANARY}@db:3306/app", "scheme must be"
    )
    yield ConfigCase(
        "no-database", "DATABASE_URL", f"postgresql://u:{CANARY}@db:5432/", "no database"
    )
    yield ConfigCase("empty", "REDIS_URL", "", "scheme must be")
    yield ConfigCase("db-not-a-number", "REDIS_URL", f"redis://:{CANARY}@db:6379/zero", "number")


def _setting_cases() -> Iterator[ConfigCase]:
    """Choices, booleans, ranges, names and paths."""
    yield ConfigCase("unknown", "TRIA_ENV", "prod", "must be one of")
    yield ConfigCase("empty", "TRIA_ENV", "", "must be one of")
    yield ConfigCase("unknown", "TRIA_LOG_LEVEL", "chatty", "must be one of")
    yield ConfigCase("word", "TRIA_ENABLE_RAG", "maybe", "must be true or false")
    yield ConfigCase("word", "TRIA_TRUST_CLIENT_ID_HEADER", "gateway", "must be true or false")
    yield ConfigCase("empty", "TRIA_CRITICAL_DEPENDENCIES", "", "is empty")
    yield ConfigCase(
        "unknown", "TRIA_CRITICAL_DEPENDENCIES", "database,mongo", "unknown dependency"
    )
    yield ConfigCase(
        "secret-pasted", "TRIA_CRITICAL_DEPENDENCIES", f"redis,{CANARY}", "unknown dependency"
    )
    yield ConfigCase("huge", "TRIA_CHAT_MAX_MESSAGE_CHARS", "10000000", "must be in 1..100000")
    yield ConfigCase("zero", "TRIA_RATE_LIMIT_WINDOW", "0", "must be in 1..86400")
    yield ConfigCase("huge", "TRIA_SESSION_TTL", "9" * 40, "must be in")
    yield ConfigCase("above-one", "TRIA_RAG_MIN_SCORE", "1.5", "must be in 0..1")
    yield ConfigCase("word", "TRIA_AGENT_MAX_TOKENS", "many", "must be an integer")
    yield ConfigCase("above-one", "TRIA_DEGRADED_FRACTION", "1.5", "must be a number in (0, 1]")
    yield ConfigCase("too-many", "TRIA_OPENAI_MAX_RETRIES", "11", "must be an integer in 0..10")
    yield ConfigCase("fraction", "TRIA_OPENAI_MAX_RETRIES", "2.5", "must be an integer")
    yield ConfigCase("zero", "TRIA_REDIS_BASELINE_ROUND_TRIPS", "0", "must be an integer in 1..")
    yield ConfigCase("negative", "REDIS_DB", "-1", "non-negative integer")
    yield ConfigCase("too-short", "CHROMA_COLLECTION", "a", "must be 3-512 characters")
    yield ConfigCase("spaces", "CHROMA_COLLECTION", "help centre!", "must be 3-512 characters")
    yield ConfigCase("huge", "CHROMA_COLLECTION", "x" * 600, "must be 3-512 characters")
    yield ConfigCase("blank", "OPENAI_MODEL", "   ", "is empty")
    yield ConfigCase("missing", "TRIA_KNOWLEDGE_DIR", "/nonexistent/knowledge", "not a directory")
    yield ConfigCase("negative", "TRIA_SHUTDOWN_DRAIN_DELAY", "-1", "must be zero or a positive")
    yield ConfigCase("host-name", "TRIA_FORWARDED_ALLOW_IPS", "proxy.internal", "comma list")
    yield ConfigCase("empty", "TRIA_HOST", "", "must be a host name or address")
    yield ConfigCase("words", "TRIA_HOST", "not a host", "must be a host name or address")
    yield ConfigCase("huge-label", "TRIA_HOST", "h" * 300, "must be a host name or address")
    yield ConfigCase(
        "missing", "TRIA_ENV_FILE", "/nonexistent/tria.env", "does not exist", echoes_value=True
    )


CASES: list[ConfigCase] = [*_url_cases(), *_number_cases(), *_secret_cases(), *_setting_cases()]
# One of each kind, also run through the real entry point (a process start each, ~1.3 s of CPU).
THROUGH_THE_ENTRY_POINT = {
    "DATABASE_URL-user-as-scheme",
    "REDIS_URL-newline",
    "OPENAI_BASE_URL-unexpanded-reference",
    "TRIA_PORT-huge",
    "TRIA_TIMEOUT_DATABASE-nan",
    "SECRET_KEY-too-short",
    "OPENAI_API_KEY-placeholder",
    "TRIA_CRITICAL_DEPENDENCIES-secret-pasted",
}
