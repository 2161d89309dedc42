"""The Allure files allure-pytest does not write: environment.properties, categories.json and
executor.json, in the run's Allure results directory (the default one or the user's).

Written once, on the controller, from the verdict hook: the verdict is already redacted, and
every value is redacted again on the way out, since the executor and the versions come from the
environment (CI variables, the host name) and the service's own answers.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_tria_deploy.redact import redact, redact_tree
from pytest_tria_deploy.report.allure_categories import CATEGORIES
from pytest_tria_deploy.report.writing import WriteProblems, write_atomic

ENVIRONMENT_FILE = "environment.properties"
CATEGORIES_FILE = "categories.json"
EXECUTOR_FILE = "executor.json"
# Properties the health stage records from readiness (suites/test_60_health.py).
RELEASE_PROPERTIES = ("service.version", "service.release")
UNKNOWN = "unknown"


def results_dir(config: pytest.Config) -> Path | None:
    """Where allure-pytest writes this run's results, or None when it writes none."""
    if not config.pluginmanager.hasplugin("allure_pytest"):
        return None
    where = getattr(config.option, "allure_report_dir", None)
    return Path(os.path.abspath(where)) if where else None


def environment(verdict: Mapping[str, Any]) -> dict[str, str]:
    """What was verified and with what: target, provider, the service's version and release as
    its readiness stated them, the suites' commit, and the versions of the tools.

    Each instance of a target states its own version: a rollout caught half-way shows every
    version it found ("2.0.0, 2.1.0"), in the order the instances were checked, not the last."""
    values = {
        "target": str(verdict["target"]),
        "provider": str(verdict["provider"]),
        "gate": str(verdict["gate"]),
    }
    targets = verdict["targets"]
    for entry in targets:
        suffix = "" if len(targets) == 1 else f".{entry['target']}"
        for name in RELEASE_PROPERTIES:
            values[name + suffix] = ", ".join(_recorded(entry, name)) or UNKNOWN
    values["suites.git_sha"] = str(verdict.get("suites_git_sha") or UNKNOWN)
    values["python.version"] = platform.python_version()
    values["pytest.version"] = pytest.__version__
    values["tria_deploy.version"] = str(verdict["tool"]["version"])
    return {key: redact(value) for key, value in values.items()}


def _recorded(target: Mapping[str, Any], name: str) -> list[str]:
    """The distinct values the target's tests recorded as ``name``, in the order they ran."""
    found = (
        str(test["properties"][name])
        for stage in target["stages"]
        for test in stage["tests"]
        if (test.get("properties") or {}).get(name) not in (None, "")
    )
    return list(dict.fromkeys(found))


def executor(env: Mapping[str, str], host: str) -> dict[str, Any]:
    """Allure's executor.json: the CI build that ran the gate (GitHub Actions, GitLab CI), else
    the local host."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        project = f"{server}/{env['GITHUB_REPOSITORY']}"
        number = env.get("GITHUB_RUN_NUMBER", "")
        run_id = env.get("GITHUB_RUN_ID")
        found: dict[str, Any] = {
            "name": "GitHub Actions",
            "type": "github",
            "url": project,
            "buildOrder": int(number) if number.isdigit() else None,
            "buildName": f"{env.get('GITHUB_WORKFLOW') or 'workflow'} #{number}".rstrip(" #"),
            "buildUrl": f"{project}/actions/runs/{run_id}" if run_id else None,
        }
    elif env.get("GITLAB_CI") == "true":
        number = env.get("CI_PIPELINE_IID", "")
        found = {
            "name": "GitLab CI",
            "type": "gitlab",
            "url": env.get("CI_PROJECT_URL"),
            "buildOrder": int(number) if number.isdigit() else None,
            "buildName": f"{env.get('CI_JOB_NAME') or 'pipeline'} #{number}".rstrip(" #"),
            "buildUrl": env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL"),
        }
    else:
        found = {"name": host, "type": "local"}
    cleaned: dict[str, Any] = redact_tree({k: v for k, v in found.items() if v not in (None, "")})
    return cleaned


def properties_text(values: Mapping[str, str]) -> str:
    """Java ``.properties`` text (what Allure 2 and 3 read): ASCII, anything else as ``\\uXXXX``;
    backslashes and line breaks escaped, and in keys the separators too (values keep ``=`` and
    ``:`` as they are, which the format allows and readers without escape support show right)."""
    return "".join(f"{_escape(k, key=True)}={_escape(v, key=False)}\n" for k, v in values.items())


def _escape(text: str, *, key: bool) -> str:
    out = []
    for index, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char in "\n\r\t\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[char])
        elif (key and char in "=:#! ") or (char == " " and index == 0):
            out.append("\\" + char)
        elif 0x20 <= ord(char) < 0x7F:
            out.append(char)
        else:
            data = char.encode("utf-16-be")
            out += [f"\\u{data[i] << 8 | data[i + 1]:04x}" for i in range(0, len(data), 2)]
    return "".join(out)


def write_extras(
    directory: Path, verdict: Mapping[str, Any], env: Mapping[str, str], host: str
) -> list[Path]:
    """Write the three files into ``directory``; returns their paths."""
    texts = {
        ENVIRONMENT_FILE: properties_text(environment(verdict)),
        CATEGORIES_FILE: json.dumps(list(CATEGORIES), indent=2) + "\n",
        EXECUTOR_FILE: json.dumps(executor(env, host), indent=2) + "\n",
    }
    return [
        write_atomic(directory / name, text, "ascii" if name == ENVIRONMENT_FILE else "utf-8")
        for name, text in texts.items()
    ]


class AllureFiles(WriteProblems):
    """Writes the files from the verdict hook (called on the controller only). A file that cannot
    be written never changes the verdict: the problem is said in the terminal summary."""

    def pytest_tria_verdict(self, config: pytest.Config, verdict: dict[str, Any]) -> None:
        directory = results_dir(config)
        if directory is None or config.option.collectonly:
            return
        try:
            write_extras(directory, verdict, os.environ, socket.gethostname())
        except OSError as exc:
            self.note(f"Allure files were not written: {exc}")
