"""Async suites work with no configuration: auto mode and one session-scoped event loop.

These run pytest in a subprocess: a fresh interpreter loads the plugin from its entry point,
exactly as a user's ``pytest`` does, and nothing of this process's event loops leaks in.
"""

from __future__ import annotations

import pytest

CONFTEST = """
import asyncio
import pytest

@pytest.fixture(scope="session")
async def session_loop():
    lock = asyncio.Lock()  # bound to the loop it is first used in
    async with lock:
        pass
    yield asyncio.get_running_loop(), lock
"""
TESTS = """
import asyncio

async def test_same_loop(session_loop):
    loop, lock = session_loop
    assert asyncio.get_running_loop() is loop
    async with asyncio.timeout(2):
        async with lock:
            await asyncio.sleep(0)
"""


def test_async_session_fixtures_and_tests_need_no_config(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makefile(".toml", tria="")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_03_database=TESTS, test_04_redis=TESTS)
    result = pytester.runpytest_subprocess("-W", "error::pytest.PytestDeprecationWarning")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["asyncio: mode=*AUTO*asyncio_default_fixture_loop_scope=session*test_loop_scope=session"]
    )


def test_explicit_user_settings_win(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_test_loop_scope = module\n")
    pytester.makefile(".toml", tria="")
    pytester.makepyfile("def test_sync():\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(
        ["asyncio: mode=*STRICT*fixture_loop_scope=session*test_loop_scope=module"]
    )
    result.assert_outcomes(passed=1)


def test_changed_pytest_internals_are_warned_about(pytester: pytest.Pytester) -> None:
    """A conftest stands in for a pytest release whose ini cache is no longer a dict."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makefile(".toml", tria="")
    pytester.makeconftest(
        """
        import collections
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_configure(config):
            config._inicache = collections.UserDict(config._inicache)
        """
    )
    pytester.makepyfile("def test_sync():\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*tria-deploy: cannot supply pytest-asyncio defaults*asyncio_mode = auto*",
            "*tria-deploy: cannot default junit_family*junit_family = xunit1*",
        ],
        consecutive=False,
    )
