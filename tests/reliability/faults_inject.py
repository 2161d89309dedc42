"""Causing each fault of the matrix with real means, on a service process of the cell's own.

``faulted(cell, bench)`` yields the situation the cell describes: for a startup fault, the
environment the service will be started with; for a run-time fault, a running service whose
dependency has just been broken. Whatever was broken is mended again (a frozen server is thawed)
before the service is stopped, so no teardown waits on a dead end.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from pytest_tria_deploy.provision.fresh import FreshDeps
from pytest_tria_deploy.provision.processes import (
    ServiceServer,
    StandinServer,
    free_port,
    start_service,
)
from pytest_tria_deploy.provision.server import Server
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.reliability.faults_matrix import Cell, Dependency, Fault
from tests.reliability.faults_proxy import LatencyProxy
from tests.service.helpers import NO_DRAIN_DELAY, set_fault, wait_until

# Run-time cells: the background refresh notices a change; the TTL is long on purpose, so that
# only the refresh loops (not a reader finding a stale result) can make readiness notice in time.
REFRESH_INTERVAL_S = 0.5
TTL_S = 30.0
# hangs: the frozen dependency's timeout (the others keep their default of 5 s)
HANG_TIMEOUT_S = 1.0
# slow: added latency well above the budget (timeout × fraction) and well under the timeout,
# whatever the number of round trips a probe makes (PostgreSQL 2-3, Chroma 4)
SLOW_TIMEOUT_S = 4.0
SLOW_FRACTION = 0.1
SLOW_LATENCY_S = 0.5
READINESS = "/api/v1/health/readiness"


@dataclass(frozen=True)
class Bench:
    """What a cell may use: a work dir, the shared env, its own servers, latency proxies."""

    workdir: Path
    service_env: Mapping[str, str]
    fresh_deps: FreshDeps
    proxy: Callable[[int], LatencyProxy]  # a started proxy to a 127.0.0.1 port, stopped after


@dataclass
class Faulted:
    """A cell's fault in place: what the service is (or will be) started with, and when it began."""

    cell: Cell
    workdir: Path
    env: dict[str, str] = field(repr=False)
    service: ServiceServer | None = None  # running (run-time faults), None for startup faults
    service_pid: int | None = None
    since: float = 0.0  # time.monotonic() when the fault took effect
    planted: str | None = field(default=None, repr=False)  # the wrong secret (credentials)
    dead_port: int | None = None  # the port nobody listens on (down at startup)
    # slow: changes the latency added to the dependency's answers (seconds), from now on
    set_latency: Callable[[float], None] | None = field(default=None, repr=False)

    @property
    def dependency(self) -> Dependency:
        return self.cell.dependency

    @property
    def timeout(self) -> float:
        """The faulted dependency's TRIA_TIMEOUT_* as the service was given it."""
        return float(self.env.get(f"TRIA_TIMEOUT_{self.dependency.name.upper()}", "5"))


def with_port(url: str, port: int) -> str:
    """``url`` pointing at 127.0.0.1:port, its credentials, path and query kept."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}" if userinfo else host))


def with_password(url: str, password: str) -> str:
    """``url`` with its password replaced (the user kept)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{password}@{host}"))


def run_time_env(service_env: Mapping[str, str], *overrides: Mapping[str, str]) -> dict[str, str]:
    """The env of a cell whose service runs: short refresh, long TTL, no drain delay."""
    env = {
        **service_env,
        **NO_DRAIN_DELAY,
        "TRIA_HEALTH_REFRESH_INTERVAL": str(REFRESH_INTERVAL_S),
        "TRIA_HEALTH_TTL": str(TTL_S),
    }
    for extra in overrides:
        env.update(extra)
    return env


@contextmanager
def faulted(cell: Cell, bench: Bench) -> Iterator[Faulted]:
    """The cell's fault in place for the duration of the block."""
    causes = {
        Fault.DOWN_AT_STARTUP: _down_at_startup,
        Fault.WRONG_CREDENTIALS: _wrong_credentials,
        Fault.DIES: _dies,
        Fault.COMES_BACK: _comes_back,
        Fault.HANGS: _hangs,
        Fault.SLOW: _slow,
    }
    workdir = bench.workdir / cell.id
    with ExitStack() as stack:
        yield causes[cell.fault](cell, bench, workdir, stack)


def _down_at_startup(cell: Cell, bench: Bench, workdir: Path, stack: ExitStack) -> Faulted:
    dep, port = cell.dependency, free_port()
    env = {**bench.service_env, dep.url_var: with_port(bench.service_env[dep.url_var], port)}
    return Faulted(cell, workdir, env, dead_port=port, since=time.monotonic())


