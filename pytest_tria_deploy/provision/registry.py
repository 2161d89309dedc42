"""Which provider serves a target; providers without an implementation yet fail clearly."""

from __future__ import annotations

from pathlib import Path

from pytest_tria_deploy.provision.base import Provider
from pytest_tria_deploy.provision.external import ExternalProvider
from pytest_tria_deploy.provision.local import LocalProvider
from pytest_tria_deploy.targets import Target

AVAILABLE = ("external", "local")


def provider_for(target: Target, workdir: Path | None = None) -> Provider:
    """A fresh, not yet started provider for ``target``."""
    if target.provider == "external":
        return ExternalProvider()
    if target.provider == "local":
        return LocalProvider(workdir)
    raise LookupError(
        f"target '{target.name}' uses provider '{target.provider}', which this version of "
        f"tria-deploy does not provide yet; available: {', '.join(AVAILABLE)}"
    )
