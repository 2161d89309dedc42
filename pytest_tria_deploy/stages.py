"""The stage graph: which checks exist, what each builds on, and which failures block the rest."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    """One stage: a failure in a critical stage blocks every stage that comes ``after`` it."""

    name: str
    after: tuple[str, ...] = ()
    critical: bool = True
    description: str = ""


BUILTIN_STAGES: tuple[Stage, ...] = (
    Stage("preflight", (), True, "the runner itself: tools, config, reachability of the target"),
    Stage("environment", ("preflight",), True, "variables and settings the target needs"),
    Stage("database", ("environment",), True, "PostgreSQL: connect, schema, migrations"),
    Stage("redis", ("environment",), True, "Redis: connect, round trip, latency budget"),
    Stage("external", ("environment",), True, "OpenAI and Chroma: reachable, models present"),
    Stage("components", ("database", "redis", "external"), True, "the service's own parts"),
    Stage("health", ("components",), True, "liveness, startup, readiness, diagnostics"),
    Stage("smoke", ("health",), True, "end-to-end requests against every instance"),
)

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MODULE_STAGE = re.compile(r"^test_\d+_(?P<stage>[a-z][a-z0-9_]*)\.py$")


class StageError(ValueError):
    """The stage graph is inconsistent; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def suggest(name: str, known: Iterable[str]) -> str:
    """A "did you mean" suffix for an unknown name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class StageGraph:
    """Stages in run order (topological, ties kept in declaration order)."""

    stages: tuple[Stage, ...]
    _by_name: Mapping[str, Stage] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def build(cls, stages: Iterable[Stage]) -> StageGraph:
        """Validate and order; raises StageError listing duplicates, unknown parents and cycles."""
        declared = list(stages)
        problems: list[str] = []
        by_name: dict[str, Stage] = {}
        for stage in declared:
            if not _STAGE_NAME.match(stage.name):
                problems.append(f"stage name {stage.name!r} must match [a-z][a-z0-9_]*")
            if stage.name in by_name:
                problems.append(f"stage {stage.name!r} is defined twice")
            by_name[stage.name] = stage
        for stage in declared:
            for parent in stage.after:
                if parent not in by_name:
                    problems.append(
                        f"stage {stage.name!r} comes after unknown stage {parent!r}"
                        + suggest(parent, by_name)
                    )
        if problems:
            raise StageError(problems)
        ordered: list[Stage] = []
        placed: set[str] = set()
        pending = list(by_name.values())
        while pending:
            ready = [s for s in pending if set(s.after) <= placed]
            if not ready:
                names = ", ".join(sorted(_in_cycles(pending)))
                raise StageError(
                    [
                        f"stages {names} depend on each other in a cycle; remove one of their "
                        "'after' entries"
                    ]
                )
            ordered.append(ready[0])
            placed.add(ready[0].name)
            pending.remove(ready[0])
        return cls(tuple(ordered), by_name)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Stage:
        return self._by_name[name]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def ancestors(self, name: str) -> list[str]:
        """Every stage ``name`` depends on, directly or not, in run order."""
        seen: set[str] = set()
        todo = list(self._by_name[name].after)
        while todo:
            parent = todo.pop()
            if parent not in seen:
                seen.add(parent)
                todo.extend(self._by_name[parent].after)
        return [n for n in self.names if n in seen]

    def closure(self, selected: Iterable[str]) -> set[str]:
        """The selected stages and everything they depend on."""
        result: set[str] = set()
        for name in selected:
            result.add(name)
            result.update(self.ancestors(name))
        return result

    def unknown(self, names: Iterable[str], source: str) -> list[str]:
        """One problem line per unknown stage name, with a suggestion."""
        known = ", ".join(self.names)
        return [
            f"unknown stage '{n}' in {source}; known: {known}{suggest(n, self.names)}"
            for n in names
            if n not in self._by_name
        ]

    def stage_for_module(self, path: Path) -> str | None:
        """``test_NN_<stage>.py`` belongs to ``<stage>`` when that stage exists."""
        match = _MODULE_STAGE.match(path.name)
        if match and match["stage"] in self._by_name:
            return match["stage"]
        return None


def _in_cycles(stuck: list[Stage]) -> set[str]:
    """The stages that could not be placed, without those merely downstream of a cycle: an
    'after' entry of theirs is not what to remove."""
    names = {s.name for s in stuck}
    while True:
        parents = {p for s in stuck if s.name in names for p in s.after}
        downstream = names - parents
        if not downstream:
            return names
        names -= downstream
