"""Health, diagnostics and metrics endpoints, with bodies in the IETF health-check format.

Bodies are application/health+json (draft-inadarei-api-health-check): pass and warn answer 200,
fail answers 503, so orchestrators can act on the status code alone and people on the body.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from tria_service.metrics import ServiceMetrics
from tria_service.production.health_monitor import HealthMonitor

HEALTH_MEDIA_TYPE = "application/health+json"
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="tria-diagnostics"'}


class HealthJSONResponse(JSONResponse):
    media_type = HEALTH_MEDIA_TYPE


class CheckEntry(BaseModel):
    """One measurement of one component (the IETF draft's "checks" entries)."""

    model_config = ConfigDict(extra="allow")

    componentId: str | None = None
    componentType: str
    observedValue: float | None
    observedUnit: str
    status: Literal["pass", "warn", "fail"]
    time: str = Field(description="RFC 3339 time of the measurement")
    output: str = Field(default="", description="why the check is not passing; empty on pass")


class HealthBody(BaseModel):
    """The IETF health-check body."""

    status: Literal["pass", "warn", "fail"]
    version: str
    releaseId: str
    serviceId: str
    description: str
    checks: dict[str, list[CheckEntry]] = Field(
        default_factory=dict, description='keyed "{component}:{measurement}"'
    )


class ReadinessBody(HealthBody):
    overall_healthy: bool


class DependencyDiagnostics(BaseModel):
    status: str
    critical: bool
    latency_ms: float | None
    version: str | None
    checked_at: str | None
    last_error: str | None
    last_error_at: str | None
    last_success: str | None
    hint: str | None
    probes_run: int
    details: dict[str, Any]


class DiagnosticsDetails(BaseModel):
    version: str
    release_id: str
    service_id: str
    environment: str
    uptime_seconds: float
    ready_since: str | None
    shutting_down: bool
    dependencies: dict[str, DependencyDiagnostics]
    pools: dict[str, Any]
    components: dict[str, Any]
    config: dict[str, Any] = Field(description="configuration summary, secrets redacted")


class DiagnosticsBody(HealthBody):
    details: DiagnosticsDetails | None = None


class ErrorBody(BaseModel):
    detail: str


_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "missing or wrong bearer token (TRIA_DIAGNOSTICS_TOKEN)",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": ErrorBody.model_json_schema()}},
    }
}

router = APIRouter(tags=["health"])
_bearer = HTTPBearer(auto_error=False, description="TRIA_DIAGNOSTICS_TOKEN")


def _monitor(request: Request) -> HealthMonitor:
    monitor: HealthMonitor = request.app.state.monitor
    return monitor


def _answer(body: dict[str, Any]) -> HealthJSONResponse:
    """The body as built by the monitor (its shape is the response model, checked by tests).

    Returned as a response, so FastAPI skips re-validating it on every call: readiness is
    polled often and must cost little more than liveness.
    """
    return HealthJSONResponse(body, status_code=503 if body["status"] == "fail" else 200)


def require_diagnostics_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Bearer TRIA_DIAGNOSTICS_TOKEN, compared in constant time; a 401 says nothing more."""
    settings = getattr(request.app.state, "settings", None)
    expected = settings.tria_diagnostics_token.get_secret_value().encode() if settings else b""
    given = credentials.credentials.encode() if credentials is not None else b""
    if not expected or not secrets.compare_digest(given, expected):
        raise HTTPException(status_code=401, detail="unauthorized", headers=UNAUTHORIZED_HEADERS)


Monitor = Annotated[HealthMonitor, Depends(_monitor)]


@router.get(
    "/health",
    response_model=HealthBody,
    response_class=HealthJSONResponse,
    summary="Liveness: the process answers (no dependency I/O)",
)
async def liveness(monitor: Monitor) -> HealthJSONResponse:
    return _answer(await monitor.liveness())


@router.get(
    "/api/v1/health/startup",
    response_model=HealthBody,
    response_class=HealthJSONResponse,
    responses={503: {"model": HealthBody, "description": "startup validation not finished"}},
    summary="Startup: 503 until every critical dependency has been validated",
)
async def startup(monitor: Monitor) -> HealthJSONResponse:
    return _answer(await monitor.startup())


@router.get(
    "/api/v1/health/readiness",
    response_model=ReadinessBody,
    response_class=HealthJSONResponse,
    responses={503: {"model": ReadinessBody, "description": "not ready, or shutting down"}},
    summary="Readiness: may this instance take traffic?",
)
async def readiness(monitor: Monitor) -> HealthJSONResponse:
    return _answer(await monitor.readiness())


@router.get(
    "/api/v1/health/diagnostics",
    response_model=DiagnosticsBody,
    response_class=HealthJSONResponse,
    responses={
        503: {"model": DiagnosticsBody, "description": "a critical dependency is failing"},
        **_UNAUTHORIZED,
    },
    dependencies=[Depends(require_diagnostics_token)],
    summary="Diagnostics: every dependency, pool and config detail, secrets redacted",
)
async def diagnostics(monitor: Monitor) -> HealthJSONResponse:
    return _answer(await monitor.detailed_diagnostics())


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/openmetrics-text": {"schema": {"type": "string"}},
            }
        }
    },
    summary="Prometheus metrics (OpenMetrics when the Accept header asks for it)",
)
async def metrics(request: Request) -> Response:
    service_metrics: ServiceMetrics = request.app.state.metrics
    monitor: HealthMonitor = request.app.state.monitor
    service_metrics.record_readiness(monitor.readiness_snapshot(), monitor.shutting_down)
    body, content_type = service_metrics.render(request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})
