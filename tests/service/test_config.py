"""Configuration: every problem at once, one line per variable, and never a secret in the text."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from tria_service import redaction
from tria_service.config import (
    ConfigError,
    Dependency,
    Settings,
    host_problem,
    load_settings,
    resolve_env_file,
)
from tria_service.redaction import redact, redact_event, register_secrets

from tests.reliability.secrets_canaries import assert_no_secret
from tests.service._env import REQUIRED_AND_REDIS_PORT, clear_service_env, named
from tests.service.helpers import run_python

GOOD_SECRET_KEY = "Qm9v7Xr2Lp4Zt8Wc1Hn6Jd3Ks5Fy0Ga9Bq"
GOOD_TOKEN = "dG9rZW4tZm9yLWRpYWdub3N0aWNz"
GOOD_ENV = {
    "DATABASE_URL": "postgresql://tria:pg-pass-7f3a@127.0.0.1:5544/tria",
    "OPENAI_API_KEY": "sk-proj-4f7a9c2e1b8d6f0a3c5e7b9d",
    "SECRET_KEY": GOOD_SECRET_KEY,
    "TRIA_DIAGNOSTICS_TOKEN": GOOD_TOKEN,
}
CANARY = "CanaryZ9q8x7w6v5u4t3s2"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment with none of the service's variables, in a directory with no .env."""
    clear_service_env(monkeypatch, tmp_path)
    return monkeypatch


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in {**GOOD_ENV, **values}.items():
        monkeypatch.setenv(name, value)


def problems_for(monkeypatch: pytest.MonkeyPatch, **values: str) -> list[str]:
    set_env(monkeypatch, **values)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return caught.value.problems


def only_problem(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> str:
    problems = problems_for(monkeypatch, **{var: value})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{var}: "), problems
    return problems[0]


def test_valid_environment_loads(env: pytest.MonkeyPatch) -> None:
    set_env(env, REDIS_PORT="6380", TRIA_TIMEOUT_REDIS="1.5", TRIA_ENV="production")
    settings = load_settings()
    assert settings.redis_port == 6380
    assert settings.timeout_for(Dependency.REDIS) == 1.5
    assert settings.timeout_for(Dependency.DATABASE) == 5.0
    assert settings.tria_env == "production"
    assert settings.asyncpg_dsn() == GOOD_ENV["DATABASE_URL"]
    assert all(settings.is_critical(dep) for dep in Dependency)


def test_every_problem_is_reported_at_once(env: pytest.MonkeyPatch) -> None:
    problems = problems_for(
        env,
        DATABASE_URL="mysql://root:pw@db/app",
        OPENAI_API_KEY="not-a-key",
        SECRET_KEY="changeme",
        REDIS_PORT="70000",
        TRIA_TIMEOUT_OPENAI="0",
        TRIA_TIMEOUT_CHROMA="soon",
        TRIA_ENV="prod",
    )
    assert named(problems) == [
        "DATABASE_URL",
        "REDIS_PORT",
        "OPENAI_API_KEY",
        "SECRET_KEY",
        "TRIA_ENV",
        "TRIA_TIMEOUT_OPENAI",
        "TRIA_TIMEOUT_CHROMA",
    ]
    assert all(" — " in p and "\n" not in p for p in problems), problems
    assert "SECRET_KEY: is a placeholder" in problems[3]
    text = str(ConfigError(problems, ".env"))
    assert text.splitlines()[0] == "Invalid configuration (environment, then .env): 7 problems"
    assert all(f"  - {p}" in text.splitlines() for p in problems)


def test_each_missing_variable_is_named(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems == [
        f"{var}: is not set — set {var} in the environment or in .env"
        for var in ("DATABASE_URL", "OPENAI_API_KEY", "SECRET_KEY", "TRIA_DIAGNOSTICS_TOKEN")
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:p@db:3306/app", "scheme must be postgresql:// or postgresql+asyncpg://"),
        ("localhost:5432/tria", "scheme must be"),
        ("postgresql://u:p@db:5432", "has no database name"),
        ("postgresql://u:p@db:5432/", "has no database name"),
        ("postgresql:///tria", "has no host"),
        ("postgresql://u:p@db:99999/tria", "is not a valid URL"),
    ],
    ids=["mysql", "no-scheme", "no-database", "empty-database", "no-host", "bad-port"],
)
def test_database_url_format(env: pytest.MonkeyPatch, url: str, expected: str) -> None:
    problem = only_problem(env, "DATABASE_URL", url)
    assert expected in problem
    assert "postgresql://user:password@host:5432/dbname" in problem


def test_a_unix_socket_directory_is_a_database_host(env: pytest.MonkeyPatch) -> None:
    """As libpq and asyncpg accept: the one host that is neither a name nor an address."""
    set_env(env, DATABASE_URL="postgresql://tria:pw-7f3a@%2Frun%2Fpostgresql/tria")
    assert load_settings().asyncpg_dsn().endswith("@%2Frun%2Fpostgresql/tria")
    assert host_problem("%2frun%2fpostgresql") is not None  # a socket is no host elsewhere


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("db.internal", None),
        ("10.0.0.5", None),
        ("fe80::1%eth0", None),
        ("not a host", "invalid host name"),
        ("h" * 64, "invalid host name"),
        ("x." * 127, "invalid host name"),  # 254 characters
        ("[::1]", "invalid IPv6 address"),
        ("db:5432", "invalid IPv6 address"),
    ],
)
def test_host_problem_names_what_is_wrong_with_a_host(host: str, problem: str | None) -> None:
    found = host_problem(host)
    assert (found is None) == (problem is None), found
    assert problem is None or problem in str(found)


