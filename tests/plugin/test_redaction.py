"""A secret planted in failures, skip reasons and captured output reaches no output at all."""

from __future__ import annotations

import pytest

from tests.plugin.conftest import QUIET_INI
from tests.reliability.secrets_canaries import assert_no_secret

SECRET = "planted-Secret-4f9a1c"
API_KEY = "opaque-key-7d2e91b"
TARGET = """
[targets.stage]
service_url = "http://127.0.0.1:9"
database_url = "postgresql://tria:${PLANTED_DB_PASSWORD}@127.0.0.1:9/tria"
redis_url = "redis://127.0.0.1:9"
openai_api_key = "${PLANTED_API_KEY}"
chroma_url = "http://127.0.0.1:9"
"""
SUITE = f"""
import os

def test_db_connects(tria_target):
    dsn = tria_target.database_url.get_secret_value()
    print("connecting with", dsn, "and key", os.environ["PLANTED_API_KEY"])
    raise ConnectionError(f"cannot connect to {{dsn}} (password {SECRET})")
"""


@pytest.fixture
def planted(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A target whose resolved secrets are canaries the outputs are then searched for."""
    monkeypatch.setenv("PLANTED_DB_PASSWORD", SECRET)
    monkeypatch.setenv("PLANTED_API_KEY", API_KEY)
    pytester.makeini(QUIET_INI)
    pytester.makefile(".toml", tria=TARGET)
    return pytester


@pytest.mark.parametrize("xdist", [False, True], ids=["inline", "xdist"])
def test_planted_secret_never_reaches_any_output(planted: pytest.Pytester, xdist: bool) -> None:
    pytester = planted
    pytester.makepyfile(test_03_database=SUITE, test_06_components="def test_c():\n    pass\n")
    args = ["--tria-target=stage", "--junitxml=junit.xml", "-rA", "-v"]
    if xdist:
        args += ["-n", "2"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1, skipped=1)
    terminal = result.stdout.str() + result.stderr.str()
    verdict = (pytester.path / "reports" / "verdict.json").read_text()
    junit = (pytester.path / "junit.xml").read_text()
    texts = {"terminal": terminal, "verdict.json": verdict, "junit.xml": junit}
    assert_no_secret(texts, {"database password": SECRET, "API key": API_KEY})
    for text in texts.values():
        assert "postgresql://tria:***@127.0.0.1:9/tria" in text
    assert "blocked: database failed: test_03_database.py::test_db_connects: ConnectionError" in (
        verdict
    )
    result.stdout.fnmatch_lines(
        ["*connecting with postgresql://tria:***@127.0.0.1:9/tria and key ***"]
    )


LOGGING_SUITE = """
import logging
import warnings

log = logging.getLogger("suite")

def test_db_connects(tria_target, caplog):
    dsn = tria_target.database_url.get_secret_value()
    log.warning("connecting to %s", dsn)
    try:
        raise ConnectionError(f"refused by {dsn}")
    except ConnectionError:
        log.exception("connect failed")
    warnings.warn(f"deprecated dsn {dsn}")
    assert "postgresql://tria:***@127.0.0.1:9/tria" in caplog.text
    assert dsn not in caplog.text
    assert 0, "fail so the captured log section is shown"
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["inline", "xdist"])
def test_logs_and_warnings_are_redacted(planted: pytest.Pytester, xdist: bool) -> None:
    pytester = planted
    pytester.makepyfile(test_03_database=LOGGING_SUITE)
    args = ["--tria-target=stage", "--log-file=run.log", "--log-file-level=INFO", "-rA"]
    args += ["-n", "2"] if xdist else ["-o", "log_cli=true"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1, warnings=1)
    terminal = result.stdout.str() + result.stderr.str()
    log_file = (pytester.path / "run.log").read_text()
    assert_no_secret({"terminal": terminal, "run.log": log_file}, {"database password": SECRET})
    assert "connecting to postgresql://tria:***@127.0.0.1:9/tria" in log_file
    assert "ConnectionError: refused by postgresql://tria:***@" in log_file
    result.stdout.fnmatch_lines(
        [
            "*Captured log call*",
            "*connecting to postgresql://tria:***@127.0.0.1:9/tria*",
            "*warnings summary*",
            "*UserWarning: deprecated dsn postgresql://tria:***@127.0.0.1:9/tria*",
        ],
        consecutive=False,
    )
    if not xdist:
        result.stdout.fnmatch_lines(["*live log call*", "*connecting to postgresql://tria:***@*"])


def test_secrets_of_one_run_do_not_outlive_it(planted: pytest.Pytester) -> None:
    from pytest_tria_deploy.redact import redact

    pytester = planted
    pytester.makepyfile(test_01_preflight="def test_ok():\n    pass\n")
    pytester.runpytest("--tria-target=stage").assert_outcomes(passed=1)
    assert redact(API_KEY) == API_KEY
