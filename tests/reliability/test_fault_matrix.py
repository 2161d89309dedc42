"""The fault matrix: every dependency × every fault against a real service and the real gate.

One cell per test, each on a service process of its own (``faults_inject.faulted``); inside the
same fault, ``faults_service.SERVICE_CHECKS`` asserts what the service does and
``faults_gate.GATE_CHECKS`` what the shipped suites report. What each check measured is recorded
as a JUnit property.

Where neither column changes what the other sees, they run at once (the service column in a
thread, the gate in-process as before): both mostly wait for a timeout or a refresh, so a cell
costs the longer of the two instead of their sum.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tria_service.production.diagnostics import COMPONENT_CHECK_TIMEOUT_SECONDS

from pytest_tria_deploy.provision.processes import start_service
from tests.reliability.faults_gate import GATE_CHECKS, Gate
from tests.reliability.faults_inject import Bench, faulted, run_time_env
from tests.reliability.faults_matrix import Cell, Fault, matrix_params
from tests.reliability.faults_service import DIAGNOSTICS, SERVICE_CHECKS
from tests.service.helpers import bearer

# The gate column must wait for the service column: comes-back's health stage needs readiness
# back, which the service column waits for; slow's gate changes the latency the service column
# measures. In the other faults the gate talks to the broken dependency (or to a service that
# never started) and the service column only reads the service.
SEQUENTIAL = {Fault.COMES_BACK, Fault.SLOW}


@pytest.mark.parametrize("cell", matrix_params())
def test_fault_matrix(
    cell: Cell, fault_bench: Bench, gate: Gate, record_property: Callable[[str, object], None]
) -> None:
    with faulted(cell, fault_bench) as state:
        if cell.fault in SEQUENTIAL:
            measured = SERVICE_CHECKS[cell.fault](state)
            measured |= GATE_CHECKS[cell.fault](state, gate)
        else:
            with ThreadPoolExecutor(1, thread_name_prefix="service-column") as pool:
                service_column = pool.submit(SERVICE_CHECKS[cell.fault], state)
                measured = GATE_CHECKS[cell.fault](state, gate)
                measured |= service_column.result()
    for name, value in measured.items():
        record_property(name, round(value, 3))


def test_diagnostics_waits_for_a_hung_dependency_once(fault_bench: Bench) -> None:
    """Found by the chroma-hangs cell: diagnostics probed first and then ran the component
    sections (the knowledge section asks Chroma too), so a hung Chroma cost its timeout plus the
    component timeout. They now run together: one wait, the longer of the two.

    With the probe's timeout equal to the component timeout (5 s), the fixed order takes 5 s
    and the old one 10 s: the bound sits halfway, 2.5 s from either."""
    own = fault_bench.fresh_deps("chroma")
    chroma = own.servers.chroma
    assert chroma is not None
    timeout = COMPONENT_CHECK_TIMEOUT_SECONDS
    env = run_time_env(
        fault_bench.service_env,
        own.env(),
        # no refresh in the background: diagnostics starts the Chroma probe itself
        {"TRIA_HEALTH_REFRESH_INTERVAL": "60", "TRIA_TIMEOUT_CHROMA": str(timeout)},
    )
    service = start_service(fault_bench.workdir, env)
    try:
        chroma.process.pause()
        try:
            started = time.monotonic()
            response = httpx.get(f"{service.url}{DIAGNOSTICS}", headers=bearer(env), timeout=30)
            took = time.monotonic() - started
        finally:
            chroma.process.resume()
    finally:
        service.stop()

    body = response.json()
    assert body["checks"]["chroma:responseTime"][0]["output"] == f"timed out after {timeout}s"
    assert body["details"]["components"]["knowledge"]["status"] == "fail"
    assert timeout <= took < timeout + COMPONENT_CHECK_TIMEOUT_SECONDS / 2, took