def test_asyncpg_driver_url_is_accepted_and_normalised(env: pytest.MonkeyPatch) -> None:
    set_env(env, DATABASE_URL="postgresql+asyncpg://u:p@db:5432/tria")
    assert load_settings().asyncpg_dsn() == "postgresql://u:p@db:5432/tria"


@pytest.mark.parametrize("key", ["abc123", "sk-short", "pk-0123456789abcdefghijklmnop"])
@pytest.mark.parametrize("base_url", [None, "https://api.openai.com/v1"], ids=["unset", "openai"])
def test_openai_key_must_look_like_a_key_for_the_real_api(
    env: pytest.MonkeyPatch, key: str, base_url: str | None
) -> None:
    if base_url:
        env.setenv("OPENAI_BASE_URL", base_url)
    problem = only_problem(env, "OPENAI_API_KEY", key)
    assert "'sk-' and at least 20 characters" in problem
    assert "OPENAI_BASE_URL" in problem


def test_openai_key_format_is_not_imposed_on_compatible_endpoints(
    env: pytest.MonkeyPatch,
) -> None:
    set_env(env, OPENAI_API_KEY="local-key", OPENAI_BASE_URL="http://127.0.0.1:9999/v1")
    settings = load_settings()
    assert settings.openai_endpoint() == "http://127.0.0.1:9999/v1"
    assert settings.address(Dependency.OPENAI) == "127.0.0.1:9999"


def test_secret_key_too_short(env: pytest.MonkeyPatch) -> None:
    problem = only_problem(env, "SECRET_KEY", "Zx81-short-but-random")
    assert "at least 32 characters" in problem
    assert "secrets.token_urlsafe" in problem


@pytest.mark.parametrize(
    "placeholder",
    [
        "changeme" * 4,
        "CHANGEME" * 4,
        "ChangeMe-ChangeMe-ChangeMe-ChangeMe",
        "your-secret-key-change-in-production",
        "YOUR-SECRET-KEY-HERE-0000000000000",
        "password" * 4,
        "secret" * 6,
        "x" * 40,
        "abcabcabcabcabcabcabcabcabcabcabcabc",
    ],
)
def test_secret_key_placeholders_are_refused(env: pytest.MonkeyPatch, placeholder: str) -> None:
    problem = only_problem(env, "SECRET_KEY", placeholder)
    assert "is a placeholder" in problem
    assert_no_secret({"problem": problem}, {"SECRET_KEY": placeholder})


@pytest.mark.parametrize(("value", "what"), [("0", "1..65535"), ("65536", "1..65535")])
def test_redis_port_range(env: pytest.MonkeyPatch, value: str, what: str) -> None:
    assert what in only_problem(env, "REDIS_PORT", value)


def test_pydantic_type_errors_become_one_line_without_the_input(
    env: pytest.MonkeyPatch,
) -> None:
    problems = problems_for(env, REDIS_PORT="six-three-eight-zero", TRIA_TIMEOUT_DATABASE="fast")
    assert problems == [
        "REDIS_PORT: must be an integer — set REDIS_PORT to an integer in 1..65535",
        "TRIA_TIMEOUT_DATABASE: must be a number — set TRIA_TIMEOUT_DATABASE to seconds, e.g. 5",
    ]
    text = str(ConfigError(problems))
    inputs = {"REDIS_PORT": "six-three-eight-zero", "TRIA_TIMEOUT_DATABASE": "fast"}
    assert_no_secret({"ConfigError": text}, inputs)
    for pydantic_detail in ("input_value", "errors.pydantic.dev"):
        assert pydantic_detail not in text


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_timeouts_must_be_positive(env: pytest.MonkeyPatch, value: str) -> None:
    problem = only_problem(env, "TRIA_TIMEOUT_REDIS", value)
    assert "positive number of seconds" in problem


