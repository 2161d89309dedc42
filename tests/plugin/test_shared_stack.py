"""Under pytest-xdist, the workers of a run share one local stack, started once, gone at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_tria_deploy.provision.managed import wait_gone
from tests.plugin.conftest import QUIET_INI, activate, read_verdict
from tests.provision.conftest import private_state_dir
from tests.reliability.secrets_canaries import assert_no_secret

# Every test writes down what it sees: its worker, the endpoints, and the servers that run (from
# the pid files in the run's private state dir, so no other run's servers are counted).
SEEN = """
import json, os, warnings
from pathlib import Path
from urllib.parse import urlsplit

def see(endpoints, name):
    password = urlsplit(endpoints.database_url.get_secret_value()).password
    # Bare, so only a registered secret is masked: the attaching worker must register them too.
    warnings.warn(f"{os.environ['PYTEST_XDIST_WORKER']} saw {password}")
    pids = sorted(
        int(path.stem.rsplit("-", 1)[1])
        for path in (Path(os.environ["TRIA_STATE_DIR"]) / "pids").glob("*.json")
    )
    record = {
        "worker": os.environ["PYTEST_XDIST_WORKER"],
        "service": endpoints.service_urls[0],
        "database": endpoints.database_url.get_secret_value(),
        "pids": pids,
    }
    Path(os.environ["SEEN_DIR"], f"{name}.json").write_text(json.dumps(record))
"""


@pytest.fixture
def private_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("SEEN_DIR", str(tmp_path))
    with private_state_dir(monkeypatch) as path:
        yield path


def test_two_workers_share_one_stack_started_once(
    pytester: pytest.Pytester, private_state: Path, tmp_path: Path
) -> None:
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(
        seen=SEEN,
        test_anywhere="""
        import pytest
        from seen import see

        @pytest.mark.parametrize("n", range(4))
        def test_endpoints(tria_endpoints, n):
            see(tria_endpoints, f"anywhere-{n}")
        """,
        test_07_health="""
        from seen import see

        async def test_ready(service, tria_endpoints):
            assert (await service.get("/api/v1/health/readiness")).status_code == 200
            see(tria_endpoints, "health")
        """,
    )
    result = pytester.runpytest("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=5)

    seen: list[dict[str, Any]] = [
        json.loads(path.read_text()) for path in sorted(tmp_path.glob("*.json"))
    ]
    assert len(seen) == 5
    assert {record["worker"] for record in seen} == {"gw0", "gw1"}
    assert len({record["service"] for record in seen}) == 1
    assert len({record["database"] for record in seen}) == 1
    pids = {pid for record in seen for pid in record["pids"]}
    assert len(pids) == 5, "one stack: PostgreSQL, Redis, Chroma, the stand-in and the service"
    assert all(record["pids"] == sorted(pids) for record in seen)

    assert all(wait_gone(pid, 10.0) for pid in pids), "the last worker out left servers running"
    assert not list((private_state / "pids").glob("*.json"))
    basetemp = pytester.path.parent / "basetemp"
    assert not list(basetemp.glob("tria-stack-*.json")), "the shared state outlived the run"

    # What was started reaches the controller's summary and verdict.json, without secrets.
    facts = read_verdict(pytester)["targets"][0]["provided"]
    assert set(facts) >= {"provider", "startup", "service", "postgres", "redis", "chroma", "openai"}
    port = seen[0]["service"].rsplit(":", 1)[1]
    assert f"on 127.0.0.1:{port} (pid " in facts["service"]
    result.stdout.fnmatch_lines(
        ["*= tria-deploy: local (local) =*", "startup: every component ready in *s"]
    )
    result.stdout.fnmatch_lines(["postgres: PostgreSQL * on 127.0.0.1:* (pid *); log */postgres-*"])
    password = seen[0]["database"].split(":")[2].split("@")[0]
    verdict_json = (pytester.path / "reports" / "verdict.json").read_text()
    assert_no_secret(
        {"stdout": result.stdout.str(), "verdict.json": verdict_json},
        {"database password": password},
    )
    result.stdout.fnmatch_lines_random(["*gw0 saw ***", "*gw1 saw ***"])


def test_a_failed_start_is_tried_once_and_every_worker_reports_it(
    pytester: pytest.Pytester, private_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker that starts the stack records its failure; the other raises the same cause at
    once instead of starting (and failing) all over again."""
    attempts = tmp_path / "attempts"
    broken = tmp_path / "redis-server"
    broken.write_text(f'#!/bin/sh\necho started >> "{attempts}"\necho "fatal: no luck"\nexit 3\n')
    broken.chmod(0o755)
    monkeypatch.setenv("TRIA_REDIS_SERVER", str(broken))
    pytester.makeini(QUIET_INI)
    activate(pytester)
    pytester.makepyfile(
        test_anywhere="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_endpoints(tria_endpoints, n):
            pass
        """
    )
    result = pytester.runpytest("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(errors=4)
    assert attempts.read_text() == "started\n"
    said = "target 'local': provider 'local' failed: redis failed to start: exited with code 3"
    assert result.outlines.count(said) == 4
    result.stdout.fnmatch_lines_random(["[[]gw0[]] *", "[[]gw1[]] *"])  # both workers reported
    assert not list((private_state / "pids").glob("*.json"))
