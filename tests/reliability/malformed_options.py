"""Malformed ``tria.toml`` files and option values, each with the usage error it must give.

``expected`` is an fnmatch pattern for the problem line after ``ERROR: tria-deploy: `` (``[[]``
stands for a literal ``[``); the remedy is part of every pattern.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CANARY = "Opt7CanaryK2m"
CONFIG = "*/tria.toml: "


@dataclass(frozen=True)
class OptionCase:
    """A config file (``tria.toml`` unless ``files`` names others), options, and the problem."""

    id: str
    toml: str | None
    args: tuple[str, ...]
    expected: str
    files: dict[str, bytes] = field(default_factory=dict)


def _toml(id: str, toml: str, expected: str, *args: str) -> OptionCase:
    return OptionCase(id, toml, args, CONFIG + expected)


def _option(
    id: str, expected: str, *args: str, files: dict[str, bytes] | None = None
) -> OptionCase:
    return OptionCase(id, "", args, expected, files or {})


LOCAL = "[targets.x]\nprovider = 'local'\n"
FILE_CASES = [
    OptionCase(
        "toml-syntax", "[targets.prod\n", (), "*/tria.toml does not parse: *; fix the TOML syntax"
    ),
    _toml(
        "unknown-section",
        "[target.prod]\nprovider = 'local'\n",
        "unknown section [[]target]; known: targets, stages; did you mean 'targets'?",
    ),
    _toml(
        "targets-not-a-table", "targets = 1\n", "[[]targets] must be a table of [[]targets.NAME]*"
    ),
    _toml(
        "target-not-a-table",
        "[targets]\nprod = 'x'\n",
        "targets.prod must be a table, got str; write it as [[]targets.prod] followed by *",
    ),
    _toml(
        "unknown-key",
        LOCAL + "servce_url = 'http://a'\n",
        "targets.x: servce_url: Extra inputs are not permitted; known keys: provider, *; "
        "did you mean 'service_url'?",
    ),
    _toml(
        "unknown-minimums-key",
        LOCAL + "minimums.gpus = 1\n",
        "targets.x: minimums.gpus: Extra inputs are not permitted; known keys: free_disk_mb, "
        "memory_mb, cpus; did you mean 'cpus'?",
    ),
    _toml(
        "secret-beside-unknown-key",
        LOCAL + f"database_url = 'postgresql://u:{CANARY}@db/x'\npasword = '{CANARY}'\n",
        "targets.x: pasword: Extra inputs are not permitted; known keys: *",
    ),
    _toml(
        "protected-string",
        LOCAL + "protected = 'yes'\n",
        "targets.x: protected: Input should be a valid boolean",
    ),
    _toml(
        "service-url-number",
        LOCAL + "service_url = 5\n",
        "targets.x: service_url: Input should be a valid string",
    ),
    _toml(
        "instances-string",
        LOCAL + "instances = 'http://a'\n",
        "targets.x: instances: Input should be a valid list",
    ),
    _toml(
        "service-url-and-instances",
        LOCAL + "service_url = 'http://a'\ninstances = ['http://b']\n",
        "targets.x: give service_url or instances, not both",
    ),
    _toml(
        "target-name-upper-case",
        "[targets.Prod]\nprovider = 'local'\n",
        "targets.Prod: name: String should match pattern *",
    ),
    _toml(
        "unknown-provider",
        "[targets.x]\nprovider = 'docker'\n",
        "targets.x: provider: Input should be 'local', 'containers', 'compose' or 'external'",
    ),
    _toml(
        "external-without-endpoints",
        "[targets.x]\nprovider = 'external'\n",
        "targets.x: provider 'external' needs service_url (or instances), database_url, *",
    ),
    _toml(
        "budget-negative",
        LOCAL + "budgets.readiness_ms = -5\n",
        "targets.x: budgets.readiness_ms: Input should be greater than 0",
    ),
    _toml(
        "budget-word",
        LOCAL + "budgets.readiness_ms = 'fast'\n",
        "targets.x: budgets.readiness_ms: Input should be a valid number*",
    ),
    _toml(
        "budget-infinite",
        LOCAL + "budgets.readiness_ms = inf\n",
        "targets.x: budgets.readiness_ms: Input should be a finite number",
    ),
    _toml(
        "budget-huge",
        LOCAL + "budgets.startup_s = 1e400\n",
        "targets.x: budgets.startup_s: Input should be a finite number",
    ),
    _toml(
        "budget-nan",
        LOCAL + "budgets.openai_ms = nan\n",
        "targets.x: budgets.openai_ms: Input should be a finite number",
    ),
    _toml(
        "extra-budget-word",
        LOCAL + "budgets.p95_ms = 'x'\n",
        "targets.x: budgets: budget 'p95_ms' must be a number, got 'x'",
    ),
    _toml(
        "extra-budget-negative",
        LOCAL + "budgets.p95_ms = -1\n",
        "targets.x: budgets: budget 'p95_ms' must be a finite number greater than 0",
    ),
    _toml(
        "budgets-not-a-table",
        LOCAL + "budgets = 5\n",
        "targets.x: budgets: Input should be a valid dictionary or instance of Budgets",
    ),
    _toml(
        "minimum-cpus-zero",
        LOCAL + "minimums.cpus = 0\n",
        "targets.x: minimums.cpus: Input should be greater than or equal to 1",
    ),
    _toml(
        "critical-unknown",
        LOCAL + "critical = ['postgres']\n",
        "targets.x: critical.0: Input should be 'database', 'redis', 'openai' or 'chroma'",
    ),
    _toml(
        "critical-string",
        LOCAL + "critical = 'redis'\n",
        "targets.x: critical: Input should be a valid list",
    ),
    OptionCase(
        "missing-variable",
        LOCAL + "database_url = '${TRIA_FUZZ_UNSET_DB}'\n",
        ("--tria-target=x",),
        "target 'x': TRIA_FUZZ_UNSET_DB is not set (used by database_url); export "
        "TRIA_FUZZ_UNSET_DB, or write ${TRIA_FUZZ_UNSET_DB:-default} in the config",
    ),
    OptionCase(
        "unclosed-reference",
        LOCAL + "database_url = '${TRIA_FUZZ_UNSET_DB'\n",
        ("--tria-target=x",),
        "target 'x': database_url has a '${' that is no reference; write ${VAR} or ${VAR:-default}",
    ),
    _toml(
        "stage-cycle",
        "[stages.a]\nafter = ['b']\n[stages.b]\nafter = ['a']\n",
        "stages a, b depend on each other in a cycle; remove one of their 'after' entries",
    ),
    _toml(
        "stage-after-itself",
        "[stages.perf]\nafter = ['perf']\n",
        "stages perf depend on each other in a cycle; remove one of their 'after' entries",
    ),
    _toml(
        "stage-after-unknown",
        "[stages.perf]\nafter = ['smok']\n",
        "stage 'perf' comes after unknown stage 'smok'; did you mean 'smoke'?",
    ),
    _toml(
        "stage-name-upper-case",
        "[stages.Perf]\nafter = ['smoke']\n",
        "stage name 'Perf' must match [[]a-z][[]a-z0-9_]*",
    ),
    _toml(
        "stage-unknown-key",
        "[stages.perf]\nafterr = ['smoke']\n",
        "stages.perf: afterr: Extra inputs are not permitted; known keys: after, critical, "
        "description; did you mean 'after'?",
    ),
    _toml(
        "stage-after-string",
        "[stages.perf]\nafter = 'smoke'\n",
        "stages.perf: after: Input should be a valid list",
    ),
    _toml(
        "stage-critical-string",
        "[stages.perf]\nafter = ['smoke']\ncritical = 'no'\n",
        "stages.perf: critical: Input should be a valid boolean",
    ),
    _toml("stages-not-a-table", "stages = []\n", "[[]stages] must be a table of [[]stages.NAME]*"),
    OptionCase(
        "pyproject-tool-tria-not-a-table",
        None,
        ("--tria-target=local",),
        "*/pyproject.toml: [[]tool.tria] must be a table; write [[]tool.tria.targets.NAME] tables",
        {"pyproject.toml": b"[tool]\ntria = 5\n"},
    ),
    OptionCase(
        "config-not-utf8",
        "",
        ("--tria-config=bad.toml",),
        "*/bad.toml is not valid UTF-8 (byte *); save it as UTF-8",
        {"bad.toml": b"[targets.x]\nprovider = '\xff'\n"},
    ),
]
OUT_FILE = {"out.txt": b"not a directory"}
OPTION_CASES = [
    _option(
        "unknown-target",
        "unknown target 'locl'; known: local, containers, compose; did you mean 'local'?",
        "--tria-target=locl",
    ),
    _option(
        "unknown-target-in-ini",
        "unknown target 'lcoal'; known: local, containers, compose; did you mean 'local'?",
        "-o",
        "tria_target=lcoal",
    ),
    _option(
        "empty-target", "unknown target ''; known: local, containers, compose", "--tria-target="
    ),
    _option(
        "unknown-gate",
        "unknown gate mode 'strcit' in --tria-gate; use one of: strict, normal, off; "
        "did you mean 'strict'?",
        "--tria-gate=strcit",
    ),
    _option(
        "unknown-gate-in-ini",
        "unknown gate mode 'hard' in ini key tria_gate; use one of: strict, normal, off",
        "-o",
        "tria_gate=hard",
    ),
    _option(
        "unknown-stage",
        "unknown stage 'smok' in --tria-stage; known: preflight, *; did you mean 'smoke'?",
        "--tria-stage=smok",
    ),
    _option(
        "unknown-stage-in-ini",
        "unknown stage 'db' in ini key tria_stage; known: preflight, *",
        "-o",
        "tria_stage=db",
    ),
    _option(
        "empty-stage", "unknown stage '' in --tria-stage; known: preflight, *", "--tria-stage="
    ),
    _option(
        "config-missing",
        "config file 'missing.toml' not found; check --tria-config",
        "--tria-config=missing.toml",
    ),
    _option(
        "config-is-a-directory",
        "config file '.' is a directory; name a TOML file",
        "--tria-config=.",
    ),
    _option(
        "report-dir-is-a-file",
        "--tria-report-dir 'out.txt' is a file, not a directory; give a directory",
        "--tria-report-dir=out.txt",
        files=OUT_FILE,
    ),
    _option(
        "report-dir-in-ini-is-a-file",
        "ini key tria_report_dir 'out.txt' is a file, not a directory; give a directory",
        "-o",
        "tria_report_dir=out.txt",
        files=OUT_FILE,
    ),
    _option(
        "report-dir-under-a-file",
        "--tria-report-dir 'out.txt/run1' is under the file */out.txt, not a directory; "
        "give a directory",
        "--tria-report-dir=out.txt/run1",
        files=OUT_FILE,
    ),
    _option(
        "boolean-ini-word",
        "ini key tria_no_deps (ini file or -o): *; use true or false",
        "-o",
        "tria_no_deps=maybe",
    ),
]
CASES = [*FILE_CASES, *OPTION_CASES]
