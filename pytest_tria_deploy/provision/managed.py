"""Child processes that cannot outlive their run: own process group, log, pid file, orphan reaping.

Every spawned server gets a pid file under ``state_dir()/pids`` naming the process and its owner
(the Python process that started it). A run that dies without cleaning up (SIGKILL, crash, closed
terminal) leaves those files behind; the next start reaps the servers whose owner is gone, after
checking that the pid still belongs to the very process that was recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from filelock import FileLock

from pytest_tria_deploy.provision.errors import ComponentStartError, redact_text
from pytest_tria_deploy.redact import register_secrets

STATE_DIR_ENV = "TRIA_STATE_DIR"
RUNTIME_DIR_ENV = "TRIA_RUNTIME_DIR"
_PORT_RANGE = (20000, 32767)  # below Linux's ephemeral range, so client sockets do not collide
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_handed_out: set[int] = set()
_port_lock = threading.Lock()


def _own_dir(path: Path) -> Path:
    """Create ``path`` if needed and make sure it is ours (not a planted dir or symlink)."""
    path.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid != os.geteuid():
        raise PermissionError(
            f"{path} belongs to another user: set {STATE_DIR_ENV} and {RUNTIME_DIR_ENV}"
        )
    path.chmod(0o755)  # servers dropped to an unprivileged user must traverse it
    return path


def state_dir() -> Path:
    """Where pid files of throwaway servers live ($TRIA_STATE_DIR overrides).

    One per user, so users sharing a machine never trip over (or reap) each other's servers.
    """
    default = Path(tempfile.gettempdir()) / f"tria-deploy-{os.geteuid()}"
    return _own_dir(Path(os.environ.get(STATE_DIR_ENV) or default))


def runtime_dir() -> Path:
    """Where bulky throwaway data (PostgreSQL clusters) goes: RAM-backed /dev/shm when there is one.

    Copying a cluster there takes ~0.05 s instead of 0.3-0.8 s on disk. $TRIA_RUNTIME_DIR overrides.
    """
    shm = Path("/dev/shm")  # noqa: S108 - a per-user dir whose owner _own_dir checks
    if os.environ.get(RUNTIME_DIR_ENV):
        return _own_dir(Path(os.environ[RUNTIME_DIR_ENV]))
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return _own_dir(shm / f"tria-deploy-{os.geteuid()}")
    return state_dir()


def pid_dir() -> Path:
    path = state_dir() / "pids"
    path.mkdir(exist_ok=True)
    return path


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on ``host:port`` now (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on, never handed out twice by this process."""
    with _port_lock:
        for _ in range(500):
            port = random.randint(*_PORT_RANGE)
            if port not in _handed_out and port_is_free(port):
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port found in {_PORT_RANGE[0]}-{_PORT_RANGE[1]}")


def claim_port(component: str, port: int | None) -> int:
    """The requested port if it is free (a clear error if not), else a fresh free one."""
    if port is None:
        return free_port()
    if not port_is_free(port):
        raise ComponentStartError(component, f"port {port} already in use on 127.0.0.1")
    return port


