"""Can this machine run containers? One bounded check, and one line saying why not.

The engine is asked through testcontainers' own client (docker-py underneath, with the same
``DOCKER_HOST``, docker context and ``~/.testcontainers.properties`` resolution the containers
provider will use), so "reachable" here means reachable for the provider too. The compose
provider also needs the Docker CLI and its compose plugin (pytest-docker runs
``docker compose``). Every request is bounded by ``timeout``, so a black-holed socket costs
seconds, never a hang.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from pytest_tria_deploy.redact import redact

DOCKER_CHECK_TIMEOUT = 3.0
INSTALL_HINT = "pip install 'tria-deploy[containers]'"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_MAX_CAUSE = 300

DockerProvider = Literal["containers", "compose"]
DOCKER_PROVIDERS: tuple[DockerProvider, ...] = ("containers", "compose")


def one_line(text: str) -> str:
    """Redacted, whitespace collapsed to single spaces, at most a few hundred characters."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= _MAX_CAUSE else flat[: _MAX_CAUSE - 3] + "..."


def exception_text(exc: BaseException) -> str:
    """What an exception says: its message, or its type when the message is empty (an
    exception object is always truthy, so ``exc or ...`` would never fall back)."""
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class DockerStatus:
    """What the check found: versions when usable, otherwise the cause (one redacted line)."""

    engine_version: str | None = None
    engine_problem: str | None = None
    compose_version: str | None = None
    compose_problem: str | None = None

    def problem_for(self, provider: DockerProvider) -> str | None:
        """The one-line refusal for ``provider``, or None when it can run."""
        if provider == "containers":
            if self.engine_problem is None:
                return None
            return (
                f"containers target needs a Docker engine: {self.engine_problem}; "
                "use --tria-target=local, or start Docker"
            )
        causes = [c for c in (self.engine_problem, self.compose_problem) if c is not None]
        if not causes:
            return None
        return (
            "compose target needs a Docker engine with the compose plugin: "
            f"{', and '.join(causes)}; use --tria-target=local, or start Docker"
        )


def _engine(timeout: float) -> tuple[str | None, str | None]:
    """(server version, None) or (None, cause)."""
    try:
        from testcontainers.core.docker_client import DockerClient, get_docker_host
    except ImportError:
        return None, f"testcontainers is not installed ({INSTALL_HINT})"
    where = get_docker_host() or DEFAULT_SOCKET
    try:
        client = DockerClient(timeout=timeout)
    except Exception as exc:  # docker-py raises DockerException, ValueError, OSError...
        return None, one_line(f"no engine answers at {where}: {exception_text(exc)}")
    try:
        version = client.client.version().get("Version")
    except Exception as exc:
        return None, one_line(f"the engine did not report its version: {exception_text(exc)}")
    finally:
        client.client.close()
    return str(version or "unknown"), None


def _compose(timeout: float) -> tuple[str | None, str | None]:
    """(compose version, None) or (None, cause)."""
    try:
        import pytest_docker  # noqa: F401 - only its presence is checked here
    except ImportError:
        return None, f"pytest-docker is not installed ({INSTALL_HINT})"
    cli = shutil.which("docker")
    if cli is None:
        return None, "the docker CLI is not on PATH (docker compose runs through it)"
    try:
        done = subprocess.run(
            [cli, "compose", "version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"'docker compose version' did not answer within {timeout:g}s"
    except OSError as exc:
        return None, one_line(f"the docker CLI cannot run: {exception_text(exc)}")
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        detail = f" ({said[0]})" if said else ""
        return None, one_line(f"the docker CLI has no compose plugin{detail}")
    said = done.stdout.strip().splitlines()
    return (said[0].rsplit(" ", 1)[-1] if said else "unknown"), None


def check_docker(*, compose: bool = False, timeout: float = DOCKER_CHECK_TIMEOUT) -> DockerStatus:
    """Ask the engine (and, with ``compose``, the CLI's compose plugin); never raises."""
    engine_version, engine_problem = _engine(timeout)
    if not compose:
        return DockerStatus(engine_version, engine_problem)
    compose_version, compose_problem = _compose(timeout)
    return DockerStatus(engine_version, engine_problem, compose_version, compose_problem)


def docker_problem(provider: DockerProvider, timeout: float = DOCKER_CHECK_TIMEOUT) -> str | None:
    """The one-line reason ``provider`` cannot run on this machine, or None."""
    return check_docker(compose=provider == "compose", timeout=timeout).problem_for(provider)


class DockerUnavailableError(RuntimeError):
    """A containers or compose provider cannot run here; str() is the one-line reason."""
