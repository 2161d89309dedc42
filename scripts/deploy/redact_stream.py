"""Copy stdin to stdout and to a log file, line by line, redacted (comprehensive_deploy.sh's tee).

It masks every secret it can know: the secret values of the watched env files and of its own
environment (the caller's shell, whose values win over the env file), and what is shaped like a
credential (URL passwords, ``sk-`` keys, bearer tokens). It skips the ``name: value`` heuristic,
which would turn the service's own "SECRET_KEY: is a placeholder" into "SECRET_KEY: *** a
placeholder". An env file may appear later (the local stack writes its own once it is up) or
change, so each is read again whenever its size or modification time changes.

It ignores SIGINT, SIGTERM and SIGHUP and ends at end of input: a Ctrl-C reaches the whole
process group, and the script must still be able to log how it cleaned up after one.

    python scripts/deploy/redact_stream.py --log deploy.log --watch .env.docker --watch stack.env
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from pytest_tria_deploy.helpers import SECRET_NAME, read_env_file
from pytest_tria_deploy.redact import redact, register_secrets


def secret_values(values: Mapping[str, str]) -> list[str]:
    """The values a log must never show: secret-named ones, and every URL (for its password)."""
    return [
        value
        for key, value in values.items()
        if value and (SECRET_NAME.search(key) or "://" in value)
    ]


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
        if signature == self.seen:
            return
        try:
            values = read_env_file(self.path).values
        except (OSError, UnicodeDecodeError):
            return  # unreadable for now: read again when it changes
        self.seen = signature
        register_secrets(secret_values(values))


def pump(source: TextIO, sink: TextIO, log: TextIO, watched: list[Watched]) -> None:
    """Until end of input: each line redacted to both outputs, flushed at once. A terminal that
    went away (EPIPE) ends the copy to it, not the log."""
    to_sink = True
    for line in source:
        for item in watched:
            item.refresh()
        clean = redact(line, key_values=False)
        if to_sink:
            try:
                sink.write(clean)
                sink.flush()
            except OSError:
                to_sink = False
        log.write(clean)
        log.flush()


def main(argv: list[str] | None = None) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True, help="append the redacted lines here")
    parser.add_argument(
        "--watch", type=Path, action="append", default=[], help="env file holding secrets"
    )
    args = parser.parse_args(argv)
    register_secrets(secret_values(os.environ))
    watched = [Watched(path) for path in args.watch]
    # A stray byte must not end the log: undecodable input is replaced, not fatal.
    source = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    with args.log.open("a", encoding="utf-8") as log:
        pump(source, sys.stdout, log, watched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
