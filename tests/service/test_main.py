"""`python -m tria_service` configuration: the server's own variables and the grace-period split."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from pathlib import Path

import pytest
import uvicorn
from tria_service.__main__ import (
    EXIT_BAD_CONFIG,
    EXIT_INTERRUPTED,
    ServerSettings,
    ShutdownBudget,
    load_configuration,
)
from tria_service.config import ConfigError

from pytest_tria_deploy.provision.processes import start_service
from tests.service.helpers import NO_DRAIN_DELAY, run_python

HOST_PROBLEM = "TRIA_HOST: must be a host name or address — e.g. 127.0.0.1 or 0.0.0.0"


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, service_env: Mapping[str, str]
) -> pytest.MonkeyPatch:
    """The shared service env in os.environ, run from an empty directory (no stray .env)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRIA_ENV_FILE", raising=False)
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_defaults_listen_on_localhost_8000(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("TRIA_HOST", raising=False)
    environment.delenv("TRIA_PORT", raising=False)
    environment.delenv("TRIA_SHUTDOWN_DRAIN_DELAY", raising=False)
    environment.delenv("TRIA_SHUTDOWN_GRACE", raising=False)
    settings, server = load_configuration()
    assert (server.tria_host, server.tria_port) == ("127.0.0.1", 8000)
    assert settings.tria_shutdown_grace == 20
    assert server.drain_delay(settings.tria_shutdown_grace) == 5  # long enough for an LB to see


@pytest.mark.parametrize(
    ("grace", "delay", "expected"),
    [("8", None, 2.0), ("60", None, 5.0), ("20", "0", 0.0), ("20", "7.5", 7.5)],
)
def test_the_drain_delay_defaults_to_a_share_of_the_grace_and_may_be_set(
    environment: pytest.MonkeyPatch, grace: str, delay: str | None, expected: float
) -> None:
    environment.setenv("TRIA_SHUTDOWN_GRACE", grace)
    if delay is None:
        environment.delenv("TRIA_SHUTDOWN_DRAIN_DELAY", raising=False)
    else:
        environment.setenv("TRIA_SHUTDOWN_DRAIN_DELAY", delay)
    settings, server = load_configuration()
    assert server.drain_delay(settings.tria_shutdown_grace) == expected


def test_every_server_variable_is_named_with_its_fix_when_invalid(
    environment: pytest.MonkeyPatch,
) -> None:
    bad = {
        "TRIA_HOST": "",
        "TRIA_PORT": "70000",
        "TRIA_SHUTDOWN_DRAIN_DELAY": "-1",
        "TRIA_LOG_LEVEL": "chatty",
        "TRIA_FORWARDED_ALLOW_IPS": "10.0.0.300",
    }
    assert set(bad) == {name.upper() for name in ServerSettings.model_fields}
    for name, value in bad.items():
        environment.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_configuration()
    problems = caught.value.problems
    assert len(problems) == len(bad)
    for name, problem in zip(sorted(bad), problems, strict=True):
        assert problem.startswith(f"{name}: must be ")
        assert " — e.g. " in problem
    assert "chatty" not in str(caught.value)
    assert "10.0.0.300" not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    ["not a host", "h" * 300, "h" * 64 + ".internal", "[::1]", "127.0.0.1:8000", "/run/tria.sock"],
    ids=["words", "huge", "long-label", "brackets", "with-port", "socket-path"],
)
def test_a_host_that_is_no_name_nor_address_is_refused_before_startup(
    environment: pytest.MonkeyPatch, value: str
) -> None:
    environment.setenv("TRIA_HOST", value)
    with pytest.raises(ConfigError) as caught:
        load_configuration()
    assert caught.value.problems == [HOST_PROBLEM]


@pytest.mark.parametrize(
    "value", ["0.0.0.0", "::", "::1", "fe80::1%lo", "localhost", "tria_api-1.svc.internal."]
)
def test_host_names_and_addresses_are_accepted(environment: pytest.MonkeyPatch, value: str) -> None:
    environment.setenv("TRIA_HOST", value)
    _, server = load_configuration()
    assert server.tria_host == value


