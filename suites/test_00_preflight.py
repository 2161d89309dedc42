"""Preflight: the runner can run the gate, the target's env file is sound, the host has room."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import allure
import httpx
import psutil
import pytest

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import (
    DIAGNOSTICS,
    MB,
    Record,
    Warn,
    fail_listing,
    read_env_file,
)
from pytest_tria_deploy.provision.docker import DOCKER_PROVIDERS, check_docker
from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.report.attach import attach_json
from pytest_tria_deploy.runstate import settings_of
from pytest_tria_deploy.targets import Minimums, Target

DIAGNOSTICS_TIMEOUT = 10.0


# The minimums (tria.toml keys), what each measures, its unit, and its key in diagnostics' host.
RESOURCES = {
    "free_disk_mb": ("free disk", "MB", "disk_free_mb"),
    "memory_mb": ("available memory", "MB", "memory_available_mb"),
    "cpus": ("CPUs", "", "cpus"),
}


def shortfalls(where: str, found: dict[str, float], least: Minimums) -> list[str]:
    """One line per resource below the target's minimum, naming the tria.toml key to change."""
    lines = []
    for key, have in found.items():
        what, unit, _ = RESOURCES[key]
        need = float(getattr(least, key))
        if have < need:
            lines.append(
                f"{where}: {have:g}{unit and ' ' + unit} {what}, below the target's minimum of "
                f"{need:g}{unit and ' ' + unit} — free some up, or lower minimums.{key}"
            )
    return lines


def test_docker_available(tria_target: Target) -> None:
    """The Docker CLI and engine are present (container and compose targets only)."""
    if tria_target.provider not in DOCKER_PROVIDERS:
        pytest.skip(f"a {tria_target.provider} target runs no containers: Docker is not needed")
    provider = tria_target.provider
    status = check_docker(compose=provider == "compose")
    problems = [p for p in [status.problem_for(provider)] if p]
    if shutil.which("docker") is None:
        problems.append("the docker CLI is not on PATH — install it, or use --tria-target=local")
    attach_json("docker", {"engine": status.engine_version, "compose": status.compose_version})
    if problems:
        fail_listing(problems)


def test_runner_resources(
    request: pytest.FixtureRequest, tria_target: Target, tria_record: Record
) -> None:
    """The runner's free disk, memory and CPUs meet the target's minimums."""
    where = settings_of(request.config).report_dir
    while not where.exists():  # the report dir is made later; its volume is what counts
        where = where.parent
    found = {
        "free_disk_mb": round(psutil.disk_usage(str(where)).free / MB),
        "memory_mb": round(psutil.virtual_memory().available / MB),
        "cpus": psutil.cpu_count() or 1,
    }
    for key, value in found.items():
        _, unit, name = RESOURCES[key]
        tria_record(f"runner.{name}", value, unit)
    problems = shortfalls(f"runner ({where})", found, tria_target.minimums)
    if problems:
        fail_listing(problems)


def test_env_file_parses(target_env_file: Path | None, tria_record: Record) -> None:
    """The env file the target names exists and parses, with no duplicate keys."""
    if target_env_file is None:
        pytest.skip("the target names no env_file")
    if not target_env_file.is_file():
        fail_listing([f"env file {target_env_file} does not exist — create it, or fix env_file"])
    try:
        parsed = read_env_file(target_env_file)
    except (OSError, UnicodeDecodeError) as exc:
        fail_listing([f"env file {target_env_file} cannot be read: {type(exc).__name__}"])
    tria_record("env_file.variables", len(parsed.values), "")
    problems = [
        f"{target_env_file}:{line}: not a KEY=value line — fix or remove it"
        for line in parsed.unparsed
    ]
    problems += [
        f"{target_env_file}: {key} is set {len(lines)} times (lines "
        f"{', '.join(map(str, lines))}) — keep one: only the last would count"
        for key, lines in parsed.duplicates.items()
    ]
    if problems:
        fail_listing(problems)


async def test_service_host_resources(
    tria_target: Target,
    tria_endpoints: Endpoints,
    tria_instance: int,
    tria_record: Record,
    tria_warn: Warn,
) -> None:
    """The service host's resources, as its diagnostics report them, meet the minimums."""
    if tria_target.provider != "external":
        pytest.skip("the service runs on this runner: its resources are the runner's")
    if tria_endpoints.diagnostics_token is None:
        pytest.skip("the target gives no diagnostics_token, so its diagnostics cannot be read")
    url = tria_endpoints.service_urls[tria_instance]
    token = tria_endpoints.diagnostics_token.get_secret_value()
    with allure.step("read the host section of the service's diagnostics"):
        try:
            async with httpx.AsyncClient(base_url=url, timeout=DIAGNOSTICS_TIMEOUT) as client:
                headers = {"Authorization": f"Bearer {token}"}
                answer = await client.get(DIAGNOSTICS, headers=headers)
        except httpx.HTTPError as exc:
            tria_warn(f"host resources unknown: {redact(url)}{DIAGNOSTICS}: {type(exc).__name__}")
            return
        if answer.status_code in (401, 403):
            fail_listing(
                [
                    f"{redact(url)} refused the diagnostics token ({answer.status_code}) — set "
                    "the target's diagnostics_token to the service's TRIA_DIAGNOSTICS_TOKEN"
                ]
            )
        host = _details(answer).get("host")
        if not isinstance(host, dict):
            pytest.skip(f"{redact(url)}: diagnostics report no host section (an older service?)")
        attach_json("host", host)
    with allure.step("compare with the target's minimums"):
        found: dict[str, float] = {}
        for key, (what, unit, reported) in RESOURCES.items():
            value = host.get(reported)
            if isinstance(value, int | float):
                found[key] = value
                tria_record(f"host.{reported}", value, unit)
            else:
                cause = (host.get("errors") or {}).get(reported, "not reported")
                tria_warn(f"host of {redact(url)}: {what} unknown ({cause})")
        problems = shortfalls(f"host of {redact(url)}", found, tria_target.minimums)
        if problems:
            fail_listing(problems)


def _details(answer: httpx.Response) -> dict[str, Any]:
    """The diagnostics body's details, or an empty dict when the body is not one."""
    try:
        details = answer.json().get("details", {})
    except (ValueError, AttributeError):
        return {}
    return details if isinstance(details, dict) else {}
