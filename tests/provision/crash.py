"""A run that starts servers and then crashes: what orphan reaping exists for."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_PREAMBLE = """\
import os, signal, sys
from pathlib import Path
from pytest_tria_deploy.provision.processes import start_postgres, start_redis
workdir = Path(sys.argv[1])
"""
_CRASH = "os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no cleanup: a crash\n"


def crash_after(body: str, workdir: Path) -> str:
    """Run ``body`` (start servers in ``workdir``, print what the test needs) in a child process
    that is then SIGKILLed; its stdout."""
    run = subprocess.run(
        [sys.executable, "-c", _PREAMBLE + textwrap.dedent(body) + _CRASH, str(workdir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == -9, run.stderr
    return run.stdout
