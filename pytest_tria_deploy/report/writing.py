"""How the run's report files are written: whole or not at all, and never at the verdict's cost.

A report is read while a run may be writing it (a CI step uploading, ``tria-deploy report``, a
person on call), so each file is written to a temporary file beside it and renamed over it: a
reader sees the old file or the new one, never half of one. A file that cannot be written is
said at the end of the terminal summary and changes neither the verdict nor the exit code.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pytest_tria_deploy.redact import redact


def write_atomic(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``text`` in one rename; on any error the old file stays as it was.

    The temporary file is created like ``open(path, "w")`` would create it (mode 0o666 less the
    umask), so the report keeps the permissions a plain write would give it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


class WriteProblems:
    """A pytest plugin that says, after the verdict, which of its files could not be written."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def note(self, problem: str) -> None:
        """Keep ``problem`` (redacted: it may quote a path or an error holding a secret)."""
        self.problems.append(redact(problem))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for problem in self.problems:
            terminalreporter.write_line(f"tria-deploy: {problem}", yellow=True)
