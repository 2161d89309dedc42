"""One xdist-like worker using a SharedProvider, driven by test_shared.py over stdin and stdout.

Its stack is one real Redis: what is under test is the sharing, not the stack. Run as
``python -m tests.provision.shared_worker <shared dir> <workdir>``: it prints the endpoints it got
as one JSON line, waits for a line on stdin, stops, and prints ``stopped``.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from pydantic import SecretStr

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.processes import RedisServer, start_redis
from pytest_tria_deploy.provision.shared import SharedProvider
from pytest_tria_deploy.targets import Target

TARGET = Target(name="local", provider="local")


class RedisProvider:
    """A provider whose whole stack is one Redis; the other endpoints point nowhere."""

    def __init__(self, workdir: Path, server: Path | None = None) -> None:
        self._workdir = workdir
        self._binary = server
        self._server: RedisServer | None = None

    def start(self, target: Target) -> Endpoints:
        password = secrets.token_hex(12)
        self._server = start_redis(self._workdir, password=password, server=self._binary)
        return Endpoints(
            service_urls=["http://127.0.0.1:9"],
            database_url=SecretStr("postgresql://unused@127.0.0.1:9/none"),
            redis_url=SecretStr(self._server.url),
            openai_api_key=SecretStr(password),
            chroma_url="http://127.0.0.1:9",
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def describe(self) -> dict[str, str]:
        facts = {"provider": "redis-only", "starts": "one Redis"}
        if self._server is not None:
            facts["redis"] = f"pid {self._server.process.pid}"
        return facts


def main() -> None:
    shared, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    provider = SharedProvider(RedisProvider(workdir), shared, TARGET.name)
    endpoints = provider.start(TARGET)
    got = {"redis_url": endpoints.redis_url.get_secret_value(), "facts": provider.describe()}
    print(json.dumps(got), flush=True)
    sys.stdin.readline()
    provider.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