def test_a_label_uvicorn_could_not_encode_exits_2_without_a_traceback(
    tmp_path: Path, service_env: Mapping[str, str]
) -> None:
    """Before it was checked, the whole startup ran and then uvicorn died with a UnicodeError."""
    done = run_python(
        "-m", "tria_service", cwd=tmp_path, env={**service_env, "TRIA_HOST": "h" * 64}
    )
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_BAD_CONFIG, output
    assert f"  - {HOST_PROBLEM}" in done.stderr.splitlines()
    assert "Traceback" not in output
    assert "startup" not in output  # refused before anything started


@pytest.mark.parametrize(
    ("value", "trusted"),
    [
        (None, []),  # not even loopback, unlike uvicorn's own default
        ("", []),
        ("10.0.0.5, 10.1.0.0/16,::1", ["10.0.0.5", "10.1.0.0/16", "::1"]),
        ("*", ["*"]),
    ],
)
def test_x_forwarded_for_is_trusted_only_from_the_listed_proxies(
    environment: pytest.MonkeyPatch, value: str | None, trusted: list[str]
) -> None:
    environment.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own variable has no say
    if value is None:
        environment.delenv("TRIA_FORWARDED_ALLOW_IPS", raising=False)
    else:
        environment.setenv("TRIA_FORWARDED_ALLOW_IPS", value)
    _, server = load_configuration()
    options = server.proxy_options()
    assert options == {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}
    config = uvicorn.Config("tria_service.app:create_app", **options)
    assert (config.proxy_headers, config.forwarded_allow_ips) == (bool(trusted), trusted)


@pytest.mark.parametrize("value", ["proxy.internal", "*,10.0.0.1", "10.0.0.0/33", "10.0.0.5;"])
def test_a_proxy_list_uvicorn_would_misread_is_refused(
    environment: pytest.MonkeyPatch, value: str
) -> None:
    environment.setenv("TRIA_FORWARDED_ALLOW_IPS", value)
    with pytest.raises(ConfigError) as caught:
        load_configuration()
    (problem,) = caught.value.problems
    assert problem.startswith("TRIA_FORWARDED_ALLOW_IPS: must be a comma list of proxy IP")


def test_service_and_server_problems_are_reported_together(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("TRIA_PORT", "http")
    environment.setenv("TRIA_LOG_LEVEL", "loud")
    environment.setenv("TRIA_HEALTH_TTL", "0")
    with pytest.raises(ConfigError) as caught:
        load_configuration()
    message = str(caught.value)
    assert "3 problems" in message
    for var in ("TRIA_PORT:", "TRIA_LOG_LEVEL:", "TRIA_HEALTH_TTL:"):
        assert var in message
    assert "loud" not in message


def test_a_drain_delay_longer_than_the_grace_is_refused(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("TRIA_SHUTDOWN_GRACE", "5")
    environment.setenv("TRIA_SHUTDOWN_DRAIN_DELAY", "6")
    with pytest.raises(ConfigError, match="TRIA_SHUTDOWN_DRAIN_DELAY: is longer than"):
        load_configuration()


@pytest.mark.parametrize(
    ("grace", "delay", "connection_drain", "callbacks"),
    [
        (20.0, 0.0, 15, 5.0),
        (10.0, 1.5, 6, 2.125),
        (2.0, 0.0, 1, 0.5),
        (2.0, 0.5, 1, 0.375),
    ],
)
def test_the_grace_period_is_split_so_the_whole_shutdown_fits_it(
    grace: float, delay: float, connection_drain: int, callbacks: float
) -> None:
    budget = ShutdownBudget.split(grace, delay)
    assert budget == ShutdownBudget(delay, connection_drain, callbacks)
    assert budget.drain_delay + budget.connection_drain + budget.callbacks <= grace


def test_ctrl_c_stops_the_service_cleanly_with_exit_code_130(
    tmp_path: Path, service_env: Mapping[str, str]
) -> None:
    server = start_service(tmp_path, {**service_env, **NO_DRAIN_DELAY})
    try:
        os.kill(server.process.pid, signal.SIGINT)
        code = server.process.wait(30)
    finally:
        server.stop()
    log = server.process.log_path.read_text()

    assert code == EXIT_INTERRUPTED, log
    assert "Traceback" not in log
    assert "KeyboardInterrupt" not in log
    assert "shutdown_complete" in log
