"""The plugin loads for every pytest run, but only a run that asks for it is changed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.plugin.conftest import QUIET_INI, executed

PLAIN = {
    "test_02_database": "def test_orm():\n    pass\n",
    "test_01_redis": "def test_cache_first():\n    assert 0\n",
    "test_x": "import asyncio\n\ndef test_a():\n    pass\n\n"
    "async def test_async():\n    await asyncio.sleep(0)\n",
}
# The fixture loop scope only quiets pytest-asyncio's own warning; the mode stays unset.
PLAIN_INI = QUIET_INI + "asyncio_default_fixture_loop_scope = function\n"
# Records what the run looked like to pytest itself, from the controller.
RECORDER = """
def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        config = session.config
        with open("seen.txt", "w") as handle:
            handle.write(f"dist={getattr(config.option, 'dist', None)} ")
            handle.write(f"asyncio_mode={config.getini('asyncio_mode')} ")
            handle.write(f"fixtures={config.pluginmanager.has_plugin('tria_deploy.fixtures')}")
"""


@pytest.fixture
def plain(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(PLAIN_INI)
    pytester.makeconftest(RECORDER)
    pytester.makepyfile(**PLAIN)
    return pytester


def test_plain_project_is_untouched(plain: pytest.Pytester) -> None:
    result = plain.runpytest("-v", "-p", "no:randomly")
    assert executed(result)[:3] == ["test_cache_first", "test_orm", "test_a"]  # file order
    text = result.stdout.str()
    assert "tria-deploy:" not in text  # (the "plugins:" line names the package)
    assert "VERDICT" not in text
    assert not (plain.path / "reports").exists()
    assert (plain.path / "seen.txt").read_text() == "dist=no asyncio_mode=strict fixtures=False"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_plain_project_keeps_its_dist_mode(plain: pytest.Pytester) -> None:
    result = plain.runpytest("-n", "2")
    assert (plain.path / "seen.txt").read_text().startswith("dist=load ")
    assert "tria-deploy:" not in result.stdout.str()


@pytest.mark.parametrize(
    ("how", "args"),
    [
        ("option", ["--tria-gate=normal"]),
        ("ini", ["-o", "tria_gate=normal"]),
        ("tria.toml", []),
        ("tool.tria", []),
    ],
)
def test_each_trigger_activates(plain: pytest.Pytester, how: str, args: list[str]) -> None:
    if how == "tria.toml":
        plain.makefile(".toml", tria="")
    if how == "tool.tria":
        plain.makepyprojecttoml("[tool.tria.stages.smoke]\ncritical = true\n")
    result = plain.runpytest("-v", "-p", "no:randomly", *args)
    result.stdout.fnmatch_lines(["tria-deploy: target local *", "*VERDICT: FAIL - redis failed*"])
    assert executed(result)[:2] == ["test_orm", "test_cache_first"]  # stage order
    assert (plain.path / "seen.txt").read_text() == "dist=no asyncio_mode=auto fixtures=True"


def test_stage_marker_in_an_inactive_run_says_how_to_activate(pytester: pytest.Pytester) -> None:
    pytester.makeini(PLAIN_INI)
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.tria_stage('database')\ndef test_db():\n    pass\n\n"
        "def test_plain():\n    pass\n"
    )
    result = pytester.runpytest("-n", "2", "-rE")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_db: @pytest.mark.tria_stage, but tria-deploy is not active in this run; "
            "add a tria.toml*"
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str()


def test_inactive_import_does_not_load_the_engine() -> None:
    code = (
        "import sys, pytest_tria_deploy.plugin\n"
        "heavy = [m for m in ('pydantic', 'pytest_tria_deploy.engine', "
        "'pytest_tria_deploy.fixtures', 'pytest_asyncio') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_public_names_still_import() -> None:
    import pytest_tria_deploy

    assert pytest_tria_deploy.Stage("x").name == "x"
    assert pytest_tria_deploy.redact("sk-abcdefghijkl") == "***"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = pytest_tria_deploy.nope
