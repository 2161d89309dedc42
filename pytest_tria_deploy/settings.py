"""Everything a run decides before collection: targets, stage graph and selection, gate mode.

Built from options, ini keys (``tria_*``) and the config file; every bad value becomes one
``pytest.UsageError`` listing all problems with a remedy, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from pytest_tria_deploy.activation import read_ini
from pytest_tria_deploy.provision.docker import DOCKER_PROVIDERS, docker_problem
from pytest_tria_deploy.redact import register_secrets
from pytest_tria_deploy.stages import BUILTIN_STAGES, Stage, StageError, StageGraph, suggest
from pytest_tria_deploy.targets import (
    StageTable,
    Target,
    TargetError,
    load_config,
    unknown_target,
)

DEFAULT_TARGET = "local"
DEFAULT_REPORT_DIR = "reports"


class GateMode(StrEnum):
    """How much the verdict may stop a rollout.

    strict: for a deploy gate that must not let a degraded target through, so a warning counts
    as a failure; normal: failures block, warnings only report; off: for exploring a broken
    target, every stage runs (nothing is blocked) but the verdict and exit code still tell.
    """

    STRICT = "strict"
    NORMAL = "normal"
    OFF = "off"


@dataclass(frozen=True)
class TriaSettings:
    """The resolved run configuration, stored on the pytest config."""

    targets: tuple[Target, ...]
    graph: StageGraph
    selected_stages: tuple[str, ...]
    no_deps: bool
    gate: GateMode
    report_dir: Path
    allow_destructive: bool
    config_source: str
    no_default_reports: bool = False

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.name == name)

    def is_critical(self, target: str, stage: str) -> bool:
        """Critical unless the stage is declared non-critical or the target relaxes it."""
        return self.graph[stage].critical and not self.target(target).relaxes(stage)

    @property
    def run_stages(self) -> set[str]:
        """Stages whose tests run: everything, or the selection (plus its dependencies)."""
        if not self.selected_stages:
            return set(self.graph.names)
        if self.no_deps:
            return set(self.selected_stages)
        return self.graph.closure(self.selected_stages)


@dataclass(frozen=True)
class _Value:
    """A setting and where it came from, so a problem names the option or the ini key."""

    value: Any
    source: str
    from_cli: bool


def _setting(config: pytest.Config, name: str) -> _Value:
    given = config.getoption(name)
    if given is not None:
        return _Value(given, "--" + name.replace("_", "-"), True)
    return _Value(read_ini(config, name), f"ini key {name}", False)


def format_problems(problems: Sequence[str]) -> str:
    """One usage-error text: a single line, or a count and one indented line per problem."""
    if len(problems) == 1:
        return f"tria-deploy: {problems[0]}"
    return f"tria-deploy: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def load_settings(config: pytest.Config, hook_stages: Iterable[Stage]) -> TriaSettings:
    """Read and validate everything; raises pytest.UsageError listing every problem."""
    root = config.rootpath
    cwd = config.invocation_params.dir
    explicit = _setting(config, "tria_config").value
    try:
        loaded = load_config(root, str(explicit) if explicit else None, cwd)
    except TargetError as exc:
        raise pytest.UsageError(format_problems(exc.problems)) from None
    problems = list(loaded.problems)

    graph = None
    try:
        graph = StageGraph.build(_merge_stages(loaded.stages, hook_stages))
    except StageError as exc:
        problems += [f"{loaded.source}: {p}" for p in exc.problems]

    known = loaded.targets
    names = list(dict.fromkeys(str(n) for n in _setting(config, "tria_target").value or []))
    names = names or [DEFAULT_TARGET]
    for name in names:
        if name not in known:
            problems.append(unknown_target(name, known))
    stage_setting = _setting(config, "tria_stage")
    selected = list(dict.fromkeys(str(s) for s in stage_setting.value or []))
    if graph is not None:
        problems += graph.unknown(selected, stage_setting.source)
    gate_setting = _setting(config, "tria_gate")
    gate_text = str(gate_setting.value or GateMode.NORMAL.value)
    modes = [m.value for m in GateMode]
    if gate_text not in modes:
        problems.append(
            f"unknown gate mode '{gate_text}' in {gate_setting.source}; use one of: "
            f"{', '.join(modes)}{suggest(gate_text, modes)}"
        )
    report = _setting(config, "tria_report_dir")
    report_dir = (cwd if report.from_cli else root) / str(report.value or DEFAULT_REPORT_DIR)
    file_in_the_way = _file_in_the_way(report_dir)
    if file_in_the_way is not None:
        where = (
            "is a file" if file_in_the_way == report_dir else f"is under the file {file_in_the_way}"
        )
        problems.append(
            f"{report.source} {report.value!r} {where}, not a directory; give a directory"
        )
    targets = [known[n] for n in names if n in known]
    resolved = _resolve(targets, problems)
    if not hasattr(config, "workerinput"):  # xdist workers start after the controller checked
        problems += _docker_problems(targets)
    if problems or graph is None:
        raise pytest.UsageError(format_problems(problems))
    for target in resolved:
        register_secrets(target.secret_values())
    return TriaSettings(
        targets=resolved,
        graph=graph,
        selected_stages=tuple(selected),
        no_deps=bool(_setting(config, "tria_no_deps").value),
        gate=GateMode(gate_text),
        report_dir=report_dir,
        allow_destructive=bool(_setting(config, "tria_allow_destructive").value),
        config_source=loaded.source,
        no_default_reports=bool(_setting(config, "tria_no_default_reports").value),
    )


def _file_in_the_way(path: Path) -> Path | None:
    """The path itself or the nearest existing ancestor, when that is not a directory."""
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def _resolve(targets: Sequence[Target], problems: list[str]) -> tuple[Target, ...]:
    resolved: list[Target] = []
    for target in targets:
        try:
            resolved.append(target.resolve(os.environ))
        except TargetError as exc:
            problems += exc.problems
    return tuple(resolved)


def _docker_problems(targets: Sequence[Target]) -> list[str]:
    """A containers or compose target on a machine without a usable Docker engine fails the run
    at once, in one line, instead of every test erroring later when the provider starts."""
    wanted = {target.provider for target in targets}
    found = (docker_problem(provider) for provider in DOCKER_PROVIDERS if provider in wanted)
    return [problem for problem in found if problem is not None]


def hook_stages(results: Iterable[object]) -> list[Stage]:
    """The stages every ``pytest_tria_stages`` implementation returned, checked for type."""
    stages: list[Stage] = []
    for result in results:
        if result is None:
            continue
        items = list(result) if isinstance(result, list | tuple) else [result]
        good = [item for item in items if isinstance(item, Stage)]
        if len(good) != len(items) or not isinstance(result, list | tuple):
            raise pytest.UsageError(
                f"tria-deploy: a pytest_tria_stages hook returned {_short(result)}; it must "
                "return a list of pytest_tria_deploy.Stage, e.g. "
                "[Stage('perf', after=('smoke',), critical=False)]"
            )
        stages += good
    return stages


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _merge_stages(tables: dict[str, StageTable], hook_stages: Iterable[Stage]) -> list[Stage]:
    """Built-ins, then ``[stages.NAME]`` tables (new stages or tweaks), then hook stages."""
    merged = {s.name: s for s in BUILTIN_STAGES}
    for name, table in tables.items():
        current = merged.get(name, Stage(name))
        merged[name] = replace(
            current,
            after=tuple(table.after) if table.after is not None else current.after,
            critical=table.critical if table.critical is not None else current.critical,
            description=table.description or current.description,
        )
    return [*merged.values(), *hook_stages]
