"""Fixtures of the reliability tests: a cell's bench (its own servers, latency proxies).

The servers come from tests/conftest.py (``deps``, ``service_env``, ``fresh_deps``); nothing here
ever faults the session's shared servers: a cell breaks servers of its own, or puts a proxy of
its own in front of a shared one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

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