def test_critical_dependencies(env: pytest.MonkeyPatch) -> None:
    set_env(env, TRIA_CRITICAL_DEPENDENCIES="database, Redis")
    settings = load_settings()
    assert settings.is_critical(Dependency.REDIS)
    assert not settings.is_critical(Dependency.CHROMA)
    set_env(env, TRIA_CRITICAL_DEPENDENCIES="none")
    assert not any(load_settings().is_critical(dep) for dep in Dependency)


@pytest.mark.parametrize(
    "value", ["", " , ", f"database,{CANARY}"], ids=["empty", "commas", "typo"]
)
def test_critical_dependencies_must_name_known_ones(env: pytest.MonkeyPatch, value: str) -> None:
    """Empty would silently disable fail-fast; unknown entries are not echoed (may be secrets)."""
    problem = only_problem(env, "TRIA_CRITICAL_DEPENDENCIES", value)
    assert "database, redis, openai, chroma, or 'none'" in problem
    assert_no_secret({"problem": problem}, {"canary": CANARY})


@pytest.mark.parametrize(
    "name", ["ab", "a b", "-leading", "trailing.", "x" * 513, "näme"], ids=lambda n: n[:10]
)
def test_chroma_collection_follows_chromas_rule(env: pytest.MonkeyPatch, name: str) -> None:
    problem = only_problem(env, "CHROMA_COLLECTION", name)
    assert "3-512 characters" in problem


def test_good_chroma_collection_names_pass(env: pytest.MonkeyPatch) -> None:
    for name in ("abc", "tria_knowledge", "kb.v2-test", "A" * 512):
        set_env(env, CHROMA_COLLECTION=name)
        assert load_settings().chroma_collection == name


@pytest.mark.parametrize("var", ["OPENAI_MODEL", "OPENAI_EMBEDDING_MODEL"])
def test_model_names_must_not_be_empty(env: pytest.MonkeyPatch, var: str) -> None:
    assert "is empty" in only_problem(env, var, "  ")


def test_application_client_limits(env: pytest.MonkeyPatch) -> None:
    set_env(env)
    settings = load_settings()
    assert settings.tria_openai_request_timeout == 30.0
    assert settings.tria_openai_max_retries == 2
    assert settings.tria_db_command_timeout == 30.0
    assert settings.tria_chroma_request_timeout == 30.0
    for var in (
        "TRIA_OPENAI_REQUEST_TIMEOUT",
        "TRIA_DB_COMMAND_TIMEOUT",
        "TRIA_CHROMA_REQUEST_TIMEOUT",
    ):
        assert "positive number of seconds" in only_problem(env, var, "0")
        env.delenv(var)
    assert "0..10" in only_problem(env, "TRIA_OPENAI_MAX_RETRIES", "-1")


def test_tria_env_choices(env: pytest.MonkeyPatch) -> None:
    problem = only_problem(env, "TRIA_ENV", "prod")
    assert "'development', 'staging' or 'production'" in problem


