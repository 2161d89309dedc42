"""Latency baselines kept between runs, so a gate notices a target getting slower than it was.

``<report dir>/baselines.json`` holds the last measured figures per target and per measurement:
``{"targets": {"<target>": {"<name>": {"p50_ms": ..., "p99_ms": ..., ...}}}}``. Every update
re-reads and merges under a file lock, so xdist workers and several targets in one run never
overwrite each other's entries. A file that cannot be read is replaced, with a warning, and
never fails the run: a baseline only explains a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pytest_tria_deploy.helpers import Latency, Warn
from pytest_tria_deploy.report.writing import write_atomic

BASELINES_FILE = "baselines.json"
REGRESSION_FACTOR = 2.0
LOCK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Baseline:
    """One measurement's figures as stored."""

    p50_ms: float
    p99_ms: float
    samples: int
    measured_at: str

    @classmethod
    def of(cls, latency: Latency) -> Baseline:
        return cls(
            p50_ms=round(latency.p50_ms, 3),
            p99_ms=round(latency.p99_ms, 3),
            samples=latency.count,
            measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @classmethod
    def parse(cls, data: object) -> Baseline | None:
        """A stored entry, or None when it is not one (an older or hand-edited file)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                p50_ms=float(data["p50_ms"]),
                p99_ms=float(data["p99_ms"]),
                samples=int(data["samples"]),
                measured_at=str(data["measured_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


# What a suite's fixture hands a test: (name, latency) -> (previous, current).
BaselineUpdate = Callable[[str, Latency], tuple[Baseline | None, Baseline]]


def regression(previous: Baseline, current: Baseline, factor: float = REGRESSION_FACTOR) -> bool:
    """Whether the p99 grew by more than ``factor`` since the previous baseline, however small
    both are: a sub-millisecond Redis that became 9x slower has regressed all the same."""
    return current.p99_ms > factor * previous.p99_ms


def _read(path: Path) -> tuple[dict[str, Any], str | None]:
    """The file's content and None, or an empty table and why the file could not be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"{path} is unreadable ({type(exc).__name__}); it is replaced by this run's"
    if not isinstance(data, dict) or not isinstance(data.get("targets", {}), dict):
        return {}, f"{path} is not a baselines file; it is replaced by this run's"
    return data, None


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a file."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def update_baseline(
    path: Path, target: str, name: str, latency: Latency, warn: Warn
) -> tuple[Baseline | None, Baseline]:
    """Store this run's figures for ``target``/``name`` and return (previous, current).

    ``warn`` hears about a p99 more than twice the previous one (naming both figures; see
    ``regression``) and about a file that had to be replaced or could not be written.
    """
    current = Baseline.of(latency)
    previous: Baseline | None = None
    try:
        with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_SECONDS):
            data, problem = _read(path)
            if problem:
                warn(problem)
            targets: dict[str, Any] = data.setdefault("targets", {})
            entries = targets.get(target)
            entries = entries if isinstance(entries, dict) else {}
            previous = Baseline.parse(entries.get(name))
            entries[name] = asdict(current)
            targets[target] = entries
            _write(path, data)
    except (OSError, Timeout) as exc:
        warn(f"the {name} baseline could not be stored in {path}: {type(exc).__name__}: {exc}")
    if previous is not None and regression(previous, current):
        warn(
            f"{name} p99 {current.p99_ms:.3f} ms is more than {REGRESSION_FACTOR:g}x the previous "
            f"run's {previous.p99_ms:.3f} ms (measured {previous.measured_at})"
        )
    return previous, current
