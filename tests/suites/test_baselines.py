"""Latency baselines: stored per target and measurement, compared with the last run's, merged
under a lock by concurrent writers, and a damaged file is replaced with a warning, never a crash."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from pytest_tria_deploy.baselines import Baseline, regression, update_baseline
from pytest_tria_deploy.helpers import Latency


def latency(p99_ms: float, rounds: int = 100) -> Latency:
    """``rounds`` samples whose p50 is 0.5 ms (or ``p99_ms``, if less) and whose p99 is
    ``p99_ms``."""
    return Latency((min(0.5, p99_ms),) * (rounds - 2) + (p99_ms, p99_ms))


def update(path: Path, target: str, name: str, p99_ms: float) -> tuple[list[str], Baseline | None]:
    warnings: list[str] = []
    previous, _ = update_baseline(path, target, name, latency(p99_ms), warnings.append)
    return warnings, previous


def stored(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    targets: dict[str, dict[str, dict[str, float]]] = json.loads(path.read_text())["targets"]
    return targets


def test_the_first_run_stores_its_figures_and_has_nothing_to_compare(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "baselines.json"
    warnings, previous = update(path, "local", "redis", 3.0)
    assert (warnings, previous) == ([], None)
    entry = stored(path)["local"]["redis"]
    assert (entry["p50_ms"], entry["p99_ms"], entry["samples"]) == (0.5, 3.0, 100)


def test_a_p99_over_twice_the_last_one_warns_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    update(path, "prod", "redis", 2.0)
    warnings, previous = update(path, "prod", "redis", 4.5)
    assert previous is not None
    assert previous.p99_ms == 2.0
    assert len(warnings) == 1
    assert "4.500 ms" in warnings[0]
    assert "2.000 ms" in warnings[0]
    assert stored(path)["prod"]["redis"]["p99_ms"] == 4.5  # the new baseline replaces the old


def test_a_sub_millisecond_p99_over_twice_the_last_one_warns(tmp_path: Path) -> None:
    """No absolute floor: 0.1 ms -> 0.9 ms is 9x, a regression however small both are."""
    path = tmp_path / "baselines.json"
    update(path, "prod", "redis", 0.1)
    warnings, _ = update(path, "prod", "redis", 0.9)
    assert len(warnings) == 1
    assert "0.900 ms" in warnings[0]
    assert "0.100 ms" in warnings[0]


@pytest.mark.parametrize(
    ("before", "after"),
    [(2.0, 4.0), (2.0, 1.0), (0.1, 0.2)],
    ids=["exactly twice", "faster", "sub-millisecond, exactly twice"],
)
def test_no_warning_without_a_real_regression(tmp_path: Path, before: float, after: float) -> None:
    path = tmp_path / "baselines.json"
    update(path, "prod", "redis", before)
    warnings, _ = update(path, "prod", "redis", after)
    assert warnings == []


def test_regression_is_the_ratio_alone() -> None:
    def at(p99: float) -> Baseline:
        return Baseline(p50_ms=0.1, p99_ms=p99, samples=100, measured_at="t")

    assert regression(at(1.0), at(2.5))
    assert not regression(at(1.0), at(2.0))
    assert regression(at(0.2), at(0.9))
    assert regression(at(0.001), at(0.003))


def test_targets_and_measurements_are_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    update(path, "staging", "redis", 10.0)
    update(path, "prod", "redis", 1.0)
    update(path, "prod", "database", 5.0)
    warnings, previous = update(path, "prod", "redis", 1.2)
    assert warnings == []
    assert previous is not None
    assert previous.p99_ms == 1.0
    assert {t: sorted(e) for t, e in stored(path).items()} == {
        "staging": ["redis"],
        "prod": ["database", "redis"],
    }


def _write_one(path: Path, target: str) -> None:
    for n in range(5):
        update_baseline(path, target, f"m{n}", latency(1.0), lambda _: None)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Separate processes (as xdist workers are) merge under the lock."""
    path = tmp_path / "baselines.json"
    targets = [f"t{n}" for n in range(4)]
    with ProcessPoolExecutor(max_workers=4) as pool:
        list(pool.map(_write_one, [path] * len(targets), targets, timeout=60))
    assert {t: sorted(e) for t, e in stored(path).items()} == {
        t: [f"m{n}" for n in range(5)] for t in targets
    }


@pytest.mark.parametrize(
    "content",
    ["{not json", '["a", "list"]', '{"targets": 3}', "\udcff"],
    ids=["bad json", "not an object", "targets not a table", "not utf-8"],
)
def test_a_damaged_file_is_replaced_with_a_warning(tmp_path: Path, content: str) -> None:
    path = tmp_path / "baselines.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    warnings, previous = update(path, "local", "redis", 1.0)
    assert previous is None
    assert len(warnings) == 1
    assert "is replaced" in warnings[0]
    assert str(path) in warnings[0]
    assert stored(path)["local"]["redis"]["p99_ms"] == 1.0


def test_a_stored_entry_of_another_shape_counts_as_no_baseline(tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"targets": {"local": {"redis": {"p99": 1}}}}))
    warnings, previous = update(path, "local", "redis", 9.0)
    assert (warnings, previous) == ([], None)


def test_a_report_dir_that_cannot_be_written_warns_and_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the report dir should be")
    path = blocker / "baselines.json"
    warnings, previous = update(path, "local", "redis", 1.0)
    assert previous is None
    assert len(warnings) == 1
    assert "could not be stored" in warnings[0]
