"""The FastAPI application: validated startup, health endpoints, orderly shutdown.

The lifespan follows the integration guide: the orchestrator validates every dependency (and
refuses to start when a critical one fails), the health monitor takes over its probes and seeds
its cache with the startup results, the chat components are built on the orchestrator's clients
(Component Initialization), and shutdown goes through the lifecycle manager, which stops the
components, then the monitor, and then closes the orchestrator's clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.routing import APIRoute

from tria_service import __version__
from tria_service.api.body_limit import BodyLimit
from tria_service.api.chat import EXCEPTION_HANDLERS, declare_message_limit
from tria_service.api.chat import router as chat_router
from tria_service.api.drain import DrainGate
from tria_service.api.health import router as health_router
from tria_service.chat.components import ChatComponents
from tria_service.clients import Clients
from tria_service.config import Settings
from tria_service.metrics import ServiceMetrics
from tria_service.production.health_monitor import HealthMonitor, get_health_monitor
from tria_service.production.lifecycle_manager import LifecycleManager, get_lifecycle_manager
from tria_service.production.probes import pool_stats as postgres_pool_stats
from tria_service.production.startup_orchestrator import StartupOrchestrator, get_orchestrator

TITLE = "Tria AIBPO Platform"
DESCRIPTION = "Multi-Agent AIBPO System"
# Answer during the drain too: readiness must be seen failing, liveness and metrics still served.
HEALTH_PATHS = frozenset(r.path for r in health_router.routes if isinstance(r, APIRoute))

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    orchestrator: StartupOrchestrator | None = None,
    monitor: HealthMonitor | None = None,
    lifecycle: LifecycleManager | None = None,
    handle_signals: bool = False,
    drain_delay: float = 0.0,
) -> FastAPI:
    """Build the app; the defaults are the process-wide orchestrator, monitor and lifecycle manager.

    ``handle_signals`` chains the SIGTERM hook onto the server's own handler (``python -m
    tria_service`` turns it on); tests that run the lifespan in-process leave pytest's alone.
    """
    monitor = monitor or get_health_monitor()
    lifecycle = lifecycle or get_lifecycle_manager()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        orch = orchestrator or (
            StartupOrchestrator(settings) if settings is not None else get_orchestrator()
        )
        results = await orch.startup()
        lifecycle.register("clients", orch.close)
        try:
            app.state.settings = orch.settings
            lifecycle.on_drain(monitor.begin_shutdown)
            clients = orch.clients
            await monitor.start(
                orch.probes,
                orch.settings,
                initial=results,
                metrics=metrics,
                pool_stats=lambda: pool_stats(clients),
            )
            lifecycle.register("health-monitor", monitor.stop)
            components = ChatComponents.build(orch.settings, clients)
            await components.start(results, monitor, lifecycle)
            app.state.chat = components
            if handle_signals:
                lifecycle.install_signal_handlers(drain_delay)
            log.info("startup_complete", version=__version__, release=orch.settings.tria_release_id)
            yield
        finally:
            await lifecycle.shutdown()

    app = FastAPI(title=TITLE, description=DESCRIPTION, version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.monitor = monitor
    app.state.lifecycle = lifecycle
    app.state.metrics = metrics
    app.include_router(health_router)
    app.include_router(chat_router)
    declare_message_limit(app)
    for error, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(error, handler)
    app.add_middleware(DrainGate, lifecycle=lifecycle, exempt=HEALTH_PATHS)
    app.add_middleware(BodyLimit)
    return app


def pool_stats(clients: Clients) -> dict[str, Any]:
    """Connection pool figures for diagnostics, read without I/O (no pool yet: no entry)."""
    stats: dict[str, Any] = {}
    if clients.pool is not None:
        stats["postgresql"] = postgres_pool_stats(clients.pool)
    redis_pool = clients.redis.connection_pool
    (idle, _), (in_use, _) = redis_pool.get_connection_count()
    stats["redis"] = {"idle": idle, "in_use": in_use, "max": redis_pool.max_connections}
    return stats
