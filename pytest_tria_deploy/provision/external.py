"""Targets that already run (staging, prod): nothing to start; endpoints come from the target."""

from __future__ import annotations

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.targets import Target


class ExternalProvider:
    """For deployments someone else runs: the plugin must never start or stop them, only look,
    so the endpoints are exactly what the target declares (secrets resolved from the env)."""

    def start(self, target: Target) -> Endpoints:
        return target.endpoints()

    def stop(self) -> None:
        return None

    def describe(self) -> dict[str, str]:
        return {"provider": "external", "starts": "nothing: the target already runs"}
