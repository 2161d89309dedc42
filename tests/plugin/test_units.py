"""The plain modules on their own: stage graph, ${VAR} interpolation, targets, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_tria_deploy.interpolate import MissingVariable, interpolate, missing
from pytest_tria_deploy.redact import MASK, redact, register_secrets
from pytest_tria_deploy.report.verdict import git_sha
from pytest_tria_deploy.stages import BUILTIN_STAGES, Stage, StageError, StageGraph
from pytest_tria_deploy.targets import Budgets, Target, TargetError, load_config


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
    assert missing("${A}-${HOST}-${EMPTY}-${B:-b}", env) == ["A", "EMPTY"]
    with pytest.raises(MissingVariable) as info:
        interpolate("${NOPE}", env)
    assert info.value.name == "NOPE"


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
    )
    with pytest.raises(TargetError) as info:
        load_config(tmp_path, None, tmp_path)
    text = str(info.value)
    assert "targets.a: provider" in text
    assert "targets.b: protected" in text


def test_pyproject_tool_tria_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.tria.targets.edge]\nprovider = 'local'\nprotected = true\n"
    )
    _, targets = load_config(tmp_path, None, tmp_path)
    assert targets["edge"].protected
    assert {"local", "containers"} <= set(targets)


def test_redact_patterns_and_registered_values() -> None:
    register_secrets(["postgresql://u:planted-pw-9@h/db", "plain-token-value-77"])
    text = redact(
        "dsn postgresql://u:planted-pw-9@h/db, again planted-pw-9, key sk-abcdef123456, "
        "Authorization: Bearer eyJhbGciOi.x.y, plain-token-value-77, redis://:pw9999@r:6379"
    )
    for secret in (
        "planted-pw-9",
        "sk-abcdef123456",
        "eyJhbGciOi",
        "plain-token-value-77",
        "pw9999",
    ):
        assert secret not in text
    assert "postgresql://u:***@h/db" in text
    assert f"Bearer {MASK}" in text


def test_git_sha_of_a_work_tree_and_of_none(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    sha = git_sha(repo)
    assert sha is not None
    assert len(sha) == 40
    assert git_sha(tmp_path) is None


def test_budgets_accept_extra_numeric_budgets_only() -> None:
    budgets = Budgets.model_validate({"chat_p95_ms": 800, "redis_p99_ms": 5})
    assert budgets.get("chat_p95_ms") == 800.0
    assert budgets.get("redis_p99_ms") == 5.0
    with pytest.raises(ValueError, match="budget 'chat' must be a number"):
        Budgets.model_validate({"chat": "fast"})
    with pytest.raises(ValueError, match="greater than 0"):
        Budgets.model_validate({"readiness_ms": 0})
