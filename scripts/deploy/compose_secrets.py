"""Pre-flight: are the compose file's own secrets in the env file real, not placeholders?

    python scripts/deploy/compose_secrets.py .env.docker

The service's check (``python -m tria_service --check-config``) covers what the service reads;
the containers beside it read POSTGRES_PASSWORD and REDIS_PASSWORD, and DATABASE_URL / REDIS_URL
carry a password too. Each is judged by the service's own placeholder rule; a variable set in the
environment wins over the file, as with compose. One line per problem, naming the variable,
never its value; exit 1 when there is any.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tria_service.config import is_placeholder

from pytest_tria_deploy.helpers import read_env_file

PASSWORDS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD")
URLS = ("DATABASE_URL", "REDIS_URL")


def url_password(url: str) -> str | None:
    """The (unquoted) password of ``url``, or None when it has none or is no URL."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def problems(values: Mapping[str, str]) -> list[str]:
    """A line for each compose secret that is a placeholder."""
    found: list[str] = []
    for name in PASSWORDS:
        value = values.get(name)
        if value and is_placeholder(value):
            found.append(f"{name}: is a placeholder, not a password — generate one")
    for name in URLS:
        password = url_password(values.get(name, ""))
        if password is not None and is_placeholder(password):
            found.append(f"{name}: its password is a placeholder — put the real one in the URL")
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: compose_secrets.py ENV_FILE", file=sys.stderr)
        return 2
    try:
        values = read_env_file(Path(args[0])).values
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{args[0]} cannot be read: {type(exc).__name__}", file=sys.stderr)
        return 2
    # A variable set in the environment wins over the file, for compose as for the service.
    found = problems(
        {**values, **{k: os.environ[k] for k in (*PASSWORDS, *URLS) if k in os.environ}}
    )
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
