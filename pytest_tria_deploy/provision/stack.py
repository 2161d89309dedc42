"""The local target: PostgreSQL, Redis, Chroma and the OpenAI stand-in at once, then the service.

Anything started is stopped again when a start fails, when Ctrl-C arrives mid-start, and at exit.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from pydantic import SecretStr

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.binaries import (
    chroma_command,
    postgres_bindir,
    redis_server_binary,
)
from pytest_tria_deploy.provision.chroma_server import ChromaServer, start_chroma
from pytest_tria_deploy.provision.errors import ComponentStartError
from pytest_tria_deploy.provision.facts import StartedComponent
from pytest_tria_deploy.provision.http_apps import (
    ServiceServer,
    StandinServer,
    start_openai_standin,
    start_service,
)
from pytest_tria_deploy.provision.managed import ManagedProcess, reap_orphans
from pytest_tria_deploy.provision.postgres import PostgresServer, start_postgres
from pytest_tria_deploy.provision.redis_server import RedisServer, start_redis
from pytest_tria_deploy.provision.server import Server, SpawnHook

Component = Literal["postgres", "redis", "chroma", "openai"]
COMPONENTS: tuple[Component, ...] = ("postgres", "redis", "chroma", "openai")
S = TypeVar("S", bound=Server)


class StackStartError(ComponentStartError):
    """Several components failed to start; the message lists every one of them."""

    def __init__(self, errors: list[ComponentStartError]) -> None:
        self.errors = errors
        self.component = ", ".join(error.component for error in errors)
        self.cause = "; ".join(f"{error.component}: {error.cause}" for error in errors)
        self.log_tail = [line for error in errors for line in error.log_tail]
        self.log_path = None
        RuntimeError.__init__(self, "\n".join(str(error) for error in errors))

    def __reduce__(self) -> tuple[object, ...]:
        return (StackStartError, (self.errors,))


def start_failure(futures: Mapping[str, Future[Any]]) -> ComponentStartError | None:
    """What went wrong across starts run at once: nothing, the one failure, or every failure
    together. A job that failed without naming its component is named by its key."""
    errors: list[ComponentStartError] = []
    for name, future in futures.items():
        exc = future.exception()
        if isinstance(exc, ComponentStartError):
            errors.append(exc)
        elif exc is not None:
            errors.append(ComponentStartError(name, f"{type(exc).__name__}: {exc}"))
    if not errors:
        return None
    return errors[0] if len(errors) == 1 else StackStartError(errors)


@dataclass(frozen=True)
class DependencyServers:
    """The servers a caller owns (``None`` where it borrows another's); stop() stops them all."""

    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    chroma: ChromaServer | None = None
    openai: StandinServer | None = None

    def running(self) -> list[Server]:
        found = (getattr(self, f.name) for f in fields(self))
        return [server for server in found if server is not None]

    def stop(self) -> None:
        for server in self.running():
            server.stop()


@dataclass(frozen=True)
class DependencyEndpoints:
    """Where the dependencies answer, as plain strings for clients; repr never shows credentials."""

    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    chroma_url: str
    openai_base_url: str
    openai_api_key: str = field(repr=False)
    servers: DependencyServers = field(default_factory=DependencyServers, repr=False)

    def env(self) -> dict[str, str]:
        """The service's dependency variables (no service secrets: see ``service_env``)."""
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CHROMA_URL": self.chroma_url,
            "OPENAI_BASE_URL": self.openai_base_url,
            "OPENAI_API_KEY": self.openai_api_key,
        }

    def secrets(self) -> list[str]:
        return [self.database_url, self.redis_url, self.openai_api_key]

    def endpoints(self, service_url: str, *, diagnostics_token: str, secret_key: str) -> Endpoints:
        """A target's endpoints: a service at ``service_url`` running on these dependencies
        with these secrets."""
        return Endpoints(
            service_urls=[service_url],
            database_url=SecretStr(self.database_url),
            redis_url=SecretStr(self.redis_url),
            openai_base_url=self.openai_base_url,
            openai_api_key=SecretStr(self.openai_api_key),
            chroma_url=self.chroma_url,
            diagnostics_token=SecretStr(diagnostics_token),
            secret_key=SecretStr(secret_key),
        )

    def with_servers(self, servers: DependencyServers) -> DependencyEndpoints:
        """These endpoints with ``servers``' own addresses taking over where a server is given."""
        pg, rd, chroma, ai = servers.postgres, servers.redis, servers.chroma, servers.openai
        return DependencyEndpoints(
            database_url=pg.url if pg else self.database_url,
            redis_url=rd.url if rd else self.redis_url,
            chroma_url=chroma.url if chroma else self.chroma_url,
            openai_base_url=ai.base_url if ai else self.openai_base_url,
            openai_api_key=(ai.api_key or "") if ai else self.openai_api_key,
            servers=servers,
        )

    @classmethod
    def of(cls, servers: DependencyServers) -> DependencyEndpoints:
        """Endpoints of a complete set of servers."""
        pg, rd, chroma, ai = servers.postgres, servers.redis, servers.chroma, servers.openai
        if pg is None or rd is None or chroma is None or ai is None:
            missing = [f.name for f in fields(servers) if getattr(servers, f.name) is None]
            raise ValueError(f"servers missing for: {', '.join(missing)}")
        return cls(
            database_url=pg.url,
            redis_url=rd.url,
            chroma_url=chroma.url,
            openai_base_url=ai.base_url,
            openai_api_key=ai.api_key or "",
            servers=servers,
        )


