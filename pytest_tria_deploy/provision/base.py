"""What a provider is: it makes a target's services exist and says where they answer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.docker import DockerUnavailableError
from pytest_tria_deploy.provision.errors import ComponentStartError
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
        always; after ``start()``, one entry per component it started, as ``component_facts``
        renders them (version, address, where the log is)."""
        ...


@dataclass(frozen=True)
class StartedComponent:
    """One part a provider started, as the report shows it: never a credential."""

    name: str
    version: str
    address: str
    log: str
    pid: int | None = None

    def fact(self) -> str:
        pid = f" (pid {self.pid})" if self.pid is not None else ""
        return f"{self.version or 'version unknown'} on {self.address}{pid}; log {self.log}"


def component_facts(components: Iterable[StartedComponent]) -> dict[str, str]:
    """``describe()``'s entries for what a provider started, keyed by component name."""
    return {component.name: redact(component.fact()) for component in components}


class StartFailedElsewhere(RuntimeError):
    """The run's shared stack failed to start in another worker; str() is that worker's cause.

    Raised instead of a second attempt, so every worker reports the same failure at once.
    """


def failure_cause(exc: BaseException) -> str:
    """How a failed start reads in a report: errors that name the component and the fix (or a
    cause recorded by another worker) in their own words, anything else with its type."""
    if isinstance(exc, ComponentStartError | DockerUnavailableError | StartFailedElsewhere):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class ProvisionError(RuntimeError):
    """The provider could not give endpoints: the target cannot be verified (verdict BLOCKED)."""

    def __init__(self, target: str, provider: str, cause: str) -> None:
        self.target = target
        self.provider = provider
        self.cause = redact(cause)
        super().__init__(f"target '{target}': provider '{provider}' failed: {self.cause}")

    def __reduce__(self) -> tuple[object, ...]:
        return (ProvisionError, (self.target, self.provider, self.cause))
