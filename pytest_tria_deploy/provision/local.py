"""The ``local`` provider: a thin adapter over LocalStack (throwaway processes on free ports)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision.facts import component_facts
from pytest_tria_deploy.targets import Target

if TYPE_CHECKING:
    from pytest_tria_deploy.provision.stack import LocalStack


class LocalProvider:
    """Starts PostgreSQL, Redis, Chroma, the OpenAI stand-in and the service, stops them after."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._workdir = workdir
        self._owned_dir: Path | None = None
        self._stack: LocalStack | None = None
        self._ready_in: float | None = None

    def start(self, target: Target) -> Endpoints:
        from pytest_tria_deploy.provision.stack import LocalStack

        workdir = self._workdir
        if workdir is None:
            workdir = self._owned_dir = Path(tempfile.mkdtemp(prefix=f"tria-{target.name}-"))
        self._stack = LocalStack(workdir)
        started = time.perf_counter()
        endpoints = self._stack.start()
        self._ready_in = time.perf_counter() - started
        return endpoints

    def stop(self) -> None:
        stack, self._stack, self._ready_in = self._stack, None, None
        try:
            if stack is not None:
                stack.stop()
        finally:
            if self._owned_dir is not None:
                shutil.rmtree(self._owned_dir, ignore_errors=True)
                self._owned_dir = None

    def describe(self) -> dict[str, str]:
        facts = {
            "provider": "local",
            "starts": "PostgreSQL, Redis, Chroma, OpenAI stand-in and the service on 127.0.0.1",
        }
        if self._stack is not None and self._ready_in is not None:
            facts["startup"] = f"every component ready in {self._ready_in:.2f}s"
            facts.update(component_facts(self._stack.components()))
        return facts
