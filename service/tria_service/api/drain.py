"""Refuse new work once the drain delay is over, while the health endpoints keep answering.

After SIGTERM readiness fails at once, but load balancers keep routing here until they see it, so
through the drain delay every request is served as usual. When the delay has elapsed the server
stops accepting connections and closes the idle ones; a request that still arrives on a kept-alive
connection (or in the moment before the listener closes) gets a 503 with Retry-After and the
connection closed, to be retried on another instance, while requests already running finish.
Health endpoints are exempt: readiness must be seen failing.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tria_service.production.lifecycle_manager import LifecycleManager

RETRY_AFTER_SECONDS = 5
REFUSED_DETAIL = "shutting down: not accepting new requests, retry on another instance"


class DrainGate:
    """ASGI middleware: 503 for every HTTP request outside ``exempt`` once the manager has
    stopped accepting new work."""

    def __init__(self, app: ASGIApp, lifecycle: LifecycleManager, exempt: Collection[str]) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not self.lifecycle.accepting
            and scope["path"] not in self.exempt
        ):
            refused = JSONResponse(
                {"detail": REFUSED_DETAIL},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"},
            )
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)