def test_env_file_is_read_and_the_environment_wins(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lines = [f"{k}={v}" for k, v in GOOD_ENV.items()]
    (tmp_path / ".env").write_text("\n".join([*lines, "REDIS_PORT=6390", "TRIA_ENV=staging"]))
    env.setenv("REDIS_PORT", "6391")
    settings = load_settings()
    assert settings.tria_env == "staging"
    assert settings.redis_port == 6391
    assert settings.asyncpg_dsn() == GOOD_ENV["DATABASE_URL"]


def test_tria_env_file_names_the_env_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TRIA_ENV=development\n")
    docker = tmp_path / ".env.docker"
    docker.write_text("\n".join([f"{k}={v}" for k, v in GOOD_ENV.items()] + ["TRIA_ENV=staging"]))
    env.setenv("TRIA_ENV_FILE", str(docker))
    assert resolve_env_file() == str(docker)
    assert load_settings().tria_env == "staging"


def test_problems_in_an_env_file_are_all_reported(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / ".env.docker"
    bad.write_text("DATABASE_URL=redis://x/y\nSECRET_KEY=secret\nREDIS_PORT=0\nOPENAI_API_KEY=x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=str(bad))
    assert named(caught.value.problems) == REQUIRED_AND_REDIS_PORT
    assert f"then {bad}" in str(caught.value)


def test_a_missing_named_env_file_is_a_problem(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    set_env(env, TRIA_ENV_FILE=str(tmp_path / "nope.env"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems == [
        f"TRIA_ENV_FILE: env file {tmp_path / 'nope.env'} does not exist — "
        "create it or name an existing file"
    ]


def test_an_env_file_that_is_not_utf8_is_a_problem(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.env"
    bad.write_bytes(f"SECRET_KEY={CANARY}\nREDIS_PORT=0\nNOTE=caf\xe9\n".encode("latin-1"))
    env.setenv("REDIS_PORT", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=str(bad))
    problems = caught.value.problems
    assert problems[0].startswith(f"TRIA_ENV_FILE: env file {bad} is not valid UTF-8 (byte ")
    assert "save it as UTF-8" in problems[0]
    assert "REDIS_PORT: must be an integer in 1..65535 — set REDIS_PORT" in problems
    assert_no_secret({"ConfigError": str(caught.value)}, {"canary": CANARY})


def test_an_env_file_that_is_a_directory_is_a_problem(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "conf.env").mkdir()
    set_env(env, TRIA_ENV_FILE=str(tmp_path / "conf.env"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems == [
        f"TRIA_ENV_FILE: {tmp_path / 'conf.env'} is a directory — name an env file"
    ]


def test_redis_url_takes_precedence_over_host_and_port(env: pytest.MonkeyPatch) -> None:
    set_env(env, REDIS_URL="redis://:pw@cache.internal:6400/2", REDIS_HOST="ignored")
    settings = load_settings()
    assert settings.redis_dsn() == "redis://:pw@cache.internal:6400/2"
    assert settings.address(Dependency.REDIS) == "cache.internal:6400"
    assert settings.config_vars(Dependency.REDIS) == "REDIS_URL"


def test_redis_host_port_password_db_build_the_url(env: pytest.MonkeyPatch) -> None:
    set_env(env, REDIS_HOST="10.0.0.5", REDIS_PORT="6390", REDIS_PASSWORD="p@ss/w", REDIS_DB="3")
    settings = load_settings()
    assert settings.redis_dsn() == "redis://:p%40ss%2Fw@10.0.0.5:6390/3"
    assert settings.config_vars(Dependency.REDIS) == "REDIS_HOST/REDIS_PORT"
    assert "p@ss/w" in settings.secret_values()


def test_redis_url_format(env: pytest.MonkeyPatch) -> None:
    problem = only_problem(env, "REDIS_URL", "http://cache:6379/0")
    assert "scheme must be redis:// or rediss://" in problem


def test_chroma_url_or_host_and_port(env: pytest.MonkeyPatch) -> None:
    set_env(env, CHROMA_HOST="vectors", CHROMA_PORT="8001")
    assert load_settings().chroma_base_url() == "http://vectors:8001"
    set_env(env, CHROMA_URL="https://chroma.example.com/")
    assert load_settings().chroma_base_url() == "https://chroma.example.com"
    assert "CHROMA_URL" in only_problem(env, "CHROMA_URL", "chroma:8000")


def test_no_secret_in_errors(env: pytest.MonkeyPatch) -> None:
    problems = problems_for(
        env,
        DATABASE_URL=f"mysql://admin:{CANARY}@db/app",
        REDIS_URL=f"http://:{CANARY}@cache:6379/0",
        OPENAI_API_KEY=f"{CANARY}-key",
        SECRET_KEY=CANARY,
        TRIA_DIAGNOSTICS_TOKEN=CANARY[:10],
    )
    assert len(problems) == 5
    error = ConfigError(problems)
    texts = {"str": str(error), "repr": repr(error)} | {
        f"problem {n}": problem for n, problem in enumerate(problems)
    }
    assert_no_secret(texts, {"canary": CANARY, "diagnostics token": CANARY[:10]})


def test_pydantic_errors_never_echo_input_even_when_raised_directly(
    env: pytest.MonkeyPatch,
) -> None:
    set_env(env, SECRET_KEY=CANARY, REDIS_PORT=CANARY)
    with pytest.raises(ValidationError) as caught:
        Settings()  # type: ignore[call-arg]
    assert_no_secret({"str": str(caught.value), "repr": repr(caught.value)}, {"canary": CANARY})


def test_no_secret_in_settings_repr_or_summary(env: pytest.MonkeyPatch) -> None:
    set_env(
        env,
        DATABASE_URL=f"postgresql://tria:{CANARY}db@127.0.0.1:5544/tria",
        REDIS_URL=f"redis://:{CANARY}rd@127.0.0.1:6390/0",
        OPENAI_API_KEY=f"sk-{CANARY}oa",
        OPENAI_BASE_URL=f"https://proxy:{CANARY}ob@llm.internal:8443/v1",
        CHROMA_URL=f"http://admin:{CANARY}ch@vectors.internal:8000",
        SECRET_KEY=f"{CANARY}sk{CANARY}",
        TRIA_DIAGNOSTICS_TOKEN=f"{CANARY}dt",
    )
    settings = load_settings()
    texts = {
        "repr": repr(settings),
        "str": str(settings),
        "summary": str(settings.summary()),
        "model_dump_json": settings.model_dump_json(),
        "model_dump": str(settings.model_dump()),
    }
    assert_no_secret(texts, {"canary": CANARY})
    assert "chroma_url='http://vectors.internal:8000'" in repr(settings)
    assert settings.summary()["chroma"] == {
        "url": "http://vectors.internal:8000",
        "collection": "tria_knowledge",
    }
    assert settings.address(Dependency.OPENAI) == "llm.internal:8443"
    secrets = settings.secret_values()
    for planted in (
        f"{CANARY}db",
        f"{CANARY}rd",
        f"sk-{CANARY}oa",
        f"{CANARY}dt",
        f"{CANARY}ob",
        f"{CANARY}ch",
    ):
        assert planted in secrets


def test_bad_config_start_lists_problems_without_traceback(tmp_path: Path) -> None:
    """The process refuses to start with the whole list and a non-zero code, nothing else."""
    bad = {
        "DATABASE_URL": f"mysql://root:{CANARY}@db/app",
        "OPENAI_API_KEY": f"{CANARY}",
        "SECRET_KEY": "changeme",
        "REDIS_PORT": "0",
        "TRIA_TIMEOUT_REDIS": "-5",
    }
    done = run_python("-m", "tria_service", cwd=tmp_path, env=bad)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    for var in ("DATABASE_URL", "OPENAI_API_KEY", "SECRET_KEY", "REDIS_PORT", "TRIA_TIMEOUT_REDIS"):
        assert f"  - {var}: " in done.stderr
    assert "  - TRIA_DIAGNOSTICS_TOKEN: is not set" in done.stderr
    assert_no_secret({"stderr": done.stderr, "stdout": done.stdout}, {"canary": CANARY})


def test_start_with_undecodable_env_file_names_it_without_traceback(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_bytes(b"SECRET_KEY=\xff\xfe not utf-8\n")
    done = run_python("-m", "tria_service", cwd=tmp_path, env={"TRIA_ENV_FILE": str(env_file)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "  - TRIA_ENV_FILE: env file" in done.stderr
    assert "not valid UTF-8" in done.stderr


def test_redact_masks_every_kind_of_secret() -> None:
    text = (
        f"dsn=postgresql://tria:{CANARY}@db:5432/tria redis://:{CANARY}x@cache:6379/0 "
        "key sk-proj-abcdefghijklmnop Authorization: Bearer eyJhbGciOi.J9.xyz "
        f"password={CANARY}y and plain {CANARY}z and quoted p%40ss%2Fw"
    )
    masked = redact(text, [f"{CANARY}z", "p@ss/w"])
    leaks = {
        "canary": CANARY,
        "API key": "sk-proj-abcdefghijklmnop",
        "bearer token": "eyJhbGciOi",
        "registered password, percent-encoded": "p%40ss%2Fw",
    }
    assert_no_secret({"masked": masked}, leaks)
    assert "postgresql://tria:***@db:5432/tria" in masked
    assert "Bearer ***" in masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("OPENAI_API_KEY=local-key-123", "OPENAI_API_KEY=***"),
        ("SECRET_KEY=xyz", "SECRET_KEY=***"),
        ('{"password": "hunter22"}', '{"password": "***"}'),
        ("'api_key': 'zzz9'", "'api_key': '***'"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("postgres://u:p@ss@host/db", "postgres://u:***@host/db"),
        ("redis://default:pa/ss@host:6379/0", "redis://default:***@host:6379/0"),
        (
            "a redis://:x@h:1/0 and http://u:y@h2/ ok",
            "a redis://:***@h:1/0 and http://u:***@h2/ ok",
        ),
    ],
)
def test_redact_patterns(text: str, masked: str) -> None:
    assert redact(text) == masked


def test_redact_leaves_plain_text_alone() -> None:
    already_masked = "Settings(secret_key=SecretStr('**********'), password=***)"
    for text in (
        "tokens=5",
        "https://api.openai.com/v1",
        "mail a@b.example",
        "see http://u@host",
        already_masked,
    ):
        assert redact(text) == text


def test_registered_secrets_are_masked_everywhere_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_registered", set())  # undone after: no process-wide leak
    secret = f"registered-{CANARY}"
    assert redact(f"value {secret}") == f"value {secret}"
    register_secrets([secret, None, ""])
    assert redact(f"value {secret}") == "value ***"
    event = {"event": "x", "nested": {"list": [secret, 3]}, "err": ValueError(secret)}
    redacted = redact_event(None, "info", event)
    assert redacted == {"event": "x", "nested": {"list": ["***", 3]}, "err": "ValueError: ***"}


def test_logs_are_json_and_redacted(tmp_path: Path) -> None:
    """Structlog and stdlib loggers alike: one JSON object a line, no secret in any field."""
    script = (
        "import logging, structlog\n"
        "import collections, dataclasses, pathlib\n"
        "from tria_service.logging import configure_logging\n"
        "from tria_service.redaction import register_secrets\n"
        "configure_logging()\n"
        f"register_secrets(['{CANARY}'])\n"
        "@dataclasses.dataclass\n"
        "class Conf:\n"
        "    password: str\n"
        "Pair = collections.namedtuple('Pair', 'name value')\n"
        f"structlog.get_logger('t').info('hello', url='redis://:{CANARY}@h:1/0', n=1)\n"
        "structlog.get_logger('t').info('objects',\n"
        f"    s={{'{CANARY}'}}, d=Conf('{CANARY}'), nt=Pair('k', '{CANARY}'),\n"
        f"    p=pathlib.Path('/tmp/{CANARY}'), t=('{CANARY}', 1))\n"
        f"logging.getLogger('uvicorn.error').warning('token %s', '{CANARY}')\n"
        "try:\n"
        f"    raise RuntimeError('boom {CANARY}')\n"
        "except RuntimeError:\n"
        "    structlog.get_logger('t').exception('failed')\n"
    )
    done = run_python("-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert [e["event"] for e in events] == ["hello", "objects", "token ***", "failed"]
    assert events[0]["url"] == "redis://:***@h:1/0"
    assert events[0]["level"] == "info"
    assert events[1]["s"] == "{'***'}"
    assert events[1]["d"] == "Conf(password='***')"
    assert events[1]["nt"] == "Pair(name='k', value='***')"
    assert events[1]["p"] == "PosixPath('/tmp/***')"
    assert events[1]["t"] == ["***", 1]
    assert "RuntimeError: boom ***" in events[3]["exception"]
    assert_no_secret({"stderr": done.stderr}, {"canary": CANARY})


def test_orchestrator_logs_are_redacted_without_configure_logging(tmp_path: Path) -> None:
    """Logging is redacted by default: an embedding app that never calls configure_logging()."""
    planted = f"pw-{uuid.uuid4().hex}"
    script = (
        "import asyncio, structlog\n"
        "from tria_service.config import Settings\n"
        "from tria_service.production.startup_orchestrator import StartupOrchestrator\n"
        "settings = Settings(_env_file=None,\n"
        f"    database_url='postgresql://tria:{planted}@127.0.0.1:9/tria',\n"
        "    redis_url='redis://127.0.0.1:9/0', openai_base_url='http://127.0.0.1:9/v1',\n"
        "    openai_api_key='local-key', chroma_url='http://127.0.0.1:9',\n"
        f"    secret_key='{GOOD_SECRET_KEY}', tria_diagnostics_token='{GOOD_TOKEN}',\n"
        "    tria_critical_dependencies='none')\n"
        "structlog.contextvars.bind_contextvars(\n"
        f"    note='password={planted}', dsn=settings.asyncpg_dsn())\n"
        "orchestrator = StartupOrchestrator(settings)\n"
        "asyncio.run(orchestrator.startup())\n"
    )
    done = run_python("-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "startup.complete" in output
    assert "note='password=***'" in output
    assert "dsn=***" in output
    assert_no_secret({"output": output}, {"database password": planted})
