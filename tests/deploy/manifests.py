"""Reading the deployment manifests the way Docker and Compose do, for checks against the code."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
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


# --- Kubernetes (deploy/k8s) ------------------------------------------------------------------

K8S = DEPLOY / "k8s"
KUSTOMIZATION = "kustomization.yaml"
# Shipped to copy from, never applied: every value is a placeholder.
K8S_EXAMPLES = {K8S / "secret.example.yaml"}
WRITE_AUDIT = Path(__file__).resolve().parent / "write_audit"


def k8s_files() -> list[Path]:
    """Every YAML file under deploy/k8s, kustomizations included."""
    return sorted(K8S.rglob("*.yaml"))


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """The Kubernetes objects of deploy/k8s (not the kustomizations), keyed by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in k8s_files():
        if path.name == KUSTOMIZATION:
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            key = (document["kind"], document["metadata"]["name"])
            assert key not in found, f"{key} is defined twice"
            found[key] = document
    return found


def kustomization(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((directory / KUSTOMIZATION).read_text(encoding="utf-8"))
    return data


def k8s_schema_problems(document: Mapping[str, Any]) -> list[str]:
    """What the Kubernetes API would reject in ``document``'s shape (unknown or misspelt fields,
    wrong types, missing required fields), checked offline against the models of the official
    ``kubernetes`` client (pydantic, ``extra="forbid"``, strict strings)."""
    from kubernetes.client import models
    from pydantic import ValidationError

    version = str(document["apiVersion"]).rsplit("/", 1)[-1]
    model = getattr(models, f"{version.capitalize()}{document['kind']}", None)
    if model is None:
        return [f"no Kubernetes model for {document['apiVersion']} {document['kind']}"]
    try:
        model.model_validate(document)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
    return []


def serves(path: str, method: str = "GET") -> bool:
    """Whether the service's app has a route for ``method path`` (built, not started)."""
    from starlette.routing import Match
    from tria_service.app import create_app

    scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] is Match.FULL for route in create_app().router.routes)


def pod_environment(
    container: Mapping[str, Any],
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """What the kubelet puts in a container's environment: ``envFrom`` sources first, then
    ``env`` entries (which win); a missing key that is not ``optional`` keeps the pod from
    starting, so it raises here."""
    whole = {"configMapRef": config_maps, "secretRef": secrets}
    by_key = {"configMapKeyRef": config_maps, "secretKeyRef": secrets}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ((kind, ref),) = source.items()
        env.update(whole[kind][ref["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ((kind, ref),) = entry["valueFrom"].items()
        data = by_key[kind].get(ref["name"], {})
        if ref["key"] in data:
            env[entry["name"]] = data[ref["key"]]
        elif not ref.get("optional", False):
            raise KeyError(f"{entry['name']}: {kind} {ref['name']} has no key {ref['key']}")
    return env


_TOML_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<default>:-[^}]*)?\}")


def target_references(name: str) -> tuple[set[str], set[str]]:
    """The variables ``[targets.NAME]`` of the repository's tria.toml reads: (without a
    default, with one)."""
    table = tomllib.loads((REPO / "tria.toml").read_text(encoding="utf-8"))["targets"][name]
    required: set[str] = set()
    optional: set[str] = set()
    for match in _TOML_REFERENCE.finditer(json.dumps(table)):
        (optional if match["default"] else required).add(match["name"])
    return required, optional


# --- commands the manifests run ---------------------------------------------------------------


def cli_options(command: str) -> set[str]:
    """The options ``tria-deploy COMMAND`` accepts, read from the CLI itself (the click model
    typer builds; typer vendors its own click, so it is read by attribute)."""
    import typer.core
    import typer.main

    from pytest_tria_deploy.cli import app

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    options = {"--help"}
    for param in group.commands[command].params:
        if param.param_type_name == "option":
            options |= {*param.opts, *param.secondary_opts}
    return options


def pytest_options(rootdir: Path = REPO) -> set[str]:
    """The options ``pytest --help`` lists when run at ``rootdir`` (plugins and conftests
    loaded): the first column of each option line, e.g. ``-n numprocesses, --numprocesses=...``."""
    import subprocess
    import sys

    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        cwd=rootdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    options: set[str] = set()
    for line in listed.splitlines():
        if not line.startswith("  -") or line.startswith("   "):
            continue
        column = re.split(r"\s{2,}", line.strip())[0]
        for spelling in column.split(", "):
            options.add(re.split(r"[ =]", spelling, maxsplit=1)[0])
    return options


def option_words(words: list[str]) -> list[str]:
    """The option names among command-line ``words`` (``--x=1`` gives ``--x``); ``-abc`` short
    clusters are not split."""
    return [w.split("=", 1)[0] for w in words if w.startswith("-") and w != "-"]


SHELL_SEPARATORS = (";", "&&", "||", "|")


def shell_commands(line: str) -> list[list[str]]:
    """The simple commands of a ``sh -c`` line, in order, split at ``;``, ``&&``, ``||`` and
    ``|`` with POSIX quoting (enough for the manifests' one-liners: no subshells, no here-docs)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in SHELL_SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]
