"""Helpers shared by the service tests: the app in-process, faults, polling, body checks."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tria_service.api.chat import ChatResponseBody
from tria_service.app import create_app
from tria_service.chat.sessions import WINDOW_KEY
from tria_service.config import Settings
from tria_service.production.health_monitor import HealthMonitor
from tria_service.production.lifecycle_manager import LifecycleManager
from tria_service.production.startup_orchestrator import StartupOrchestrator

from pytest_tria_deploy.provision.processes import StandinServer

HEALTH_JSON = "application/health+json"
CHECK_KEYS = {
    "postgresql:responseTime",
    "redis:responseTime",
    "openai:responseTime",
    "chroma:responseTime",
}


# What the app registers with its lifecycle manager, in order (shutdown runs them in reverse).
LIFECYCLE_STEPS = [
    "clients",
    "health-monitor",
    "chat.sessions",
    "chat.intent-classifier",
    "chat.knowledge",
    "chat.cache",
    "chat.rate-limiter",
    "chat.agent",
]

_PASSTHROUGH = ("PATH", "HOME", "LANG", "VIRTUAL_ENV")

# For services started as processes: stop at once (the drain delay is tested on its own).
NO_DRAIN_DELAY = {"TRIA_SHUTDOWN_DRAIN_DELAY": "0"}

# serve_in_process: a bound, not a measurement; the slowest tests wait on hung dependencies, whose
# own timeouts (a few seconds) are the behaviour under test.
CLIENT_TIMEOUT = 60.0
SERVER_GRACE_SECONDS = 10  # for requests still in flight when the test leaves the block


@dataclass
class InProcessApp:
    app: FastAPI
    client: httpx.AsyncClient
    monitor: HealthMonitor
    lifecycle: LifecycleManager
    settings: Settings
    peer: str  # the client address the app sees: rate limits count per client

    def auth(self) -> dict[str, str]:
        token = self.settings.tria_diagnostics_token.get_secret_value()
        return {"Authorization": f"Bearer {token}"}


def own_loopback() -> str:
    """A random 127.0.0.0/8 address (never 127.0.0.1): rate limits count per client address in
    the shared Redis, so a test's client, in process or bound to it over TCP, has a budget of its
    own."""
    return str(ipaddress.IPv4Address((127 << 24) + (1 << 16) + secrets.randbelow(254 << 16)))


@asynccontextmanager
async def serve_in_process(settings: Settings) -> AsyncIterator[InProcessApp]:
    """The app served by uvicorn in this process on a real 127.0.0.1 socket, lifespan included,
    so every request crosses HTTP as a deployment's would; its client connects from an address
    of its own (own_loopback). A refused startup raises the app's own error."""
    peer = own_loopback()
    monitor, lifecycle = HealthMonitor(), LifecycleManager()
    app = create_app(
        settings,
        orchestrator=StartupOrchestrator(settings),
        monitor=monitor,
        lifecycle=lifecycle,
    )
    recorder = _LifespanFailure(app)
    config = uvicorn.Config(
        recorder,
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the service's default: X-Forwarded-For believed from nobody
        timeout_graceful_shutdown=SERVER_GRACE_SECONDS,
    )
    server = _TestServer(config)
    # IPPROTO_TCP named, as getaddrinfo names it for the service's own listener: asyncio sets
    # TCP_NODELAY only on sockets that say so, and without it every response waits ~40 ms (Nagle)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        serving = asyncio.create_task(server.serve_until_stopped(sock))
        try:
            if not await server.wait_started(serving):
                raise recorder.error or RuntimeError("uvicorn stopped before the app started")
            transport = httpx.AsyncHTTPTransport(local_address=peer)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=CLIENT_TIMEOUT
            ) as client:
                yield InProcessApp(app, client, monitor, lifecycle, settings, peer)
        finally:
            server.should_exit = True
            await serving
    if recorder.error is not None:  # the lifespan's shutdown failed: uvicorn only logs it
        raise recorder.error


class _TestServer(uvicorn.Server):
    """uvicorn as the service runs it, minus what belongs to a process: pytest keeps its signal
    handlers, and a refused startup ends the task instead of exiting the interpreter."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._up = asyncio.Event()

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._up.set()

    async def serve_until_stopped(self, sock: socket.socket) -> None:
        with suppress(SystemExit):  # uvicorn's exit on a refused startup
            await self.serve(sockets=[sock])

    async def wait_started(self, serving: asyncio.Task[None]) -> bool:
        """Whether the app is serving; False when the server task ended first (startup refused)."""
        up = asyncio.create_task(self._up.wait())
        try:
            await asyncio.wait({up, serving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
        if serving.done():
            serving.result()  # a failure of the server itself, not of the app
        return self._up.is_set()


class _LifespanFailure:
    """ASGI wrapper keeping the exception the lifespan raised (refusing startup, or failing
    shutdown), which uvicorn only logs, for the test to raise; a refused startup hands uvicorn an
    empty message in place of Starlette's traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.error: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def quiet(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                message = {"type": "lifespan.startup.failed", "message": ""}
            await send(message)

        try:
            await self.app(scope, receive, quiet)
        except Exception as exc:
            self.error = exc
            raise