def _wrong_credentials(cell: Cell, bench: Bench, workdir: Path, stack: ExitStack) -> Faulted:
    dep = cell.dependency
    assert dep.credential_var is not None, f"{cell.id}: {cell.not_applicable}"
    wrong = f"wrong{secrets.token_hex(10)}"
    if dep.credential_var == "OPENAI_API_KEY":
        value = f"sk-{wrong}"
        planted = value
    else:
        value = with_password(bench.service_env[dep.credential_var], wrong)
        planted = wrong
    env = {**bench.service_env, dep.credential_var: value}
    return Faulted(cell, workdir, env, planted=planted, since=time.monotonic())


def _own_server(cell: Cell, bench: Bench) -> tuple[Server, dict[str, str]]:
    """The dependency on a server of the cell's own (the rest shared), and the service env."""
    own: DependencyEndpoints = bench.fresh_deps(cell.dependency.component)
    server = getattr(own.servers, cell.dependency.component)
    assert isinstance(server, Server)
    return server, {**bench.service_env, **own.env()}


def _started(cell: Cell, workdir: Path, env: dict[str, str], stack: ExitStack) -> Faulted:
    """The cell's service, ready; stopped when the block ends (after what is pushed later)."""
    service = start_service(workdir, env)
    stack.callback(service.stop)
    return Faulted(cell, workdir, env, service=service, service_pid=service.process.pid)


def _dies(cell: Cell, bench: Bench, workdir: Path, stack: ExitStack) -> Faulted:
    server, env = _own_server(cell, bench)
    state = _started(cell, workdir, run_time_env(env), stack)
    server.process.stop(keep_files=True)  # a clean stop: its data stays, as after a crash
    state.since = time.monotonic()
    return state


def _comes_back(cell: Cell, bench: Bench, workdir: Path, stack: ExitStack) -> Faulted:
    server, env = _own_server(cell, bench)
    state = _started(cell, workdir, run_time_env(env), stack)
    server.process.stop(keep_files=True)
    assert state.service is not None
    with httpx.Client(base_url=state.service.url, timeout=10) as client:
        noticed = wait_until(lambda: client.get(READINESS).status_code == 503, within=30)
    assert noticed, f"{cell.id}: readiness never failed while {cell.dependency.name} was down"
    server.restart()  # same port, credentials and data
    state.since = time.monotonic()
    return state


def _hangs(cell: Cell, bench: Bench, workdir: Path, stack: ExitStack) -> Faulted:
    server, env = _own_server(cell, bench)
    timeout_var = f"TRIA_TIMEOUT_{cell.dependency.name.upper()}"
    run_env = run_time_env(env, {timeout_var: str(HANG_TIMEOUT_S)})
    state = _started(cell, workdir, run_env, stack)
    server.process.pause()  # SIGSTOP: connections are accepted by the kernel, never answered
    stack.callback(server.process.resume)  # thawed before the service stops
    state.since = time.monotonic()
    return state


def _slow(cell: Cell, bench: Bench, workdir: Path, stack: ExitStack) -> Faulted:
    dep = cell.dependency
    timeout_var = f"TRIA_TIMEOUT_{dep.name.upper()}"
    slow = {timeout_var: str(SLOW_TIMEOUT_S), "TRIA_DEGRADED_FRACTION": str(SLOW_FRACTION)}
    if dep.component == "openai":  # the stand-in's own latency fault
        own = bench.fresh_deps("openai")
        standin = own.servers.openai
        assert isinstance(standin, StandinServer)
        state = _started(cell, workdir, run_time_env(bench.service_env, own.env(), slow), stack)
        state.set_latency = functools.partial(_standin_latency, standin)
    else:  # a latency proxy in front of the shared server, which stays untouched
        upstream = urlsplit(bench.service_env[dep.url_var]).port
        assert upstream is not None
        proxy = bench.proxy(upstream)
        through = {dep.url_var: with_port(bench.service_env[dep.url_var], proxy.port)}
        state = _started(cell, workdir, run_time_env(bench.service_env, through, slow), stack)
        state.set_latency = functools.partial(_proxy_latency, proxy)
    state.set_latency(SLOW_LATENCY_S)
    state.since = time.monotonic()
    return state


def _standin_latency(standin: StandinServer, seconds: float) -> None:
    set_fault(standin, "latency", latency_ms=round(seconds * 1000))


def _proxy_latency(proxy: LatencyProxy, seconds: float) -> None:
    proxy.latency = seconds
