"""Which provider serves a target. Providers import their heavy parts (docker, testcontainers,
pytest-docker) only when they start, so naming one here costs nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pytest_tria_deploy.provision.base import Provider
from pytest_tria_deploy.provision.compose import ComposeProvider
from pytest_tria_deploy.provision.containers import ContainersProvider
from pytest_tria_deploy.provision.external import ExternalProvider
from pytest_tria_deploy.provision.local import LocalProvider
from pytest_tria_deploy.targets import Target

_FACTORIES: dict[str, Callable[[Path | None], Provider]] = {
    "external": lambda _workdir: ExternalProvider(),
    "local": LocalProvider,
    "containers": lambda _workdir: ContainersProvider(),
    "compose": lambda _workdir: ComposeProvider(),
}
AVAILABLE = tuple(_FACTORIES)


def provider_for(target: Target, workdir: Path | None = None) -> Provider:
    """A fresh, not yet started provider for ``target`` (``workdir`` is for the local one)."""
    factory = _FACTORIES.get(target.provider)
    if factory is None:
        raise LookupError(
            f"target '{target.name}' uses provider '{target.provider}', which this version of "
            f"tria-deploy does not provide; available: {', '.join(AVAILABLE)}"
        )
    return factory(workdir)
