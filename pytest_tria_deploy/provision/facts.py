"""What a provider started, as the report shows it: the facts ``describe()`` lists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pytest_tria_deploy.redact import redact


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
