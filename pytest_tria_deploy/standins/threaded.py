"""The stand-in served by uvicorn in a background thread, for tests that want real HTTP in-process.

The socket is bound before uvicorn starts, so the port is known and never raced for.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from pytest_tria_deploy.standins.openai_app import create_app

_STARTUP_TIMEOUT_S = 10.0
_ADMIN_TIMEOUT_S = 5.0


class ThreadedStandin:
    """A running stand-in: ``url`` (root), ``base_url`` (…/v1) and admin helpers."""

    def __init__(self, api_key: str | None = None, **options: Any) -> None:
        self.api_key = api_key
        app = create_app(api_key, **options)
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only then (else Nagle delays replies ~40 ms).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._admin = httpx.Client(base_url=f"{self.url}/_admin", timeout=_ADMIN_TIMEOUT_S)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def __repr__(self) -> str:
        return f"ThreadedStandin(url={self.url!r})"

    def start(self) -> ThreadedStandin:
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the OpenAI stand-in did not start on {self.url} within 10 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=_STARTUP_TIMEOUT_S)
        self._admin.close()
        self._sock.close()

    def __enter__(self) -> ThreadedStandin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def admin(self, method: str, path: str, json: object | None = None) -> httpx.Response:
        return self._admin.request(method, f"/{path}", json=json)

    def set_fault(self, mode: str, **options: int) -> dict[str, Any]:
        response = self.admin("POST", "fault", {"mode": mode, **options})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stats(self) -> dict[str, Any]:
        response = self.admin("GET", "stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def reset(self) -> None:
        self.admin("POST", "reset").raise_for_status()
