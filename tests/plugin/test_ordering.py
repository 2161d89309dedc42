"""Collection: stage from marker or module name, stage order, file order, unstaged tests left be."""

from __future__ import annotations

import pytest

from tests.plugin.conftest import STAGE_ORDER, activate, executed


def test_modules_run_in_stage_order_whatever_the_file_order(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=9)
    assert executed(result) == STAGE_ORDER


def test_marker_beats_module_and_unstaged_tests_keep_their_slots(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    activate(pytester)
    pytester.makepyfile(
        test_a="""
        import pytest

        def test_plain_first():
            pass

        @pytest.mark.tria_stage("smoke")
        def test_smoke_marked():
            pass

        def test_plain_second():
            pass

        @pytest.mark.tria_stage("preflight")
        def test_preflight_marked():
            pass

        @pytest.mark.tria_stage("database")
        def test_db_one():
            pass

        @pytest.mark.tria_stage("database")
        def test_db_two():
            pass
        """,
        test_09_other="""
        def test_unknown_module_stage_is_unstaged():
            pass
        """,
    )
    result = pytester.runpytest("-v")
    assert executed(result) == [
        "test_unknown_module_stage_is_unstaged",
        "test_plain_first",
        "test_preflight_marked",
        "test_plain_second",
        "test_db_one",
        "test_db_two",
        "test_smoke_marked",
    ]


def test_minus_m_and_minus_k_work_as_usual(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_10_marked="""
        import pytest

        @pytest.mark.tria_stage("database")
        def test_marked_database():
            pass
        """
    )
    result = suite.runpytest("-v", "-m", "tria_stage")
    assert executed(result) == ["test_marked_database"]
    result = suite.runpytest("-v", "-m", "database", "--strict-markers")
    assert executed(result) == ["test_db_connects", "test_db_schema", "test_marked_database"]
    result = suite.runpytest("-v", "-m", "smoke or redis")
    assert executed(result) == ["test_redis_ping", "test_chat_roundtrip"]
    result = suite.runpytest("-v", "-k", "redis or readiness")
    assert executed(result) == ["test_redis_ping", "test_readiness"]


def test_stage_selection_runs_dependencies(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_plain="def test_unstaged():\n    pass\n")
    result = suite.runpytest("-v", "--tria-stage=redis")
    assert executed(result) == ["test_runner_ready", "test_env_complete", "test_redis_ping"]
    result.stdout.fnmatch_lines(["*tria-deploy: stages redis and dependencies*", "*7 deselected*"])


def test_stage_selection_with_no_deps_trusts_them(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-v", "--tria-stage=smoke", "--tria-stage=redis", "--tria-no-deps")
    assert executed(result) == ["test_redis_ping", "test_chat_roundtrip"]


def test_stage_selection_from_ini(suite: pytest.Pytester) -> None:
    suite.makepyprojecttoml(
        '[tool.pytest.ini_options]\ntria_stage = ["database"]\ntria_no_deps = true\n'
    )
    (suite.path / "tox.ini").unlink()
    result = suite.runpytest("-v")
    assert executed(result) == ["test_db_connects", "test_db_schema"]


def test_custom_stage_from_tria_toml(suite: pytest.Pytester) -> None:
    suite.makefile(
        ".toml",
        tria='[stages.perf]\nafter = ["smoke"]\ncritical = false\n'
        '[stages.preflight]\ndescription = "ours"\n',
    )
    suite.makepyfile(test_00_perf="def test_p99():\n    pass\n")
    result = suite.runpytest("-v")
    assert executed(result)[-1] == "test_p99"
    result.stdout.fnmatch_lines(["perf (non-critical) *1 *PASS"])


def test_custom_stage_from_hook_is_ordered_and_gated(suite: pytest.Pytester) -> None:
    suite.makeconftest(
        """
        from pytest_tria_deploy import Stage

        def pytest_tria_stages(config):
            return [Stage("migrations", after=("database",))]
        """
    )
    suite.makepyfile(test_00_migrations="def test_migrated():\n    pass\n")
    names = executed(suite.runpytest("-v"))
    assert names.index("test_migrated") > names.index("test_db_schema")
    suite.makepyfile(test_03_database="def test_db_connects():\n    assert False\n")
    result = suite.runpytest("-v", "-rs")
    result.stdout.fnmatch_lines(
        ["*SKIPPED*test_00_migrations.py*blocked: database failed: test_03_database.py::test_db*"]
    )
