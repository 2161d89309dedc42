"""Under pytest-xdist, a target's staged tests run on one worker in order, so gating holds."""

from __future__ import annotations

import pytest

from tests.plugin.conftest import read_verdict, stage_of


def _suite_with_unstaged(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_03_database="""
        def test_db_connects():
            raise ConnectionRefusedError("database down")

        def test_db_schema():
            pass
        """,
        test_unstaged="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_free(n):
            pass
        """,
    )


@pytest.mark.parametrize("dist", [[], ["--dist", "loadgroup"]], ids=["default", "loadgroup"])
def test_blocking_and_order_hold_across_workers(suite: pytest.Pytester, dist: list[str]) -> None:
    _suite_with_unstaged(suite)
    result = suite.runpytest("-n", "2", *dist, "-v", "-rs")
    result.assert_outcomes(passed=11, failed=1, skipped=3)
    staged = [
        line.split()[-1].split("::")[-1].removesuffix("@tria-local")
        for line in result.outlines
        if line.startswith("[gw") and "@tria-local" in line
    ]
    assert staged == [
        "test_runner_ready",
        "test_env_complete",
        "test_db_connects",
        "test_db_schema",
        "test_redis_ping",
        "test_openai_models",
        "test_components",
        "test_readiness",
        "test_chat_roundtrip",
    ]
    workers = {
        line.split()[0] for line in result.outlines if "@tria-local" in line and "[gw" in line
    }
    assert len(workers) == 1
    result.stdout.fnmatch_lines(
        ["SKIPPED*test_06_components.py:1: blocked: database failed: *test_db_connects: *down"]
    )
    verdict = read_verdict(suite)
    assert verdict["verdict"] == "FAIL"
    assert stage_of(verdict, "redis")["status"] == "PASS"
    assert stage_of(verdict, "smoke")["status"] == "BLOCKED"
    nodeids = [t["nodeid"] for s in verdict["targets"][0]["stages"] for t in s["tests"]]
    assert "test_03_database.py::test_db_connects" in nodeids
    assert result.ret == 1


def test_each_target_is_grouped_separately(suite: pytest.Pytester) -> None:
    suite.makefile(
        ".toml", tria="[targets.eu]\nprovider = 'local'\n[targets.us]\nprovider = 'local'\n"
    )
    suite.makepyfile(
        test_03_database="""
        def test_db_connects(tria_target):
            assert tria_target.name == "us", "eu down"
        """
    )
    result = suite.runpytest("-n", "2", "--tria-target=eu", "--tria-target=us", "-v")
    result.assert_outcomes(passed=12, failed=1, skipped=3)
    verdict = read_verdict(suite)
    assert [t["verdict"] for t in verdict["targets"]] == ["FAIL", "PASS"]
    result.stdout.fnmatch_lines(["*test_components[[]us[]]@tria-us*"], consecutive=False)
