"""Malformed `tria.toml` files and option values: each stops the run before collection with a
usage error (exit 4) that says what is wrong and what to do, with no traceback and no secret."""

from __future__ import annotations

import re

import pytest

from tests.plugin.conftest import QUIET_INI
from tests.reliability.malformed_options import CANARY, CASES, OptionCase
from tests.reliability.secrets_canaries import assert_no_secret

# Words by which a problem line tells the user what to do (every table row spells its own out).
REMEDY = re.compile(
    r"; (known|did you mean|use|give|write|export|check|fix|save|name|remove)\b"
    r"|should (be|match)|must (be|match)|needs |give "
)


def test_the_table_covers_files_and_options_once_each() -> None:
    """Every row has its own id, and the table is not a token one."""
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len([c for c in CASES if c.toml not in (None, "")]) >= 25
    assert len([c for c in CASES if c.args]) >= 15


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_each_malformed_input_is_a_usage_error_with_a_remedy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: OptionCase
) -> None:
    """A malformed config or option value stops the run with exit 4 and one line with a remedy."""
    monkeypatch.delenv("TRIA_FUZZ_UNSET_DB", raising=False)
    pytester.makeini(QUIET_INI)
    if case.toml is not None:
        pytester.makefile(".toml", tria=case.toml)
    for name, content in case.files.items():
        (pytester.path / name).write_bytes(content)
    pytester.makepyfile(test_01_preflight="def test_ok():\n    pass\n")

    result = pytester.runpytest(*case.args)

    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    result.stderr.fnmatch_lines([f"ERROR: tria-deploy: {case.expected}"])
    problem = next(line for line in result.stderr.lines if line.startswith("ERROR: tria-deploy:"))
    assert REMEDY.search(problem), problem
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    assert_no_secret({"the run's output": output}, {"the canary": CANARY})
    assert not re.search(r"\d+ passed", output)  # stopped before any test ran
