"""Copy stdin to stdout and to a log file, line by line, redacted (comprehensive_deploy.sh's tee).

Every line goes through the plugin's ``redact`` (credential-shaped text: URL passwords, ``sk-``
keys, bearer tokens, ``password=``-style pairs) after the secret values of the watched env files
are registered with it. An env file may appear later (the local stack writes its own once it is
up) or change, so each is read again whenever its size or modification time changes.

    python scripts/deploy/redact_stream.py --log deploy.log --watch .env.docker --watch stack.env
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path
from typing import TextIO

from dotenv import dotenv_values

from pytest_tria_deploy.redact import redact, register_secrets

# Keys whose whole value is a secret; any other value counts only for the password in a URL.
SECRET_KEY_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|_KEY$", re.IGNORECASE)


def secret_values(path: Path) -> list[str]:
    """The values of ``path`` a log must never show; unreadable or absent: none yet."""
    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    found: list[str] = []
    for key, value in values.items():
        if not value:
            continue
        if SECRET_KEY_NAME.search(key) or "://" in value:  # register() keeps a URL's password only
            found.append(value)
    return found


class Watched:
    """An env file whose secrets are (re-)registered whenever it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: tuple[int, int] | None = None

    def refresh(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            return
        signature = (stat.st_size, stat.st_mtime_ns)
        if signature != self.seen:
            self.seen = signature
            register_secrets(secret_values(self.path))


def pump(source: TextIO, sink: TextIO, log: TextIO, watched: list[Watched]) -> None:
    """Until end of input: each line redacted to both outputs, flushed at once."""
    for line in source:
        for item in watched:
            item.refresh()
        clean = redact(line)
        sink.write(clean)
        sink.flush()
        log.write(clean)
        log.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True, help="append the redacted lines here")
    parser.add_argument(
        "--watch", type=Path, action="append", default=[], help="env file holding secrets"
    )
    args = parser.parse_args(argv)
    watched = [Watched(path) for path in args.watch]
    # A stray byte must not end the log: undecodable input is replaced, not fatal.
    source = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    with args.log.open("a", encoding="utf-8") as log:
        pump(source, sys.stdout, log, watched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