@dataclass(frozen=True)
class Launch:
    """Everything needed to (re)start one server process; secrets are kept out of repr."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = field(default=None, repr=False)
    cwd: Path | None = None
    run_as: tuple[int, int] | None = None
    stop_signal: int = signal.SIGTERM
    secrets: tuple[str, ...] = field(default=(), repr=False)
    cleanup_paths: tuple[Path, ...] = ()


def _cmdline_digest(cmdline: Sequence[str]) -> str:
    """Pid files store a digest, not the command line, which may carry a password."""
    return hashlib.sha256("\0".join(cmdline).encode()).hexdigest()


class ManagedProcess:
    """One server process in its own process group; ``stop`` always leaves nothing running."""

    def __init__(self, launch: Launch, popen: subprocess.Popen[bytes], pid_file: Path) -> None:
        self.name = launch.name
        self.pid = popen.pid
        self.log_path = launch.log_path
        self.launch = launch
        self._popen = popen
        self._pid_file = pid_file
        self._reaped = False  # once reaped, the pid may belong to someone else: never signal it

    def __repr__(self) -> str:
        state = "alive" if self.alive() else f"exited({self._popen.returncode})"
        return f"ManagedProcess(name={self.name!r}, pid={self.pid}, {state}, log={self.log_path})"

    def alive(self) -> bool:
        return self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def pause(self) -> None:
        """Freeze the server and every process it started (SIGSTOP): it keeps its sockets but
        answers nothing. The group alone is not enough: PostgreSQL's backends leave it (each
        calls setsid) and would go on answering on connections a pool already holds."""
        self._signal_group(signal.SIGSTOP)
        self._signal_descendants(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)
        self._signal_descendants(signal.SIGCONT)

    def kill(self) -> None:
        """Crash the server (SIGKILL to the group); its files stay so it can be restarted."""
        self._signal_group(signal.SIGCONT)
        self._signal_group(signal.SIGKILL)
        self._popen.wait()
        self._reaped = True
        self._pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 10.0, *, keep_files: bool = False) -> None:
        """Stop signal to the group, SIGKILL after ``timeout``; reaps; removes its files."""
        if self.alive():
            self._signal_group(signal.SIGCONT)
            self._signal_group(self.launch.stop_signal)
            if self.wait(timeout) is None:
                self._signal_group(signal.SIGKILL)
                self._popen.wait()
        self._signal_group(signal.SIGKILL)  # stragglers that outlived the leader
        self._reaped = True
        self._pid_file.unlink(missing_ok=True)
        _LIVE.discard(self)
        if not keep_files:
            for path in self.launch.cleanup_paths:
                shutil.rmtree(path, ignore_errors=True)

    def tail(self, n: int = 20) -> list[str]:
        """The last ``n`` lines of the log, redacted."""
        try:
            with self.log_path.open("rb") as handle:
                lines = deque(handle, maxlen=n)
        except OSError:
            return []
        decoded = (_ANSI.sub("", line.decode("utf-8", "replace")).rstrip() for line in lines)
        return [redact_text(line, self.launch.secrets) for line in decoded]

    def _signal_group(self, signum: int) -> None:
        if self._reaped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _signal_descendants(self, signum: int) -> None:
        if self._reaped:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.send_signal(signum)


_LIVE: set[ManagedProcess] = set()
_orphans_checked = False


@atexit.register
def _stop_all() -> None:
    """Last line of defence: a run that forgets to stop a server still leaves none behind."""
    for process in list(_LIVE):
        process.stop(timeout=5.0)


def spawn(launch: Launch) -> ManagedProcess:
    """Start ``launch`` in a new session with output to its log file and record its pid file."""
    global _orphans_checked
    if not _orphans_checked:
        _orphans_checked = True
        reap_orphans()
    register_secrets(launch.secrets)
    launch.log_path.parent.mkdir(parents=True, exist_ok=True)
    user = group = None
    if launch.run_as is not None:
        user, group = launch.run_as
    try:
        with launch.log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(launch.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(launch.env) if launch.env is not None else None,
                cwd=launch.cwd,
                start_new_session=True,
                user=user,
                group=group,
                extra_groups=[] if launch.run_as is not None else None,
            )
    except FileNotFoundError as exc:
        raise ComponentStartError(launch.name, f"binary not found: {launch.argv[0]}") from exc
    except OSError as exc:  # EACCES, ENOEXEC (not a program), ...
        raise ComponentStartError(
            launch.name, f"binary not executable: {launch.argv[0]} ({exc.strerror})"
        ) from exc
    pid_file = pid_dir() / f"{launch.name}-{popen.pid}.json"
    _write_pid_file(pid_file, launch, popen.pid)
    process = ManagedProcess(launch, popen, pid_file)
    _LIVE.add(process)
    return process


def _create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def this_process() -> dict[str, object]:
    """This process as an owner record: pid and start time, so a reused pid is never taken
    for it (see ``owner_alive``)."""
    me = os.getpid()
    return {"owner_pid": me, "owner_create_time": _create_time(me)}


def _write_pid_file(path: Path, launch: Launch, pid: int) -> None:
    record = {
        "name": launch.name,
        "pid": pid,
        "create_time": _create_time(pid),
        "cmdline_sha256": _cmdline_digest(launch.argv),
        **this_process(),
        "cleanup_paths": [str(p) for p in launch.cleanup_paths],
        "log_path": str(launch.log_path),
        "stop_signal": int(launch.stop_signal),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def _same_process(pid: object, create_time: object) -> psutil.Process | None:
    """The live process with this pid, only if it is the one recorded (pid reuse is common)."""
    if not isinstance(pid, int) or not isinstance(create_time, int | float):
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.05 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return proc


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait for a process that may not be our child (zombies count as gone); False on timeout."""
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_group(pid: int, stop_signal: int, timeout: float = 5.0) -> None:
    """Stop the group of a process that is not our child as its launch said (PostgreSQL's SIGINT
    is a fast shutdown; SIGTERM would wait for clients), SIGKILL if it lingers."""
    for signum in (signal.SIGCONT, stop_signal):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)
    wait_gone(pid, timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def owner_alive(record: Mapping[str, object]) -> bool:
    """Whether the process an owner record names (``this_process()``) still runs."""
    return _same_process(record.get("owner_pid"), record.get("owner_create_time")) is not None


def read_pid_files() -> list[tuple[Path, dict[str, object]]]:
    """Every readable pid file with its record; unreadable ones are removed."""
    records = []
    for path in sorted(pid_dir().glob("*.json")):
        try:
            records.append((path, dict(json.loads(path.read_text()))))
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)
    return records


def reap_orphans() -> list[str]:
    """Stop servers whose owning run is gone; returns ``name[pid]`` of each one stopped."""
    reaped: list[str] = []
    with FileLock(state_dir() / "reap.lock", timeout=30):
        for path, record in read_pid_files():
            if owner_alive(record):
                continue
            pid = record.get("pid")
            proc = _same_process(pid, record.get("create_time"))
            if proc is not None and _cmdline_digest(proc.cmdline()) == record.get("cmdline_sha256"):
                stop_signal = record.get("stop_signal")
                _kill_group(
                    proc.pid, stop_signal if isinstance(stop_signal, int) else signal.SIGTERM
                )
                reaped.append(f"{record.get('name')}[{pid}]")
            extras = record.get("cleanup_paths")
            for extra in extras if isinstance(extras, list) else []:
                shutil.rmtree(str(extra), ignore_errors=True)
            path.unlink(missing_ok=True)
    return reaped