class _SpawnTracker:
    """Remembers every process spawned for one start, so Ctrl-C can stop them mid-wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: list[ManagedProcess] = []
        self._cancelled = False

    def __call__(self, process: ManagedProcess) -> None:
        with self._lock:
            if self._cancelled:
                raise ComponentStartError(process.name, "start cancelled")
            self._processes.append(process)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            processes = list(self._processes)
        for process in processes:
            process.stop(timeout=5.0)


def _start_all(starters: Mapping[str, Callable[[SpawnHook], Server]]) -> dict[str, Server]:
    """Run the starters concurrently; all succeed, or every started server is stopped again."""
    tracker = _SpawnTracker()
    pool = ThreadPoolExecutor(max_workers=max(1, len(starters)), thread_name_prefix="tria-start")
    futures: dict[str, Future[Server]] = {}
    try:
        futures = {name: pool.submit(start, tracker) for name, start in starters.items()}
        wait(futures.values())
    except BaseException:
        tracker.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        _stop_done(futures)
        raise
    pool.shutdown(wait=True)
    started = {name: f.result() for name, f in futures.items() if f.exception() is None}
    failure = start_failure(futures)
    if failure is not None:
        for server in started.values():
            server.stop()
        raise failure
    return started


def _stop_done(futures: Mapping[str, Future[Server]]) -> None:
    for future in futures.values():
        if future.done() and future.exception() is None:
            future.result().stop()


def _pick(started: Mapping[str, Server], name: str, kind: type[S]) -> S | None:
    server = started.get(name)
    return server if isinstance(server, kind) else None


def _preflight(
    only: Collection[Component], pg_bindir: Path | None, redis_server: Path | None
) -> None:
    """Find every binary before starting anything, so all such problems are reported at once."""
    checks: dict[str, Callable[[], object]] = {
        "postgres": lambda: postgres_bindir(pg_bindir),
        "redis": lambda: redis_server_binary(redis_server),
        "chroma": chroma_command,
    }
    errors: list[ComponentStartError] = []
    for name, check in checks.items():
        if name in only:
            try:
                check()
            except ComponentStartError as exc:
                errors.append(exc)
    if errors:
        raise errors[0] if len(errors) == 1 else StackStartError(errors)


def start_dependencies(
    workdir: Path,
    only: Collection[Component] = COMPONENTS,
    *,
    openai_api_key: str | None = None,
    openai_args: Sequence[str] = (),
    redis_password: str | None = None,
    pg_bindir: Path | None = None,
    redis_server: Path | None = None,
) -> DependencyServers:
    """Start the named dependencies concurrently, each on a free port."""
    starters: dict[str, Callable[[SpawnHook], Server]] = {
        "postgres": lambda hook: start_postgres(workdir, bindir=pg_bindir, on_spawn=hook),
        "redis": lambda hook: start_redis(
            workdir, password=redis_password, server=redis_server, on_spawn=hook
        ),
        "chroma": lambda hook: start_chroma(workdir, on_spawn=hook),
        "openai": lambda hook: start_openai_standin(
            workdir, api_key=openai_api_key, extra_args=openai_args, on_spawn=hook
        ),
    }
    unknown = set(only) - set(starters)
    if unknown:
        raise ValueError(f"unknown components: {', '.join(sorted(unknown))}")
    _preflight(only, pg_bindir, redis_server)
    started = _start_all({name: starters[name] for name in COMPONENTS if name in only})
    return DependencyServers(
        postgres=_pick(started, "postgres", PostgresServer),
        redis=_pick(started, "redis", RedisServer),
        chroma=_pick(started, "chroma", ChromaServer),
        openai=_pick(started, "openai", StandinServer),
    )


def service_env(
    deps: DependencyEndpoints, *, secret_key: str, diagnostics_token: str
) -> dict[str, str]:
    """Everything the service needs to run against ``deps``."""
    return {
        **deps.env(),
        "SECRET_KEY": secret_key,
        "TRIA_DIAGNOSTICS_TOKEN": diagnostics_token,
        "TRIA_ENV": "development",
        # A throwaway stack has no load balancer to tell: stop at once instead of draining.
        "TRIA_SHUTDOWN_DRAIN_DELAY": "0",
    }


# The target key (tria.toml) that each endpoints_env variable gives.
TARGET_KEYS = {
    "TRIA_SERVICE_URL": "service_url",
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "OPENAI_BASE_URL": "openai_base_url",
    "OPENAI_API_KEY": "openai_api_key",
    "CHROMA_URL": "chroma_url",
    "TRIA_DIAGNOSTICS_TOKEN": "diagnostics_token",
    "SECRET_KEY": "secret_key",
}


def endpoints_env(endpoints: Endpoints) -> dict[str, str]:
    """The env-file form of a target's endpoints (contains secrets: for ``tria-deploy up`` only)."""
    env = {
        "TRIA_SERVICE_URL": endpoints.service_urls[0],
        "DATABASE_URL": endpoints.database_url.get_secret_value(),
        "REDIS_URL": endpoints.redis_url.get_secret_value(),
        "OPENAI_BASE_URL": endpoints.openai_base_url or "",
        "OPENAI_API_KEY": endpoints.openai_api_key.get_secret_value(),
        "OPENAI_MODEL": endpoints.openai_model,
        "OPENAI_EMBEDDING_MODEL": endpoints.openai_embedding_model,
        "CHROMA_URL": endpoints.chroma_url,
        "CHROMA_COLLECTION": endpoints.chroma_collection,
    }
    if endpoints.diagnostics_token is not None:
        env["TRIA_DIAGNOSTICS_TOKEN"] = endpoints.diagnostics_token.get_secret_value()
    if endpoints.secret_key is not None:
        env["SECRET_KEY"] = endpoints.secret_key.get_secret_value()
    return env


