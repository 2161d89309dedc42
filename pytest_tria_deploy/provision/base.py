"""What a provider is: it makes a target's services exist and says where they answer."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.targets import Target


@runtime_checkable
class Provider(Protocol):
    """Start a target's services (or find them), stop what was started, describe itself."""

    def start(self, target: Target) -> Endpoints:
        """Bring the target up (if needed) and return where its parts answer."""
        ...

    def stop(self) -> None:
        """Stop whatever start() started; safe to call when nothing was started."""
        ...

    def describe(self) -> dict[str, str]:
        """Facts for the report, never secrets: ``provider`` and ``starts`` (what it would start)
        always; after ``start()``, one entry per component it started, as ``facts.component_facts``
        renders them (version, address, where the log is)."""
        ...


class ProvisionError(RuntimeError):
    """The provider could not give endpoints: the target cannot be verified (verdict BLOCKED)."""

    def __init__(self, target: str, provider: str, cause: str) -> None:
        self.target = target
        self.provider = provider
        self.cause = redact(cause)
        super().__init__(f"target '{target}': provider '{provider}' failed: {self.cause}")

    def __reduce__(self) -> tuple[object, ...]:
        return (ProvisionError, (self.target, self.provider, self.cause))
