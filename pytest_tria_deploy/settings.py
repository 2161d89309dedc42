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

import pytest

from pytest_tria_deploy.redact import register_secrets
from pytest_tria_deploy.stages import BUILTIN_STAGES, Stage, StageError, StageGraph, suggest
from pytest_tria_deploy.targets import StageTable, Target, TargetError, load_config

DEFAULT_TARGET = "local"
DEFAULT_REPORT_DIR = "reports"


class GateMode(StrEnum):
    """strict: a warning is a failure; normal: the default; off: report without blocking."""

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

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.name == name)

    @property
    def run_stages(self) -> set[str]:
        """Stages whose tests run: everything, or the selection (plus its dependencies)."""
        if not self.selected_stages:
            return set(self.graph.names)
        if self.no_deps:
            return set(self.selected_stages)
        return self.graph.closure(self.selected_stages)


def _values(config: pytest.Config, option: str, ini: str) -> list[str]:
    given = config.getoption(option)
    if given:
        return [str(v) for v in given]
    return [str(v) for v in config.getini(ini)]


def _flag(config: pytest.Config, option: str, ini: str) -> bool:
    given = config.getoption(option)
    return bool(given) if given is not None else bool(config.getini(ini))


def _text(config: pytest.Config, option: str, ini: str) -> tuple[str | None, bool]:
    """The value and whether it came from the command line (paths resolve differently)."""
    given = config.getoption(option)
    if given is not None:
        return str(given), True
    value = config.getini(ini)
    return (str(value) if value else None), False


def load_settings(config: pytest.Config, hook_stages: Iterable[Stage]) -> TriaSettings:
    """Read and validate everything; raises pytest.UsageError listing every problem."""
    problems: list[str] = []
    root = config.rootpath
    cwd = config.invocation_params.dir
    explicit, _ = _text(config, "tria_config", "tria_config")
    try:
        data, known = load_config(root, explicit, cwd)
    except TargetError as exc:
        raise pytest.UsageError(_format(exc.problems)) from None

    graph = None
    try:
        graph = StageGraph.build(_merge_stages(data.stages, hook_stages))
    except StageError as exc:
        problems += [f"{data.source}: {p}" for p in exc.problems]

    names = _values(config, "tria_target", "tria_target") or [DEFAULT_TARGET]
    names = list(dict.fromkeys(names))
    for name in names:
        if name not in known:
            problems.append(
                f"unknown target '{name}'; known: {', '.join(known)}{suggest(name, known)}"
            )
    selected = list(dict.fromkeys(_values(config, "tria_stage", "tria_stage")))
    if graph is not None:
        problems += graph.unknown(selected, "--tria-stage")
    gate_text, _ = _text(config, "tria_gate", "tria_gate")
    gate_text = gate_text or GateMode.NORMAL.value
    modes = [m.value for m in GateMode]
    if gate_text not in modes:
        problems.append(
            f"unknown gate mode '{gate_text}' in --tria-gate; use one of: {', '.join(modes)}"
            + suggest(gate_text, modes)
        )
    report_text, from_cli = _text(config, "tria_report_dir", "tria_report_dir")
    report_dir = (cwd if from_cli else root) / (report_text or DEFAULT_REPORT_DIR)
    if report_dir.exists() and not report_dir.is_dir():
        problems.append(
            f"--tria-report-dir {report_text!r} is a file, not a directory; give a directory"
        )
    if problems or graph is None:
        raise pytest.UsageError(_format(problems))

    targets = _resolve([known[n] for n in names])
    return TriaSettings(
        targets=targets,
        graph=graph,
        selected_stages=tuple(selected),
        no_deps=_flag(config, "tria_no_deps", "tria_no_deps"),
        gate=GateMode(gate_text),
        report_dir=report_dir,
        allow_destructive=_flag(config, "tria_allow_destructive", "tria_allow_destructive"),
        config_source=data.source,
    )


def _resolve(targets: Sequence[Target]) -> tuple[Target, ...]:
    problems: list[str] = []
    resolved: list[Target] = []
    for target in targets:
        try:
            resolved.append(target.resolve(os.environ))
        except TargetError as exc:
            problems += exc.problems
    if problems:
        raise pytest.UsageError(_format(problems))
    for target in resolved:
        register_secrets(target.secret_values())
    return tuple(resolved)


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


def _format(problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return f"tria-deploy: {problems[0]}"
    return (
        "tria-deploy: " + f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
    )
