"""Under pytest-xdist, a target's staged tests run on one worker in order, so gating holds."""

from __future__ import annotations

import pytest

from pytest_tria_deploy import distribute
from tests.plugin.conftest import STAGE_ORDER, read_verdict, stage_of


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
    result = suite.runpytest("-n", "2", *dist, "-v", "-rs", "--junitxml=junit.xml")
    result.assert_outcomes(passed=11, failed=1, skipped=3)
    ran = [line.split() for line in result.outlines if line.startswith("[gw")]
    staged = [(words[0], words[-1]) for words in ran if "test_0" in words[-1]]
    assert [nodeid.split("::")[-1] for _, nodeid in staged] == STAGE_ORDER
    assert len({worker for worker, _ in staged}) == 1
    assert "@tria" not in result.stdout.str() + (suite.path / "junit.xml").read_text()
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
    result.stdout.fnmatch_lines(["*PASSED test_06_components.py::test_components[[]us[]]*"])
    ran = [line.split() for line in result.outlines if line.startswith("[gw")]
    for target in ("eu", "us"):
        assert len({words[0] for words in ran if f"[{target}]" in words[-1]}) == 1


def test_unknown_stage_marker_is_a_usage_error_under_xdist(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_misspelt="""
        import pytest

        @pytest.mark.tria_stage("databse")
        def test_x():
            pass
        """
    )
    result = suite.runpytest("-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            "*tria-deploy: usage errors*",
            "ERROR: tria-deploy: test_misspelt.py::test_x: unknown stage 'databse' in "
            "@pytest.mark.tria_stage; known: preflight, *; did you mean 'database'?",
        ]
    )
    assert not (suite.path / "reports" / "verdict.json").exists()


def test_last_failed_works_across_xdist_and_plain_runs(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_04_redis="def test_redis_ping():\n    assert 0\n")
    suite.runpytest("-n", "2").assert_outcomes(passed=5, failed=1, skipped=3)
    result = suite.runpytest("--lf", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["test_04_redis.py::test_redis_ping FAILED*"])


class _FrozenId:
    """An item whose node id ignores assignment, like a pytest that stores ids another way."""

    nodeid = "test_a.py::test_x"


def test_grouping_fails_loudly_when_ids_cannot_be_suffixed() -> None:
    item = _FrozenId()
    with pytest.raises(distribute.GroupingUnavailable, match="run without -n"):
        distribute.suffix_ids([(item, "tria-local")])  # type: ignore[list-item]
    assert item.nodeid == "test_a.py::test_x"


def test_plain_id_strips_only_the_tria_group() -> None:
    assert distribute.plain_id("t.py::test_x[a@b]@tria-prod-eu") == "t.py::test_x[a@b]"
    assert distribute.plain_id("t.py::test_x@mygroup") == "t.py::test_x@mygroup"


def test_credential_shaped_test_ids_survive_xdist(suite: pytest.Pytester) -> None:
    """Ids are the tests' identity (xdist matches reports to items by id): never rewritten."""
    suite.makepyfile(
        test_shapes="""
        import pytest

        @pytest.mark.parametrize("url", ["postgresql://u:pw-in-id@h/db", "Bearer abc.def"])
        def test_url(url):
            pass
        """
    )
    result = suite.runpytest("-n", "2", "-v")
    result.assert_outcomes(passed=11)
    assert "INTERNALERROR" not in result.stdout.str()
