"""Prometheus metrics for dependency health, on a registry owned by one app.

A registry per app (not prometheus-client's global one) lets several apps live in one process,
as tests and benchmarks do, without "duplicated timeseries" errors.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The service's metric families; the health monitor records into them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.dependency_up = Gauge(
            "tria_dependency_up",
            "1 if the dependency's last probe passed (healthy or degraded), else 0.",
            ["dependency"],
            registry=self.registry,
        )
        self.probe_duration = Histogram(
            "tria_probe_duration_seconds",
            "Wall time of one dependency probe, timeouts included.",
            ["dependency"],
            buckets=PROBE_BUCKETS,
            registry=self.registry,
        )
        self.probes = Counter(
            "tria_probes",
            "Dependency probes actually run (shared single-flight probes count once).",
            ["dependency"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "tria_ready",
            "1 if the readiness check passes, else 0.",
            registry=self.registry,
        )
        self.shutting_down = Gauge(
            "tria_shutting_down",
            "1 once shutdown has begun.",
            registry=self.registry,
        )

    def record_result(self, dependency: str, seconds: float, up: bool) -> None:
        """A probe result, the monitor's own or one of the startup checks it was seeded with."""
        self.probe_duration.labels(dependency=dependency).observe(seconds)
        self.dependency_up.labels(dependency=dependency).set(1 if up else 0)
        self.probes.labels(dependency=dependency)  # the series exists (at 0) from the start

    def count_probe(self, dependency: str) -> None:
        """A probe the monitor ran itself."""
        self.probes.labels(dependency=dependency).inc()

    def record_readiness(self, ready: bool, shutting_down: bool) -> None:
        self.ready.set(1 if ready else 0)
        self.shutting_down.set(1 if shutting_down else 0)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for (Prometheus text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
