"""Records every file a Python process creates or changes, for the read-only filesystem checks.

Put this directory on PYTHONPATH and name a log in TRIA_WRITE_AUDIT_LOG: Python imports this
module at startup, and an audit hook (PEP 578) appends one line per write-like event, as
``event<TAB>path``, to the log opened before the hook exists (so the log's own writes, made with
``os.write``, raise no event). Opening for reading, sockets and pipes are not recorded.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Events whose arguments start with the path created, changed or removed (rename: both paths).
_PATH_EVENTS = {
    "os.mkdir": 1,
    "os.remove": 1,
    "os.rmdir": 1,
    "os.rename": 2,
    "os.link": 2,
    "os.symlink": 2,
    "os.truncate": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.utime": 1,
    "tempfile.mkstemp": 1,
    "tempfile.mkdtemp": 1,
}


def _paths(event: str, args: tuple[Any, ...]) -> list[object]:
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else False
        writes = writes or (isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
        return [path] if writes else []
    if event == "sqlite3.connect":
        return [args[0]] if args and args[0] != ":memory:" else []
    return list(args[: _PATH_EVENTS.get(event, 0)])


def _install(log_fd: int) -> None:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        for path in _paths(event, args):
            if not isinstance(path, str | bytes | os.PathLike):
                continue  # a descriptor: its file was recorded when it was opened
            name = os.path.abspath(os.fsdecode(path))
            os.write(log_fd, f"{event}\t{name}\n".encode(errors="backslashreplace"))

    sys.addaudithook(hook)


_log = os.environ.get("TRIA_WRITE_AUDIT_LOG")
if _log:
    _install(os.open(_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