def external_target_toml(
    name: str,
    env_prefix: str,
    *,
    settings: Mapping[str, str | bool] | None = None,
    tables: Mapping[str, Mapping[str, float]] | None = None,
    without: Collection[str] = (),
) -> str:
    """A tria.toml table for an external target ``name`` that reads each endpoint from
    ``${<env_prefix><VARIABLE>}``, VARIABLE as ``endpoints_env`` names it (so
    ``external_target_env`` gives the values); no secret is written in the file.

    ``settings`` are further keys of the target (protected, env_file...), ``tables`` its
    sub-tables (budgets, minimums), and ``without`` the target keys to leave out.
    """
    lines = [f"[targets.{name}]"]
    lines += [
        f'{key} = "${{{env_prefix}{variable}}}"'
        for variable, key in TARGET_KEYS.items()
        if key not in without
    ]
    lines += [f"{key} = {_toml_value(value)}" for key, value in (settings or {}).items()]
    for table, values in (tables or {}).items():
        lines += ["", f"[targets.{name}.{table}]"]
        lines += [f"{key} = {value:g}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def external_target_env(env_prefix: str, endpoints: Endpoints) -> dict[str, str]:
    """The variables an ``external_target_toml`` target with ``env_prefix`` reads (secrets)."""
    return {f"{env_prefix}{name}": value for name, value in endpoints_env(endpoints).items()}


def _toml_value(value: str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # a JSON string is a TOML basic string


def _started(name: str, server: Server) -> StartedComponent:
    try:
        version = server.version()
    except Exception:  # a report detail: a server that will not say is still running
        version = ""
    return StartedComponent(
        name=name,
        version=version,
        address=f"{server.host}:{server.port}",
        log=str(server.process.log_path),
        pid=server.process.pid,
    )


class LocalStack:
    """Throwaway dependencies plus the service, on free 127.0.0.1 ports, with fresh secrets.

    Use as ``with LocalStack(workdir) as stack: endpoints = stack.start()``; leaving the block (also
    by an exception or Ctrl-C, even during ``start``) stops everything.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        pg_bindir: Path | None = None,
        redis_server: Path | None = None,
        service_port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self._pg_bindir = pg_bindir
        self._redis_server = redis_server
        self._service_port = service_port
        self.secret_key = secrets.token_urlsafe(48)
        self.diagnostics_token = secrets.token_urlsafe(32)
        self.openai_api_key = f"sk-tria-local-{secrets.token_hex(16)}"
        self.redis_password = secrets.token_hex(16)
        self.servers = DependencyServers()
        self.service: ServiceServer | None = None

    def __repr__(self) -> str:
        return f"LocalStack(workdir={str(self.workdir)!r}, running={len(self._running())})"

    def start_dependencies(self) -> DependencyEndpoints:
        """PostgreSQL, Redis, Chroma and the stand-in, concurrently."""
        if self._running():
            raise RuntimeError("this LocalStack is already running; stop() it first")
        reap_orphans()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.servers = start_dependencies(
            self.workdir,
            openai_api_key=self.openai_api_key,
            redis_password=self.redis_password,
            pg_bindir=self._pg_bindir,
            redis_server=self._redis_server,
        )
        return DependencyEndpoints.of(self.servers)

    def service_env(self, deps: DependencyEndpoints) -> dict[str, str]:
        return service_env(
            deps, secret_key=self.secret_key, diagnostics_token=self.diagnostics_token
        )

    def start(self) -> Endpoints:
        """Dependencies first (together), then the service once they all answer."""
        try:
            deps = self.start_dependencies()
            self.service = start_service(
                self.workdir, self.service_env(deps), port=self._service_port
            )
        except BaseException:
            self.stop()
            raise
        return deps.endpoints(
            self.service.url, diagnostics_token=self.diagnostics_token, secret_key=self.secret_key
        )

    def _running(self) -> list[Server]:
        service: list[Server] = [self.service] if self.service is not None else []
        return service + self.servers.running()

    def components(self) -> list[StartedComponent]:
        """What runs now: each server's own version, address, pid and log (no credentials)."""
        named = [
            ("service", self.service),
            ("postgres", self.servers.postgres),
            ("redis", self.servers.redis),
            ("chroma", self.servers.chroma),
            ("openai", self.servers.openai),
        ]
        return [_started(name, server) for name, server in named if server is not None]

    def stop(self) -> None:
        """The service first (it drains), then the dependencies."""
        if self.service is not None:
            self.service.stop(timeout=30.0)
            self.service = None
        self.servers.stop()
        self.servers = DependencyServers()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
