"""Targets are data: where a deployment lives, how to reach it, its budgets and its protection.

They come from the built-ins below plus ``tria.toml`` (or ``[tool.tria]`` in pyproject.toml).
Secrets are written as ``${ENV_VAR}`` references and resolved only for the targets a run selects.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    model_validator,
)

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.interpolate import MissingVariables, interpolate
from pytest_tria_deploy.stages import suggest

ProviderName = Literal["local", "containers", "compose", "external"]
DependencyName = Literal["database", "redis", "openai", "chroma"]
ALL_DEPENDENCIES: tuple[DependencyName, ...] = ("database", "redis", "openai", "chroma")
# The stages that check one kind of dependency; a target whose ``critical`` list leaves out every
# dependency a stage checks makes that stage non-critical for that target.
DEPENDENCY_STAGES: dict[str, tuple[DependencyName, ...]] = {
    "database": ("database",),
    "redis": ("redis",),
    "external": ("openai", "chroma"),
}
SECRET_FIELDS = ("database_url", "redis_url", "openai_api_key", "diagnostics_token", "secret_key")
# A "${" that starts no complete ${VAR} or ${VAR:-default} reference (an unclosed one, say).
_UNCLOSED_REFERENCE = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})")


def unknown_target(name: str, known: Iterable[str]) -> str:
    """The one wording for a target name that no config defines, with a "did you mean"."""
    names = list(known)
    return f"unknown target '{name}'; known: {', '.join(names)}{suggest(name, names)}"


class TargetError(ValueError):
    """Targets or their configuration are unusable; ``problems`` lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class Budgets(BaseModel):
    """Latency and timing budgets a target must meet; extra numeric budgets are allowed."""

    # An infinite budget would never be exceeded: a typo must not switch a check off.
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    readiness_ms: float = Field(default=1000.0, gt=0)
    liveness_ms: float = Field(default=250.0, gt=0)
    redis_p99_ms: float = Field(default=50.0, gt=0)
    database_p99_ms: float = Field(default=100.0, gt=0)
    database_connect_ms: float = Field(default=1000.0, gt=0)
    openai_ms: float = Field(default=5000.0, gt=0)
    chroma_ms: float = Field(default=1000.0, gt=0)
    startup_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _extras_are_numbers(self) -> Budgets:
        for key, value in (self.model_extra or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"budget {key!r} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"budget {key!r} must be a finite number greater than 0")
        return self

    def get(self, name: str) -> float:
        """A budget by name, including extra ones from tria.toml."""
        value = getattr(self, name)
        return float(value)


class Minimums(BaseModel):
    """What the machine running the gate (and, for remote targets, the service's host) must have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    free_disk_mb: float = Field(default=1024.0, ge=0)
    memory_mb: float = Field(default=512.0, ge=0)
    cpus: int = Field(default=1, ge=1)


class Target(BaseModel):
    """One deployment to verify."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    provider: ProviderName = "external"
    protected: StrictBool = False  # a safety switch: only TOML's true or false, never a string
    description: str = ""
    service_url: str | None = None
    instances: list[str] = Field(default_factory=list)
    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    openai_embedding_model: str = "text-embedding-3-small"
    chroma_url: str | None = None
    chroma_collection: str = "tria_knowledge"
    diagnostics_token: SecretStr | None = None
    secret_key: SecretStr | None = None
    env_file: str | None = None
    critical: list[DependencyName] = Field(default_factory=lambda: list(ALL_DEPENDENCIES))
    budgets: Budgets = Field(default_factory=Budgets)
    minimums: Minimums = Field(default_factory=Minimums)

    @model_validator(mode="after")
    def _endpoints_fit_provider(self) -> Target:
        if self.service_url and self.instances:
            raise ValueError("give service_url or instances, not both")
        if self.provider == "external":
            missing = [
                name
                for name in ("database_url", "redis_url", "openai_api_key", "chroma_url")
                if getattr(self, name) is None
            ]
            if not (self.service_url or self.instances):
                missing.insert(0, "service_url (or instances)")
            if missing:
                raise ValueError(f"provider 'external' needs {', '.join(missing)}")
        return self

    @property
    def instance_urls(self) -> list[str]:
        """The service URLs the target declares; empty when its provider starts the service."""
        return list(self.instances) or ([self.service_url] if self.service_url else [])

    def relaxes(self, stage: str) -> bool:
        """Whether this target declares every dependency ``stage`` checks non-critical."""
        checked = DEPENDENCY_STAGES.get(stage)
        return checked is not None and not set(checked) & set(self.critical)

    def secret_values(self) -> list[str]:
        """Resolved secret values, for the redactor."""
        values = (getattr(self, name) for name in SECRET_FIELDS)
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    def endpoints(self) -> Endpoints:
        """The endpoints an external target declares (call only on a resolved target)."""
        if not (self.database_url and self.redis_url and self.openai_api_key and self.chroma_url):
            raise TargetError([f"target '{self.name}' declares no endpoints of its own"])
        return Endpoints(
            service_urls=self.instance_urls,
            database_url=self.database_url,
            redis_url=self.redis_url,
            openai_base_url=self.openai_base_url,
            openai_api_key=self.openai_api_key,
            openai_model=self.openai_model,
            openai_embedding_model=self.openai_embedding_model,
            chroma_url=self.chroma_url,
            chroma_collection=self.chroma_collection,
            diagnostics_token=self.diagnostics_token,
            secret_key=self.secret_key,
            env_file=self.env_file,
        )

    def resolve(self, env: Mapping[str, str]) -> Target:
        """Substitute ``${VAR}`` references; raises TargetError naming every missing variable."""
        problems: list[str] = []
        values: dict[str, str] = {}
        for where, text in self._templated_fields():
            try:
                values[where] = interpolate(text, env)
            except MissingVariables as exc:
                problems += [
                    f"target '{self.name}': {var} is not set (used by {where}); "
                    f"export {var}, or write ${{{var}:-default}} in the config"
                    for var in exc.names
                ]
            if _UNCLOSED_REFERENCE.search(text):
                problems.append(
                    f"target '{self.name}': {where} has a '${{' that is no reference; "
                    "write ${VAR} or ${VAR:-default}"
                )
        if problems:
            raise TargetError(problems)
        updates: dict[str, Any] = {
            "instances": [values[f"instances[{i}]"] for i in range(len(self.instances))]
        }
        for name, value in values.items():
            if not name.startswith("instances["):
                updates[name] = SecretStr(value) if name in SECRET_FIELDS else value
        return self.model_copy(update=updates)

    def _templated_fields(self) -> list[tuple[str, str]]:
        """(where, raw text) for every string that may hold ``${VAR}`` references."""
        fields: list[tuple[str, str]] = []
        for name, value in self.__dict__.items():
            if isinstance(value, SecretStr):
                fields.append((name, value.get_secret_value()))
            elif isinstance(value, str) and name != "name":
                fields.append((name, value))
        fields += [(f"instances[{i}]", url) for i, url in enumerate(self.instances)]
        return fields


BUILTIN_TARGETS: dict[str, Target] = {
    "local": Target(
        name="local",
        provider="local",
        description="throwaway PostgreSQL, Redis, Chroma, OpenAI stand-in and service",
    ),
    "containers": Target(
        name="containers", provider="containers", description="the same stack on testcontainers"
    ),
    "compose": Target(
        name="compose",
        provider="compose",
        description="deploy/docker-compose.yml through pytest-docker",
    ),
}


class StageTable(BaseModel):
    """``[stages.NAME]`` in the config: a new stage, or a change to a built-in one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: list[str] | None = None
    critical: StrictBool | None = None
    description: str | None = None


@dataclass(frozen=True)
class ConfigFile:
    """What the config file holds; ``problems`` lists every invalid part (the rest still loads)."""

    source: str
    targets: dict[str, Target]
    stages: dict[str, StageTable]
    problems: list[str]


SECTIONS = ("targets", "stages")


def load_config(root: Path, explicit: str | None, cwd: Path) -> ConfigFile:
    """Read tria.toml (or pyproject's ``[tool.tria]``) and validate each target and stage table.

    Only a file that cannot be found or parsed raises; every other problem is collected, so one
    bad target does not hide a bad stage.
    """
    path, table = _read(root, explicit, cwd)
    where = f"{path}: " if path else ""
    problems = [
        f"{where}unknown section [{key}]; known: {', '.join(SECTIONS)}{suggest(key, SECTIONS)}"
        for key in table
        if key not in SECTIONS
    ]
    targets = dict(BUILTIN_TARGETS)
    for name, body in _tables(table, "targets", where, problems).items():
        try:
            targets[name] = Target.model_validate({**body, "name": name})
        except ValidationError as exc:
            lines = _error_lines(exc, Target)
            problems.extend(f"{where}targets.{name}: {line}" for line in lines)
    stages: dict[str, StageTable] = {}
    for name, body in _tables(table, "stages", where, problems).items():
        try:
            stages[name] = StageTable.model_validate(body)
        except ValidationError as exc:
            lines = _error_lines(exc, StageTable)
            problems.extend(f"{where}stages.{name}: {line}" for line in lines)
    return ConfigFile(str(path) if path else "built-in", targets, stages, problems)


def _tables(
    table: dict[str, Any], section: str, where: str, problems: list[str]
) -> dict[str, dict[str, Any]]:
    """``[section.NAME]`` tables; anything that is not a table is a problem."""
    value = table.get(section, {})
    if not isinstance(value, dict):
        problems.append(f"{where}[{section}] must be a table of [{section}.NAME] tables")
        return {}
    found: dict[str, dict[str, Any]] = {}
    for name, body in value.items():
        if isinstance(body, dict):
            found[name] = body
        else:
            problems.append(
                f"{where}{section}.{name} must be a table, got {type(body).__name__}; "
                f"write it as [{section}.{name}] followed by key = value lines"
            )
    return found


def _read(root: Path, explicit: str | None, cwd: Path) -> tuple[Path | None, dict[str, Any]]:
    if explicit:
        candidates = [cwd / explicit, root / explicit]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None and any(p.is_dir() for p in candidates):
            raise TargetError([f"config file {explicit!r} is a directory; name a TOML file"])
        if path is None:
            raise TargetError([f"config file {explicit!r} not found; check --tria-config"])
        return path, _parse(path, path.name == "pyproject.toml")
    if (root / "tria.toml").is_file():
        return root / "tria.toml", _parse(root / "tria.toml", False)
    if (root / "pyproject.toml").is_file():
        table = _parse(root / "pyproject.toml", True)
        if table:
            return root / "pyproject.toml", table
    return None, {}


def _parse(path: Path, pyproject: bool) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TargetError([f"{path} does not parse: {exc}; fix the TOML syntax"]) from None
    except UnicodeDecodeError as exc:
        raise TargetError(
            [f"{path} is not valid UTF-8 (byte {exc.start}); save it as UTF-8"]
        ) from None
    except OSError as exc:
        raise TargetError([f"{path} cannot be read: {exc.strerror}"]) from None
    if pyproject:
        tool = data.get("tool", {})
        tria = tool.get("tria", {}) if isinstance(tool, dict) else {}
        if not isinstance(tria, dict):
            raise TargetError(
                [f"{path}: [tool.tria] must be a table; write [tool.tria.targets.NAME] tables"]
            )
        return dict(tria)
    return data


def _error_lines(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message += _known_keys(model, error["loc"])
        lines.append(f"{where}: {message}" if where else message)
    return lines


def _known_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The keys of the table an unknown key was found in, and the closest one, as a remedy."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        nested = field.annotation if field is not None else None
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            return ""
        model = nested
    known = [name for name in model.model_fields if name != "name"]
    return f"; known keys: {', '.join(known)}{suggest(str(loc[-1]), known)}"
