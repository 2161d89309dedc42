"""Fixtures of the reliability tests: a cell's bench (its own servers, latency proxies), the gate.

The servers come from tests/conftest.py (``deps``, ``service_env``, ``fresh_deps``); nothing here
ever faults the session's shared servers: a cell breaks servers of its own, or puts a proxy of
its own in front of a shared one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_tria_deploy.provision.processes import ServiceServer
from tests.reliability.faults_gate import Gate
from tests.reliability.faults_inject import Bench
from tests.reliability.faults_proxy import LatencyProxy

if TYPE_CHECKING:
    from tests.conftest import FreshDeps


@pytest.fixture
def latency_proxy() -> Iterator[Callable[[int], LatencyProxy]]:
    """Factory: ``latency_proxy(port)`` is a started proxy to 127.0.0.1:port, stopped after."""
    started: list[LatencyProxy] = []

    def start(upstream_port: int) -> LatencyProxy:
        proxy = LatencyProxy(upstream_port).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def fault_bench(
    tmp_path: Path,
    service_env: Mapping[str, str],
    fresh_deps: FreshDeps,
    latency_proxy: Callable[[int], LatencyProxy],
) -> Bench:
    """What a fault-matrix cell may use; its own servers are stopped after the test."""
    return Bench(tmp_path, service_env, fresh_deps, latency_proxy)


@pytest.fixture
def gate(pytester: pytest.Pytester, running_service: ServiceServer) -> Gate:
    """Runs the shipped suites against a cell. The session's service has run once on the shared
    servers, so they hold what a deployment leaves there (the schema migrated, the knowledge
    ingested) and the stages that check them can pass."""
    return Gate(pytester)
