"""The local provider through the Provider protocol: a full stack from wheel or system binaries,
what it reports about itself, and nothing left running after stop()."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import psutil
import pytest

from pytest_tria_deploy.provision.base import Provider
from pytest_tria_deploy.provision.local import LocalProvider
from pytest_tria_deploy.provision.managed import wait_gone
from pytest_tria_deploy.provision.processes import PG_BINDIR_ENV, REDIS_SERVER_ENV
from pytest_tria_deploy.targets import BUILTIN_TARGETS
from tests.provision.conftest import SYSTEM_PG, SYSTEM_REDIS, use_binaries
from tests.reliability.secrets_canaries import assert_no_secret

FACT = re.compile(
    r"(?P<version>.+) on 127\.0\.0\.1:(?P<port>\d+) \(pid (?P<pid>\d+)\); log (?P<log>.+)"
)


@pytest.mark.parametrize(
    ("source", "postgres", "redis"),
    [("wheel", "PostgreSQL 18.", "Redis 6."), ("system", "PostgreSQL 15.", "Redis 7.")],
)
def test_a_full_stack_starts_reports_itself_and_stops(
    tmp_path: Path,
    isolated_state: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    postgres: str,
    redis: str,
) -> None:
    use_binaries(monkeypatch, PG_BINDIR_ENV, SYSTEM_PG, source)
    use_binaries(monkeypatch, REDIS_SERVER_ENV, SYSTEM_REDIS, source)
    provider: Provider = LocalProvider(tmp_path)
    assert set(provider.describe()) == {"provider", "starts"}  # nothing runs yet

    endpoints = provider.start(BUILTIN_TARGETS["local"])
    try:
        ready = httpx.get(f"{endpoints.service_urls[0]}/api/v1/health/readiness", timeout=10)
        assert ready.status_code == 200
        facts = provider.describe()
        parts = {name: FACT.fullmatch(facts[name]) for name in COMPONENTS}
        assert all(parts.values()), facts
        found = {name: match for name, match in parts.items() if match is not None}
        assert found["postgres"]["version"].startswith(postgres)
        assert found["redis"]["version"].startswith(redis)
        assert found["chroma"]["version"].startswith("Chroma ")
        assert found["service"]["version"].startswith("tria-service ")
        assert endpoints.service_urls[0].endswith(f":{found['service']['port']}")
        assert f":{found['redis']['port']}/" in endpoints.redis_url.get_secret_value()
        for match in found.values():
            assert Path(match["log"]).parent == tmp_path
            assert Path(match["log"]).exists()
        assert re.fullmatch(r"every component ready in \d+\.\d\ds", facts["startup"])
        assert_no_secret(
            {f"describe()[{name!r}]": fact for name, fact in facts.items()},
            {f"endpoints secret {n}": secret for n, secret in enumerate(endpoints.secrets())},
        )
        pids = [int(match["pid"]) for match in found.values()]
        assert all(psutil.pid_exists(pid) for pid in pids)
    finally:
        provider.stop()
    assert all(wait_gone(pid, 5.0) for pid in pids)
    assert not list((isolated_state / "pids").glob("*.json"))
    assert set(provider.describe()) == {"provider", "starts"}


COMPONENTS = ("service", "postgres", "redis", "chroma", "openai")
