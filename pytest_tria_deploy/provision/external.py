"""Targets that already run (staging, prod): nothing to start; endpoints come from the target."""

from __future__ import annotations

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.targets import Target


class ExternalProvider:
    """For deployments someone else runs: the plugin must never start or stop them, only look,
    so the endpoints are exactly what the target declares (secrets resolved from the env)."""

    def __init__(self) -> None:
        self._service_urls: list[str] = []

    def start(self, target: Target) -> Endpoints:
        endpoints = target.endpoints()
        self._service_urls = list(endpoints.service_urls)
        return endpoints

    def stop(self) -> None:
        self._service_urls = []

    def describe(self) -> dict[str, str]:
        """Once started, which service was verified (a URL's credentials masked)."""
        facts = {"provider": "external", "starts": "nothing: the target already runs"}
        if self._service_urls:
            facts["service"] = redact(", ".join(self._service_urls))
        return facts
