"""A throwaway Chroma server (``chroma run`` from the installed chromadb wheel)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from pytest_tria_deploy.provision.binaries import chroma_command
from pytest_tria_deploy.provision.managed import Launch
from pytest_tria_deploy.provision.readiness import PROBE_TIMEOUT, heartbeat
from pytest_tria_deploy.provision.server import HOST, HttpServer, SpawnHook, start_on_port


class ChromaServer(HttpServer):
    def probe(self, timeout: float = PROBE_TIMEOUT) -> None:
        """The v2 heartbeat answers 200."""
        heartbeat(self.url, timeout)

    def version(self) -> str:
        response = httpx.get(f"{self.url}/api/v2/version", timeout=1.0).raise_for_status()
        return f"Chroma {response.json()}"


def start_chroma(
    workdir: Path,
    port: int | None = None,
    *,
    timeout: float = 30.0,
    on_spawn: SpawnHook | None = None,
) -> ChromaServer:
    """``chroma run`` with its data in the workdir, ready when the heartbeat answers."""
    command = chroma_command()
    env = {**os.environ, "NO_COLOR": "1", "ANONYMIZED_TELEMETRY": "False"}

    def start(chosen: int) -> ChromaServer:
        data = workdir / f"chroma-{chosen}"
        data.mkdir(parents=True, exist_ok=True)
        argv = [*command, "run", "--path", str(data), "--host", HOST, "--port", str(chosen)]
        log_path = workdir / f"chroma-{chosen}.log"
        launch = Launch(name="chroma", argv=argv, log_path=log_path, env=env, cwd=data)
        server = ChromaServer(launch, port=chosen, timeout=timeout, on_spawn=on_spawn)
        server.wait_ready()
        return server

    return start_on_port("chroma", port, start)
