"""Options and ini keys: every bad value is one clear usage error (exit 4, no traceback)."""

from __future__ import annotations

import pytest

from tests.plugin.conftest import QUIET_INI, activate, executed, read_verdict
from tests.reliability.secrets_canaries import assert_no_secret

SHIPPED_LIKE = """
[targets.staging]
service_url = "https://staging.example"
database_url = "${STAGING_DB}"
redis_url = "redis://r"
openai_api_key = "${STAGING_KEY:-sk-placeholder-key}"
chroma_url = "https://chroma"

[targets.prod]
protected = true
service_url = "https://prod.example"
database_url = "${PROD_DB}"
redis_url = "${PROD_REDIS}"
openai_api_key = "k"
chroma_url = "https://chroma"
"""


@pytest.fixture
def configured(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(QUIET_INI)
    pytester.makefile(".toml", tria=SHIPPED_LIKE)
    pytester.makepyfile(test_01_preflight="def test_ok():\n    pass\n")
    return pytester


def _usage_error(result: pytest.RunResult, line: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# Single bad values are rows of tests/reliability/test_malformed_options.py; these need more.


def test_an_unknown_target_is_matched_against_the_configured_ones(
    configured: pytest.Pytester,
) -> None:
    _usage_error(
        configured.runpytest("--tria-target=prd"),
        "ERROR: tria-deploy: unknown target 'prd'; "
        "known: local, containers, compose, staging, prod; did you mean 'prod'?",
    )


def test_several_problems_are_reported_at_once(configured: pytest.Pytester) -> None:
    result = configured.runpytest("--tria-target=nope", "--tria-stage=nope")
    _usage_error(result, "ERROR: tria-deploy: 2 problems:")
    result.stderr.fnmatch_lines(["  - unknown target 'nope'*", "  - unknown stage 'nope'*"])


def test_missing_secret_variables_name_variable_and_target(
    configured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROD_DB", raising=False)
    monkeypatch.delenv("PROD_REDIS", raising=False)
    result = configured.runpytest("--tria-target=prod")
    _usage_error(result, "ERROR: tria-deploy: 2 problems:")
    result.stderr.fnmatch_lines(
        [
            "  - target 'prod': PROD_DB is not set (used by database_url); export PROD_DB, or *",
            "  - target 'prod': PROD_REDIS is not set (used by redis_url)*",
        ]
    )


def test_unselected_targets_need_no_variables(configured: pytest.Pytester) -> None:
    result = configured.runpytest()
    result.assert_outcomes(passed=1)


def test_invalid_target_lists_every_problem(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        tria="[targets.a]\nprovider = 'docker'\n[targets.b]\nprovider = 'external'\n",
    )
    result = pytester.runpytest()
    _usage_error(result, "ERROR: tria-deploy: 2 problems:")
    result.stderr.fnmatch_lines(
        [
            "*targets.a: provider: Input should be 'local', 'containers', 'compose' or 'external'",
            "*targets.b: provider 'external' needs service_url (or instances), database_url, *",
        ]
    )


def test_unknown_stage_in_marker(pytester: pytest.Pytester) -> None:
    activate(pytester)
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.tria_stage('databse')\ndef test_x():\n    pass\n"
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown stage 'databse' in @pytest.mark.tria_stage*database'?"])


def test_help_shows_the_group(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", tria="not toml at all [")
    result = pytester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "deployment verification (tria-deploy):",
            "  --tria-target=NAME*",
            "  --tria-config=PATH*",
            "  --tria-stage=NAME*",
            "  --tria-no-deps*",
            "  --tria-gate=MODE*",
            "  --tria-report-dir=PATH",
            "  --tria-allow-destructive",
        ]
    )
    result.stdout.fnmatch_lines(["  tria_target (args):*", "  tria_gate (string):*"])


def test_header_shows_target_provider_protection_and_stages(
    configured: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROD_DB", "postgresql://u:header-pw-1@db/x")
    monkeypatch.setenv("PROD_REDIS", "redis://r")
    result = configured.runpytest("--tria-target=prod", "--tria-stage=preflight")
    result.stdout.fnmatch_lines(
        [
            "tria-deploy: target prod "
            "(provider external, starts nothing: the target already runs; protected)",
            "tria-deploy: stages preflight and dependencies; gate normal; config */tria.toml",
        ]
    )
    assert_no_secret({"stdout": result.stdout.str()}, {"database password": "header-pw-1"})


def test_ini_keys_in_pyproject(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGING_DB", "postgresql://u:p@h/d")
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        tria_target = ["staging"]
        tria_config = "conf/targets.toml"
        tria_report_dir = "out/verdicts"
        tria_gate = "strict"
        filterwarnings = ["ignore::pytest.PytestAssertRewriteWarning"]
        """
    )
    (pytester.path / "conf").mkdir()
    (pytester.path / "conf" / "targets.toml").write_text(SHIPPED_LIKE)
    pytester.makepyfile(test_02_environment="def test_env():\n    pass\n")
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["tria-deploy: target staging *", "*gate strict*"])
    verdict = read_verdict(pytester, "out/verdicts")
    assert verdict["target"] == "staging"
    assert verdict["gate"] == "strict"
    assert executed(result) == ["test_env"]


def test_tool_tria_in_pyproject(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.tria.targets.edge]
        provider = "local"
        protected = true
        """
    )
    pytester.makepyfile(test_01_preflight="def test_ok():\n    pass\n")
    result = pytester.runpytest("--tria-target=edge")
    result.stdout.fnmatch_lines(
        [
            "tria-deploy: target edge (provider local, starts PostgreSQL*;"
            " versions, ports and logs in the summary and verdict.json once up; protected)"
        ]
    )


def test_verdict_hook_sees_the_redacted_verdict(configured: pytest.Pytester) -> None:
    configured.makeconftest(
        """
        def pytest_tria_verdict(config, verdict):
            with open("seen.txt", "w") as handle:
                handle.write(verdict["verdict"] + " " + verdict["target"])
        """
    )
    configured.runpytest().assert_outcomes(passed=1)
    assert (configured.path / "seen.txt").read_text() == "PASS local"


def test_incompatible_dist_mode_is_warned_about(configured: pytest.Pytester) -> None:
    result = configured.runpytest("-n", "2", "--dist", "loadfile")
    result.stdout.fnmatch_lines(["*tria-deploy: --dist=loadfile may split a target's stages*"])


def test_bad_boolean_ini_value_names_the_key(configured: pytest.Pytester) -> None:
    """tria_no_deps=maybe is a row of the malformed-options table; this is the other key."""
    result = configured.runpytest("-o", "tria_allow_destructive=maybe")
    _usage_error(
        result,
        "ERROR: tria-deploy: ini key tria_allow_destructive (ini file or -o): *; use true or false",
    )


def test_target_problems_do_not_hide_stage_problems(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        tria="[stages.perf]\nafter = ['smok']\n[targets.x]\nprovider = 'local'\nunknown_key = 1\n",
    )
    pytester.makepyfile(test_01_preflight="def test_ok():\n    pass\n")
    result = pytester.runpytest()
    _usage_error(result, "ERROR: tria-deploy: 2 problems:")
    result.stderr.fnmatch_lines(
        [
            "  - */tria.toml: targets.x: unknown_key: Extra inputs are not permitted*",
            "  - */tria.toml: stage 'perf' comes after unknown stage 'smok'; did you mean 'smoke'?",
        ]
    )


def test_a_cycle_names_only_its_own_stages(pytester: pytest.Pytester) -> None:
    """A stage after the cycle cannot run either, but removing its 'after' would not help."""
    pytester.makefile(
        ".toml",
        tria="[stages.a]\nafter = ['b']\n[stages.b]\nafter = ['a']\n"
        "[stages.c]\nafter = ['a']\n[stages.d]\nafter = ['c', 'smoke']\n",
    )
    pytester.makepyfile(test_01_preflight="def test_ok():\n    pass\n")
    result = pytester.runpytest()
    _usage_error(
        result,
        "ERROR: tria-deploy: */tria.toml: stages a, b depend on each other in a cycle; "
        "remove one of their 'after' entries",
    )


@pytest.mark.parametrize(
    ("returned", "shown"),
    [("['perf']", "[[]'perf'[]]"), ("Stage('perf')", "Stage(name='perf'*")],
)
def test_bad_stage_hook_return_is_a_usage_error(
    configured: pytest.Pytester, returned: str, shown: str
) -> None:
    configured.makeconftest(
        f"from pytest_tria_deploy import Stage\n\ndef pytest_tria_stages(config):\n"
        f"    return {returned}\n"
    )
    result = configured.runpytest()
    _usage_error(
        result,
        f"ERROR: tria-deploy: a pytest_tria_stages hook returned {shown}; it must return a list "
        "of pytest_tria_deploy.Stage, e.g. *",
    )


def test_dist_each_is_refused(configured: pytest.Pytester) -> None:
    result = configured.runpytest("-n", "2", "--dist", "each")
    _usage_error(result, "ERROR: tria-deploy: --dist=each runs every test on every worker*")


def test_stage_descriptions_are_marker_help(configured: pytest.Pytester) -> None:
    configured.makefile(".toml", tria='[stages.perf]\nafter = ["smoke"]\ndescription = "p99s"\n')
    result = configured.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.database: tria-deploy stage: PostgreSQL: connect, schema, migrations",
            "@pytest.mark.perf: tria-deploy stage: p99s",
        ],
        consecutive=False,
    )
