"""`python -m tria_service` configuration: the server's own variables and the grace-period split."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from tria_service.__main__ import ShutdownBudget, load_configuration
from tria_service.config import ConfigError


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
    settings, server = load_configuration()
    assert (server.tria_host, server.tria_port) == ("127.0.0.1", 8000)
    assert server.tria_shutdown_drain_delay == 0
    assert settings.tria_shutdown_grace == 20


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
        (0.0, 0.0, 0, 0.1),
    ],
)
def test_the_grace_period_is_split_so_the_whole_shutdown_fits_it(
    grace: float, delay: float, connection_drain: int, callbacks: float
) -> None:
    budget = ShutdownBudget.split(grace, delay)
    assert budget == ShutdownBudget(delay, connection_drain, callbacks)
    if grace:
        assert budget.drain_delay + budget.connection_drain + budget.callbacks <= grace
