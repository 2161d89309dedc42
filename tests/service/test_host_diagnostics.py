"""The diagnostics ``host`` section over real HTTP: the figures a remote gate's preflight reads
match what the operating system says about the service's machine and process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil
from tria_service.api.health import HostDiagnostics
from tria_service.app import create_app
from tria_service.production.health_monitor import HealthMonitor
from tria_service.production.lifecycle_manager import LifecycleManager

from pytest_tria_deploy.provision.processes import ServiceServer, start_service
from tests.service.helpers import NO_DRAIN_DELAY, bearer

MIB = 1024 * 1024
DIAGNOSTICS = "/api/v1/health/diagnostics"


def _host(server: ServiceServer, env: Mapping[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{server.url}{DIAGNOSTICS}", headers=bearer(env), timeout=30)
    assert response.status_code == 200, response.text
    host: dict[str, Any] = response.json()["details"]["host"]
    return host


def test_diagnostics_report_the_service_hosts_resources(
    running_service: ServiceServer, service_env: Mapping[str, str]
) -> None:
    process = psutil.Process(running_service.process.pid)
    rss_before = process.memory_info().rss / MIB
    load_before = os.getloadavg()[0]
    host = _host(running_service, service_env)
    rss_after = process.memory_info().rss / MIB
    load_after = os.getloadavg()[0]
    disk_free = psutil.disk_usage(process.cwd()).free / MIB
    memory = psutil.virtual_memory()

    HostDiagnostics.model_validate(host)
    assert host["errors"] == {}
    assert host["cpus"] == psutil.cpu_count()
    assert host["memory_total_mb"] == round(memory.total / MIB, 1)
    assert 0 < host["memory_available_mb"] <= host["memory_total_mb"]
    assert host["disk_path"] == process.cwd()
    # other processes write to the disk meanwhile: the same filesystem within 1 GiB
    assert abs(host["disk_free_mb"] - disk_free) < 1024
    assert (
        min(load_before, load_after) - 0.5 <= host["load_1m"] <= max(load_before, load_after) + 0.5
    )
    assert (
        min(rss_before, rss_after) * 0.8
        <= host["process_rss_mb"]
        <= max(rss_before, rss_after) * 1.2
    )


def test_a_figure_that_cannot_be_read_is_null_with_its_reason_and_the_rest_stay(
    tmp_path: Path, service_env: Mapping[str, str]
) -> None:
    server = start_service(tmp_path, {**service_env, **NO_DRAIN_DELAY})
    try:
        shutil.rmtree(psutil.Process(server.process.pid).cwd())  # its working directory
        host = _host(server, service_env)
    finally:
        server.stop()

    assert host["disk_path"] is None
    assert host["disk_free_mb"] is None
    assert set(host["errors"]) == {"disk_path", "disk_free_mb"}
    assert all(error.startswith("FileNotFoundError") for error in host["errors"].values())
    assert host["cpus"] == psutil.cpu_count()
    assert host["process_rss_mb"] > 0


def test_openapi_documents_the_host_section() -> None:
    schema = create_app(monitor=HealthMonitor(), lifecycle=LifecycleManager()).openapi()
    host = schema["components"]["schemas"]["HostDiagnostics"]

    assert set(host["required"]) == {
        "cpus",
        "memory_total_mb",
        "memory_available_mb",
        "disk_path",
        "disk_free_mb",
        "load_1m",
        "process_rss_mb",
        "errors",
    }
    details = schema["components"]["schemas"]["DiagnosticsDetails"]
    assert details["properties"]["host"] == {"$ref": "#/components/schemas/HostDiagnostics"}
