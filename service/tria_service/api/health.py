"""Health, diagnostics and metrics endpoints, with bodies in the IETF health-check format.

Bodies are application/health+json (draft-inadarei-api-health-check): pass and warn answer 200,
fail answers 503, so orchestrators can act on the status code alone and people on the body.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response, params
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, ConfigDict, Field

from tria_service.api.auth import require_bearer
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


class HostDiagnostics(BaseModel):
    """The machine the service runs on, for a remote gate's preflight; sizes in MiB."""

    cpus: int | None = Field(description="logical CPUs")
    memory_total_mb: float | None
    memory_available_mb: float | None
    disk_path: str | None = Field(description="the working directory, whose filesystem is meant")
    disk_free_mb: float | None
    load_1m: float | None = Field(description="load average over the last minute")
    process_rss_mb: float | None = Field(description="the service process's resident memory")
    errors: dict[str, str] = Field(description="figures that could not be read (null), and why")


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
    host: HostDiagnostics
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
    """Bearer TRIA_DIAGNOSTICS_TOKEN; a 401 says nothing more."""
    settings = getattr(request.app.state, "settings", None)
    accepted = [settings.tria_diagnostics_token] if settings is not None else []
    require_bearer(credentials, accepted, UNAUTHORIZED_HEADERS)


Monitor = Annotated[HealthMonitor, Depends(_monitor)]


def _health_get(
    path: str,
    model: type[HealthBody],
    summary: str,
    *,
    failing: str | None = None,
    responses: dict[int | str, dict[str, Any]] | None = None,
    dependencies: Sequence[params.Depends] | None = None,
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A health route: its body model documented for 200 and, where it can fail, for 503 too."""
    documented: dict[int | str, dict[str, Any]] = {}
    if failing:
        documented[503] = {"model": model, "description": failing}
    documented.update(responses or {})
    return router.get(
        path,
        response_model=model,
        response_class=HealthJSONResponse,
        responses=documented,
        dependencies=dependencies,
        summary=summary,
    )


@_health_get("/health", HealthBody, "Liveness: the process answers (no dependency I/O)")
async def liveness(monitor: Monitor) -> HealthJSONResponse:
    return _answer(await monitor.liveness())


@_health_get(
    "/api/v1/health/startup",
    HealthBody,
    "Startup: 503 until every critical dependency has been validated",
    failing="startup validation not finished",
)
async def startup(monitor: Monitor) -> HealthJSONResponse:
    return _answer(await monitor.startup())


@_health_get(
    "/api/v1/health/readiness",
    ReadinessBody,
    "Readiness: may this instance take traffic?",
    failing="not ready, or shutting down",
)
async def readiness(monitor: Monitor) -> HealthJSONResponse:
    return _answer(await monitor.readiness())


@_health_get(
    "/api/v1/health/diagnostics",
    DiagnosticsBody,
    "Diagnostics: every dependency, pool and config detail, secrets redacted",
    failing="a critical dependency is failing",
    responses=_UNAUTHORIZED,
    dependencies=[Depends(require_diagnostics_token)],
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