def set_fault(server: StandinServer, mode: str, **extra: Any) -> None:
    """Inject a stand-in fault from a blocking test."""
    response = httpx.post(f"{server.url}/_admin/fault", json={"mode": mode, **extra}, timeout=5)
    response.raise_for_status()


async def set_fault_async(server: StandinServer, mode: str, **extra: Any) -> None:
    """Inject a stand-in fault from an async test, without blocking its event loop."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(f"{server.url}/_admin/fault", json={"mode": mode, **extra})
    response.raise_for_status()


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 30.0, interval: float = 0.1
) -> bool:
    """Poll until check() is true; False after a generous timeout (a bound, not a measurement)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return False


def assert_ietf_shape(body: dict[str, Any], checks: set[str] | None = None) -> None:
    """The IETF health-check fields every body carries."""
    assert body["status"] in {"pass", "warn", "fail"}
    assert body["version"] == "2.0.0"
    assert isinstance(body["releaseId"], str)
    assert body["releaseId"]
    assert body["serviceId"] == "tria-aibpo"
    assert isinstance(body["description"], str)
    if checks is not None:
        assert set(body["checks"]) == checks
        for entries in body["checks"].values():
            (entry,) = entries
            assert {
                "componentType",
                "observedValue",
                "observedUnit",
                "status",
                "time",
                "output",
            } <= set(entry)
            assert entry["status"] in {"pass", "warn", "fail"}
            assert entry["observedUnit"] == "ms"


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus exposition: metric(t, "tria_probes_total", dependency="redis")."""
    rendered = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{rendered}}}" if labels else name) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name} {labels} not in /metrics"
    return float(match.group(1))


def wait_until(check: Callable[[], bool], within: float = 30.0, interval: float = 0.1) -> bool:
    """Poll a blocking check until true; False after a generous bound (not a measurement)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def planted_secrets(env: Mapping[str, str], canaries: Mapping[str, str]) -> list[str]:
    """Every secret a test gave the service: the canaries, the OpenAI key, the URL passwords."""
    planted = [
        *canaries.values(),
        env["OPENAI_API_KEY"],
        httpx.URL(env["DATABASE_URL"]).password,
        httpx.URL(env["REDIS_URL"]).password,
    ]
    assert all(planted)
    return [secret for secret in planted if secret]


def bearer(env: Mapping[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {env['TRIA_DIAGNOSTICS_TOKEN']}"}


def run_python(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter, for what only a new process shows (startup, logging setup, signals).

    With ``env`` the child sees only it plus PATH, HOME, LANG and VIRTUAL_ENV: nothing of ours.
    """
    if env is not None:
        env = {**{k: v for k, v in os.environ.items() if k in _PASSTHROUGH}, **env}
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Three small help-centre articles for the chat and knowledge tests (the shipped ones may change).
ARTICLES = {
    "returns": """# Returns and refunds

## Returning an item
You can return most items within 30 days of delivery for a full refund. Start a return from the
Orders page and print the prepaid returns label.

## Refund timing
Refunds reach your original payment method within 5 to 7 working days after the parcel arrives
at our warehouse.
""",
    "passwords": """# Password help

## Resetting your password
Choose "Forgot password" on the sign-in page and we email you a password reset link. The reset
link expires after 60 minutes.

## Locked accounts
After 5 failed sign-in attempts your account is locked for 30 minutes.
""",
    "payments": """# Payment methods

## Cards and wallets
We accept Visa, Mastercard, American Express, PayPal, Apple Pay and Google Pay.

## Gift cards
Gift cards can be combined with one other payment method at checkout.
""",
}


def write_articles(directory: Path, articles: Mapping[str, str] = ARTICLES) -> Path:
    """A knowledge folder holding ``articles`` (source id → Markdown); returns the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    for source_id, text in articles.items():
        (directory / f"{source_id}.md").write_text(text, encoding="utf-8")
    return directory


async def say(
    client: httpx.AsyncClient, message: str, session_id: str | None = None
) -> dict[str, Any]:
    """One chat turn that must succeed; its body, checked against the declared response model."""
    body: dict[str, Any] = {"message": message}
    if session_id is not None:
        body["session_id"] = session_id
    response = await client.post("/api/v1/chat", json=body)
    assert response.status_code == 200, response.text
    ChatResponseBody.model_validate(response.json())
    reply: dict[str, Any] = response.json()
    return reply


async def hot_window(redis: Redis, session_id: str) -> list[dict[str, Any]]:
    """The session's messages as Redis holds them (its hot window), oldest first."""
    members = await redis.zrange(WINDOW_KEY.format(id=session_id), 0, -1)
    return [json.loads(str(member)) for member in members]  # the client decodes: str


async def standin_stats(standin_url: str) -> dict[str, Any]:
    """The stand-in's request counters (chat_completions, embeddings, models, by_status)."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{standin_url}/_admin/stats")
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats
