"""Reading the deployment manifests the way Docker and Compose do, for checks against the code."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tria_service.__main__ import ServerSettings
from tria_service.config import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.docker.example"
# Read by the images' own entrypoints, not by the service.
IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "REDIS_PASSWORD"}


def service_variables() -> set[str]:
    """Every environment variable the service reads (its two settings models and the env file)."""
    fields = [*Settings.model_fields, *ServerSettings.model_fields]
    return {name.upper() for name in fields} | {"TRIA_ENV_FILE"}


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


# ${VAR}, ${VAR-default}, ${VAR:-default}, ${VAR?error}, ${VAR:?error}; $${...} is a literal.
_REFERENCE = re.compile(
    r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of ``text`` from ``env`` (the --env-file and the shell)."""

    def resolve(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        value = env.get(name)
        unset = value is None or (op.startswith(":") and value == "")
        if unset and op.endswith("-"):
            return arg
        if unset and op.endswith("?"):
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        return value or ""

    return _REFERENCE.sub(resolve, text)


def container_environment(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """What compose gives a service's container: each ``environment`` entry interpolated from
    ``env``; an entry with no value takes ``env``'s, or is left out when ``env`` has none."""
    given: dict[str, str] = {}
    for name, value in (service.get("environment") or {}).items():
        if value is None:
            if name in env:
                given[name] = env[name]
        else:
            given[name] = interpolate(str(value), env)
    return given


def rendered(service: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """A service's whole definition as its container gets it: command, healthcheck, environment."""
    resolved = {**service, "environment": container_environment(service, env)}
    return interpolate(json.dumps(resolved), env)


def read_env_file(path: Path) -> dict[str, str]:
    """``VAR=value`` lines; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM this instruction belongs to
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions: list[Instruction] = []
    stage = -1
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), " ".join(args.split())))
    return instructions


def copy_sources(instructions: list[Instruction]) -> list[str]:
    """Build-context paths the COPY instructions take (not ``--from`` copies between stages)."""
    sources: list[str] = []
    for instruction in instructions:
        if instruction.keyword != "COPY" or "--from=" in instruction.args:
            continue
        words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
        sources += words[:-1]
    return sources


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins;
    a rule matching a directory covers everything under it)."""
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in rules:
        include = rule.startswith("!")
        pattern = rule.removeprefix("!")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not include
    return ignored
