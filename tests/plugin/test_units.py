"""The plain modules on their own: stage graph, ${VAR} interpolation, targets, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_tria_deploy.interpolate import MissingVariables, interpolate
from pytest_tria_deploy.report.verdict import git_sha
from pytest_tria_deploy.stages import BUILTIN_STAGES, Stage, StageError, StageGraph
from pytest_tria_deploy.targets import Budgets, Target, TargetError, load_config
from tests.plugin.conftest import commit_suites


def test_builtin_graph_order_and_ancestors() -> None:
    graph = StageGraph.build(BUILTIN_STAGES)
    assert graph.names == [
        "preflight",
        "environment",
        "database",
        "redis",
        "external",
        "components",
        "health",
        "smoke",
    ]
    assert graph.ancestors("components") == [
        "preflight",
        "environment",
        "database",
        "redis",
        "external",
    ]
    assert graph.ancestors("redis") == ["preflight", "environment"]
    assert graph.closure(["redis"]) == {"preflight", "environment", "redis"}


def test_custom_stage_is_placed_after_its_parents() -> None:
    graph = StageGraph.build([Stage("perf", ("smoke",), critical=False), *BUILTIN_STAGES])
    assert graph.names[-1] == "perf"
    assert not graph["perf"].critical


def test_graph_reports_every_problem() -> None:
    with pytest.raises(StageError) as info:
        StageGraph.build([Stage("a", ("smok",)), Stage("a"), Stage("Bad")])
    text = str(info.value)
    assert "defined twice" in text
    assert "unknown stage 'smok'" in text
    assert "'Bad' must match" in text


def test_graph_rejects_cycles() -> None:
    with pytest.raises(StageError, match="cycle"):
        StageGraph.build([Stage("a", ("b",)), Stage("b", ("a",))])


def test_stage_from_module_name() -> None:
    graph = StageGraph.build(BUILTIN_STAGES)
    assert graph.stage_for_module(Path("suites/test_03_database.py")) == "database"
    assert graph.stage_for_module(Path("suites/test_03_databse.py")) is None
    assert graph.stage_for_module(Path("suites/test_database.py")) is None


def test_interpolation_defaults_and_missing() -> None:
    env = {"HOST": "db.internal", "EMPTY": ""}
    assert interpolate("postgresql://${HOST}:${PORT:-5432}/x", env) == (
        "postgresql://db.internal:5432/x"
    )
    assert interpolate("${EMPTY:-fallback}", env) == "fallback"
    with pytest.raises(MissingVariables) as info:
        interpolate("${A}-${HOST}-${EMPTY}-${B:-b}-${A}", env)
    assert info.value.names == ["A", "EMPTY"]


def _prod(**extra: object) -> Target:
    return Target.model_validate(
        {
            "name": "prod",
            "provider": "external",
            "protected": True,
            "instances": ["https://a.example", "${URL_B}"],
            "database_url": "postgresql://tria:${PG_PASSWORD}@db/tria",
            "redis_url": "${REDIS_URL}",
            "openai_api_key": "${OPENAI_KEY}",
            "chroma_url": "https://chroma.example",
            **extra,
        }
    )


def test_target_resolution_names_every_missing_variable() -> None:
    with pytest.raises(TargetError) as info:
        _prod().resolve({"REDIS_URL": "redis://r"})
    problems = info.value.problems
    assert len(problems) == 3
    assert any("URL_B is not set (used by instances[1])" in p for p in problems)
    assert any("PG_PASSWORD is not set (used by database_url)" in p for p in problems)
    assert all(p.startswith("target 'prod': ") for p in problems)


def test_resolved_target_keeps_secrets_out_of_repr() -> None:
    env = {
        "URL_B": "https://b",
        "PG_PASSWORD": "pg-pass-1",
        "REDIS_URL": "redis://r",
        "OPENAI_KEY": "k-1",
    }
    target = _prod().resolve(env)
    assert target.instance_urls == ["https://a.example", "https://b"]
    assert "pg-pass-1" not in repr(target)
    assert "postgresql://tria:pg-pass-1@db/tria" in target.secret_values()
    endpoints = target.endpoints()
    assert endpoints.service_urls == ["https://a.example", "https://b"]


def test_external_target_needs_its_endpoints() -> None:
    with pytest.raises(ValueError, match=r"needs service_url \(or instances\), database_url"):
        Target(name="bare", provider="external")
    with pytest.raises(ValueError, match="not both"):
        _prod(service_url="https://x")


def test_config_file_problems_are_listed(tmp_path: Path) -> None:
    (tmp_path / "tria.toml").write_text(
        "[targets.a]\nprovider = 'kubernetes'\n[targets.b]\nprotected = 'maybe'\nservice_url = 1\n"
        "[stages.perf]\nafter = ['smoke']\nslow = true\n[stage.x]\n"
    )
    loaded = load_config(tmp_path, None, tmp_path)
    text = "\n".join(loaded.problems)
    assert "targets.a: provider" in text
    assert "targets.b: protected" in text
    assert "stages.perf: slow: Extra inputs are not permitted" in text
    assert "unknown section [stage]; known: targets, stages; did you mean 'stages'?" in text
    assert "a" not in loaded.targets
    assert "perf" not in loaded.stages


def test_unparsable_config_raises(tmp_path: Path) -> None:
    (tmp_path / "tria.toml").write_text("[targets.a\n")
    with pytest.raises(TargetError, match="does not parse"):
        load_config(tmp_path, None, tmp_path)


def test_pyproject_tool_tria_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.tria.targets.edge]\nprovider = 'local'\nprotected = true\n"
    )
    loaded = load_config(tmp_path, None, tmp_path)
    assert loaded.targets["edge"].protected
    assert {"local", "containers"} <= set(loaded.targets)
    assert loaded.source == str(tmp_path / "pyproject.toml")
    assert loaded.problems == []


def test_git_sha_of_a_work_tree_and_of_none(tmp_path: Path) -> None:
    assert git_sha(tmp_path) is None
    sha = commit_suites(tmp_path)
    assert git_sha(tmp_path) == sha
    (tmp_path / "sub").mkdir()
    assert git_sha(tmp_path / "sub") == sha


def test_target_critical_dependencies_relax_their_stages() -> None:
    target = _prod(critical=["database", "openai"]).resolve(
        {"URL_B": "https://b", "PG_PASSWORD": "pw-1", "REDIS_URL": "redis://r", "OPENAI_KEY": "k"}
    )
    assert not target.relaxes("database")
    assert target.relaxes("redis")
    assert not target.relaxes("external")  # openai is still critical
    assert not target.relaxes("components")
    assert _prod(critical=[]).relaxes("external")


def test_budgets_accept_extra_numeric_budgets_only() -> None:
    budgets = Budgets.model_validate({"chat_p95_ms": 800, "redis_p99_ms": 5})
    assert budgets.get("chat_p95_ms") == 800.0
    assert budgets.get("redis_p99_ms") == 5.0
    with pytest.raises(ValueError, match="budget 'chat' must be a number"):
        Budgets.model_validate({"chat": "fast"})
    with pytest.raises(ValueError, match="greater than 0"):
        Budgets.model_validate({"readiness_ms": 0})
