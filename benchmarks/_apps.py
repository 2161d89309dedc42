"""The apps the benchmarks measure the service against, each served by uvicorn in its own process.

Run: python -m benchmarks._apps {naive-readiness,bare,bare-routes,service-ping} --port N
(the scripts do).
Every app is served as ``python -m tria_service`` serves the service: the same uvicorn settings
and the same redacted JSON logging, so the designs compared are the only difference.

- naive-readiness: readiness that runs every dependency check on every request, the design most
  FastAPI health libraries use: asyncpg SELECT 1, Redis PING, Chroma heartbeat and the models
  list, concurrently, on clients opened once (an asyncpg pool as large as the service's).
- bare: FastAPI with a trivial endpoint and fixed health bodies: no lifespan, no monitor, no
  middleware. It imports the service's app module, so the same code is loaded as in the service
  and a memory difference is the service's running state, not its libraries.
- bare-routes: ``bare`` with the service's routing table (its routers included, then the trivial
  endpoint), so a latency ratio against the service measures its running state and middleware,
  not how many routes FastAPI matches past.
- service-ping: the service exactly as ``create_app`` builds it (orchestrator, monitor, chat
  components, lifecycle, middleware) plus the same trivial endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from tria_service.api.chat import router as chat_router
from tria_service.api.health import router as health_router
from tria_service.app import create_app
from tria_service.clients import POOL_MAX_SIZE, POOL_MIN_SIZE
from tria_service.config import load_settings
from tria_service.logging import configure_logging
from tria_service.production.health_monitor import HealthMonitor

from pytest_tria_deploy.helpers import asyncpg_dsn

PING_PATH = "/bench/ping"
READINESS_PATH = "/api/v1/health/readiness"
CHECK_TIMEOUT_S = 5.0  # the service's default TRIA_TIMEOUT_<DEP>
PASS_BODY = {"status": "pass", "checks": {}}


async def ping() -> dict[str, bool]:
    """The trivial endpoint: no I/O, a small JSON body."""
    return {"ok": True}


async def liveness() -> dict[str, str]:
    return {"status": "pass"}


def naive_readiness() -> FastAPI:
    """Every check on every request, on clients opened once at startup."""
    clients: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        clients["pg"] = await asyncpg.create_pool(
            asyncpg_dsn(os.environ["DATABASE_URL"]), min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE
        )
        clients["redis"] = Redis.from_url(os.environ["REDIS_URL"])
        clients["chroma"] = httpx.AsyncClient(base_url=os.environ["CHROMA_URL"])
        clients["openai"] = httpx.AsyncClient(
            base_url=os.environ["OPENAI_BASE_URL"],
            headers={"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"},
        )
        try:
            yield
        finally:
            await clients["redis"].aclose()
            await clients["chroma"].aclose()
            await clients["openai"].aclose()
            await clients["pg"].close()

    async def postgres() -> None:
        await clients["pg"].fetchval("SELECT 1")

    async def redis() -> None:
        await clients["redis"].ping()

    async def chroma() -> None:
        (await clients["chroma"].get("/api/v2/heartbeat")).raise_for_status()

    async def openai() -> None:
        (await clients["openai"].get("/models")).raise_for_status()

    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "postgresql": postgres,
        "redis": redis,
        "chroma": chroma,
        "openai": openai,
    }

    async def bounded(check: Callable[[], Awaitable[None]]) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await check()
        except Exception as exc:
            return f"fail: {type(exc).__name__}"
        return "pass"

    async def readiness() -> JSONResponse:
        outcomes = await asyncio.gather(*(bounded(check) for check in checks.values()))
        body = dict(zip(checks, outcomes, strict=True))
        ok = all(outcome == "pass" for outcome in outcomes)
        return JSONResponse(
            {"status": "pass" if ok else "fail", "checks": body}, 200 if ok else 503
        )

    app = FastAPI(lifespan=lifespan)
    app.add_api_route("/health", liveness)
    app.add_api_route(READINESS_PATH, readiness)
    return app


def bare() -> FastAPI:
    """The trivial endpoint and fixed health bodies, nothing running behind them."""

    async def readiness() -> dict[str, Any]:
        return PASS_BODY

    app = FastAPI()
    app.add_api_route("/health", liveness)
    app.add_api_route(READINESS_PATH, readiness)
    app.add_api_route(PING_PATH, ping)
    return app


def bare_routes() -> FastAPI:
    """The trivial endpoint behind the service's routers, with nothing running behind them."""
    app = FastAPI()
    app.state.monitor = HealthMonitor()  # never started: /health answers liveness only
    app.include_router(health_router)
    app.include_router(chat_router)
    app.add_api_route(PING_PATH, ping)
    return app


def service_ping() -> FastAPI:
    """The service as create_app builds it, with the trivial endpoint added."""
    app = create_app(load_settings())
    app.add_api_route(PING_PATH, ping)
    return app


APPS: dict[str, Callable[[], FastAPI]] = {
    "naive-readiness": naive_readiness,
    "bare": bare,
    "bare-routes": bare_routes,
    "service-ping": service_ping,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    level = os.environ.get("TRIA_LOG_LEVEL", "info")
    configure_logging(level)
    config = uvicorn.Config(
        APPS[args.app](),
        host="127.0.0.1",
        port=args.port,
        lifespan="on",
        log_config=None,
        log_level=level.lower(),
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
