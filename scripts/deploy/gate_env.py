"""Where the new release's dependencies are, as the gate must reach them: NUL-separated pairs.

The service's own settings decide (environment first, then the env file, as a release reads
them), so the gate checks what the release really uses. Each value is printed as
``TRIA_GATE_<NAME>\\0<value>\\0`` for comprehensive_deploy.sh to export, and the generated
tria.toml names only ``${TRIA_GATE_<NAME>}``: the secrets stay in the environment, never in a
file. With ``--published`` (compose mode) the compose service names in the URLs are replaced by
the addresses compose published on this host.

    python scripts/deploy/gate_env.py --env-file .env.docker [--published postgres=127.0.0.1:5 ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tria_service.config import ConfigError, Settings, load_settings

PREFIX = "TRIA_GATE_"
# What docker-compose.yml gives the service in place of the env file's values.
COMPOSE_OVERRIDES: dict[str, Any] = {
    "redis_url": None,
    "redis_host": "redis",
    "redis_port": 6379,
    "chroma_url": "http://chroma:8000",
}


def published_url(url: str, published: Mapping[str, str]) -> str:
    """``url`` with a compose service's host:port replaced by its published address."""
    parts = urlsplit(url)
    address = published.get(parts.hostname or "")
    if address is None:
        return url
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{address}" if userinfo else address
    return urlunsplit(parts._replace(netloc=netloc))


def gate_values(settings: Settings, published: Mapping[str, str]) -> dict[str, str]:
    """The target's endpoints and secrets, by the variable name the generated tria.toml reads."""
    values = {
        "DATABASE_URL": settings.asyncpg_dsn(),
        "REDIS_URL": settings.redis_dsn(),
        "OPENAI_BASE_URL": settings.openai_endpoint(),
        "OPENAI_API_KEY": settings.openai_api_key.get_secret_value(),
        "OPENAI_MODEL": settings.openai_model,
        "OPENAI_EMBEDDING_MODEL": settings.openai_embedding_model,
        "CHROMA_URL": settings.chroma_base_url(),
        "CHROMA_COLLECTION": settings.chroma_collection,
        "DIAGNOSTICS_TOKEN": settings.tria_diagnostics_token.get_secret_value(),
        "SECRET_KEY": settings.secret_key.get_secret_value(),
    }
    for name in ("DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL", "CHROMA_URL"):
        values[name] = published_url(values[name], published)
    return values


def _published(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        service, sep, address = pair.partition("=")
        if not sep or not service or not address:
            raise SystemExit(f"--published takes SERVICE=HOST:PORT, got {pair!r}")
        found[service] = address
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", required=True, help="the release's env file")
    parser.add_argument(
        "--published",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT",
        help="compose mode: where a compose service's port is published on this host",
    )
    args = parser.parse_args(argv)
    published = _published(args.published)
    overrides = COMPOSE_OVERRIDES if published else {}
    try:
        settings = load_settings(args.env_file, **overrides)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for name, value in gate_values(settings, published).items():
        sys.stdout.write(f"{PREFIX}{name}\0{value}\0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
