"""Per-test dependencies: a test's own servers for the parts it breaks, shared ones for the rest."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_tria_deploy.provision.stack import (
    COMPONENTS,
    Component,
    DependencyEndpoints,
    DependencyServers,
    start_dependencies,
)


class FreshDeps:
    """Starts a test's own dependencies; ``stop_all()`` stops every one it started."""

    def __init__(self, workdir: Path, shared: Callable[[], DependencyEndpoints]) -> None:
        self._workdir = workdir
        self._shared = shared  # called only when some component is borrowed
        self._started: list[DependencyServers] = []

    def __call__(
        self, *components: Component, openai_args: Sequence[str] = ()
    ) -> DependencyEndpoints:
        """Own servers for ``components`` (all four when none is named), shared ones for the rest.

        ``openai_args`` are extra stand-in arguments, e.g. ``("--fault", "500")``. The result's
        ``.servers.<name>`` (postgres, redis, chroma, openai) is yours: ``stop()``, ``kill()``,
        ``restart()`` (same port and credentials), ``process.pause()``/``resume()``.
        """
        wanted = components or COMPONENTS
        servers = start_dependencies(
            self._workdir / f"deps-{len(self._started)}",
            wanted,
            openai_api_key=f"sk-tria-test-{secrets.token_hex(12)}",
            redis_password=secrets.token_hex(12),
            openai_args=openai_args,
        )
        self._started.append(servers)
        if set(wanted) >= set(COMPONENTS):
            return DependencyEndpoints.of(servers)
        return self._shared().with_servers(servers)

    def stop_all(self) -> None:
        for servers in self._started:
            servers.stop()
