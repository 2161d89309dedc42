"""The readiness wait the containers and compose providers share, against real local servers."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.provision import readiness
from pytest_tria_deploy.provision.errors import ComponentStartError
from pytest_tria_deploy.provision.managed import free_port
from pytest_tria_deploy.provision.processes import ServiceServer
from pytest_tria_deploy.provision.readiness import first_failure, stack_checks, wait_until_ready
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from tests.reliability.secrets_canaries import assert_no_secret

# The password in the broken URLs: the failure names the component, never shows this.
PASSWORD = "pw-not-shown"


def _endpoints(deps: DependencyEndpoints, service_url: str, **changes: str) -> Endpoints:
    values = {
        "database_url": deps.database_url,
        "redis_url": deps.redis_url,
        "chroma_url": deps.chroma_url,
        "openai_base_url": deps.openai_base_url,
        "openai_api_key": deps.openai_api_key,
        **changes,
    }
    secret = ("database_url", "redis_url", "openai_api_key")
    return Endpoints(
        service_urls=[service_url],
        **{k: SecretStr(v) if k in secret else v for k, v in values.items()},  # type: ignore[arg-type]
    )


def _failure(component: str, cause: str) -> ComponentStartError:
    """As a provider builds it: the component's log tail, its secrets masked."""
    tail = [f"last line of {component}"]
    return ComponentStartError(component, cause, tail, secrets=[PASSWORD])


def test_a_ready_stack_passes_every_check(
    deps: DependencyEndpoints, running_service: ServiceServer
) -> None:
    endpoints = _endpoints(deps, running_service.url)
    checks = stack_checks(endpoints)
    assert [c.component for c in checks] == ["postgres", "redis", "chroma", "openai", "service"]
    assert first_failure(checks) is None
    wait_until_ready(checks, 5.0, _failure)


@pytest.mark.parametrize(
    ("component", "change"),
    [
        ("postgres", "database_url"),
        ("redis", "redis_url"),
        ("chroma", "chroma_url"),
        ("openai", "openai_base_url"),
    ],
)
def test_a_dead_dependency_is_named_with_its_last_error(
    deps: DependencyEndpoints, running_service: ServiceServer, component: str, change: str
) -> None:
    closed = free_port()
    broken = {
        "database_url": f"postgresql://tria:{PASSWORD}@127.0.0.1:{closed}/tria",
        "redis_url": f"redis://:{PASSWORD}@127.0.0.1:{closed}/0",
        "chroma_url": f"http://127.0.0.1:{closed}",
        "openai_base_url": f"http://127.0.0.1:{closed}/v1",
    }
    checks = stack_checks(_endpoints(deps, running_service.url, **{change: broken[change]}))
    with pytest.raises(ComponentStartError) as caught:
        wait_until_ready(checks, 0.5, _failure)
    error = caught.value
    assert error.component == component
    assert error.cause.startswith("not ready after 0.5s (last error: ")
    assert error.log_tail == [f"last line of {component}"]
    assert_no_secret({"the start error": str(error)}, {"the URL's password": PASSWORD})


def test_a_wrong_openai_key_is_not_ready(
    deps: DependencyEndpoints, running_service: ServiceServer
) -> None:
    checks = stack_checks(_endpoints(deps, running_service.url, openai_api_key="sk-wrong-key-0000"))
    failure = first_failure(checks)
    assert failure is not None
    assert failure[0] == "openai"
    assert "401" in failure[1]


def test_an_exited_component_fails_the_wait_at_once(deps: DependencyEndpoints) -> None:
    checks = stack_checks(_endpoints(deps, f"http://127.0.0.1:{free_port()}"))
    started = time.monotonic()
    with pytest.raises(ComponentStartError) as caught:
        wait_until_ready(checks, 60.0, _failure, exited=lambda: ("service", "exited with code 1"))
    assert time.monotonic() - started < 30  # not the 60 s the wait would otherwise allow
    assert str(caught.value).startswith("service failed to start: exited with code 1")
    assert caught.value.log_tail == ["last line of service"]


# With probes allowed this long, only the wait's deadline can end a pass in time.
UNCAPPED_PROBE = 30.0
SHORT_WAIT = 1.0
# The wait's deadline firing is the behaviour, so the bound is measured, generously.
GENEROUS_BOUND = 8.0


@pytest.mark.parametrize("component", ["postgres", "service"])
def test_a_black_holed_endpoint_ends_the_wait_near_its_timeout(
    deps: DependencyEndpoints, black_hole: int, monkeypatch: pytest.MonkeyPatch, component: str
) -> None:
    """Each probe is cut to the time left: a pass can no longer overrun the wait by a probe
    timeout (or five: the service is probed after the four dependencies)."""
    monkeypatch.setattr(readiness, "PROBE_TIMEOUT", UNCAPPED_PROBE)
    if component == "postgres":
        hole = f"postgresql://tria:{PASSWORD}@127.0.0.1:{black_hole}/tria"
        endpoints = _endpoints(deps, f"http://127.0.0.1:{free_port()}", database_url=hole)
    else:
        endpoints = _endpoints(deps, f"http://127.0.0.1:{black_hole}")
    started = time.monotonic()
    with pytest.raises(ComponentStartError) as caught:
        wait_until_ready(stack_checks(endpoints), SHORT_WAIT, _failure)
    elapsed = time.monotonic() - started
    assert elapsed < GENEROUS_BOUND, f"the {SHORT_WAIT:g}s wait took {elapsed:.1f}s"
    assert caught.value.component == component
    assert caught.value.cause.startswith(f"not ready after {SHORT_WAIT:g}s (last error: ")
    assert "Timeout" in caught.value.cause  # it hung until cut, it did not refuse
    assert_no_secret({"the start error": str(caught.value)}, {"the URL's password": PASSWORD})


def test_a_component_that_answered_is_not_blamed_for_the_deadline_cutting_its_probe() -> None:
    """Under load, the last look's short budget can cut a healthy probe; the component that
    never answered stays the named cause."""

    def slow_when_cut(budget: float) -> None:
        if budget <= readiness.LAST_LOOK:  # answers, but not within the last look
            raise TimeoutError("cut by the deadline")

    def refused(budget: float) -> None:
        raise ConnectionRefusedError("nothing listens")

    checks = [readiness.Check("postgres", slow_when_cut), readiness.Check("redis", refused)]
    with pytest.raises(ComponentStartError) as caught:
        wait_until_ready(checks, 0.3, _failure)
    assert caught.value.component == "redis"
    assert "ConnectionRefusedError" in caught.value.cause
