"""Shared fixtures for the project's own tests: real throwaway servers on free 127.0.0.1 ports.

- ``deps`` (session): one PostgreSQL, Redis, Chroma and OpenAI stand-in shared by every test.
  Treat them as read-only: never stop, kill, pause or inject faults into them.
- ``service_env`` (session): the environment for ``start_service`` pointing at ``deps``.
- ``fresh_deps`` (function): your own servers, which you may stop, kill, pause or fault.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

# httpx (and httpx2, which openai uses) imports httpcore (httpcore2) on its first request and keeps
# a map of its exception classes; pytester drops modules first imported during a test, so a later
# in-process run would meet new classes and raw httpcore errors. Importing them at collection
# keeps one of each for the session.
import httpcore  # noqa: F401
import httpcore2  # noqa: F401
import pytest

from pytest_tria_deploy.activation import read_ini
from pytest_tria_deploy.provision.fresh import FreshDeps
from pytest_tria_deploy.provision.processes import ServiceServer, start_service
from pytest_tria_deploy.provision.stack import DependencyEndpoints, LocalStack

pytest_plugins = ("pytester",)
__all__ = ["FreshDeps"]  # tests annotate ``fresh_deps: FreshDeps``


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The project's own tests write no default reports (``--tria-no-default-reports``), unless
    the option or its ini key says otherwise.

    The repo root holds tria.toml, so ``pytest tests`` is an active tria run, and would write
    reports/allure-results and reports/junit.xml over the gate's (``pytest && pytest tests``
    runs both). Worse, allure-commons keeps its listeners in one process-wide plugin manager:
    every pytester run in this process would also report its tests into this run's results.
    This conftest's ``tryfirst`` runs before the plugin's (conftests register after entry-point
    plugins); pytester's runs do not load it, so they still get the defaults they test.
    """
    if getattr(config.option, "tria_no_default_reports", False) is None and (
        read_ini(config, "tria_no_default_reports") is None
    ):
        config.option.tria_no_default_reports = True


@pytest.fixture(autouse=True)
def _no_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under GitHub Actions, every pytester gate run would append its summary to the real job
    summary; tests that exercise it set GITHUB_STEP_SUMMARY themselves."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The session's LocalStack (its workdir holds every server log); prefer ``deps``."""
    with LocalStack(tmp_path_factory.mktemp("local-stack")) as stack:
        yield stack


@pytest.fixture(scope="session")
def deps(local_stack: LocalStack) -> DependencyEndpoints:
    """Shared running dependencies: ``.database_url``, ``.redis_url`` (with a password),
    ``.chroma_url``, ``.openai_base_url`` (ends in /v1) and ``.openai_api_key``, as plain strings.

    Shared by the whole session, so do not stop, kill, pause or fault ``.servers``: use
    ``fresh_deps`` for that. Chroma collections and database rows are shared too: use unique names.
    """
    return local_stack.start_dependencies()


@pytest.fixture(scope="session")
def service_env(local_stack: LocalStack, deps: DependencyEndpoints) -> Mapping[str, str]:
    """Env for ``start_service``: DATABASE_URL, REDIS_URL, CHROMA_URL, OPENAI_BASE_URL,
    OPENAI_API_KEY (pointing at ``deps``), a generated SECRET_KEY and TRIA_DIAGNOSTICS_TOKEN,
    TRIA_ENV=development.

    Read-only (shared by the session): build your own with ``{**service_env, "VAR": "value"}``,
    or ``{**service_env, **fresh_deps("redis").env()}`` to point the service at your own Redis.
    """
    return MappingProxyType(local_stack.service_env(deps))


@pytest.fixture(scope="session")
def running_service(
    tmp_path_factory: pytest.TempPathFactory, service_env: Mapping[str, str]
) -> Iterator[ServiceServer]:
    """One running service on ``deps`` (``.url``), shared by the session: only read from it."""
    server = start_service(tmp_path_factory.mktemp("service"), service_env)
    yield server
    server.stop()


@pytest.fixture
def fresh_deps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FreshDeps]:
    """Factory for a test's own servers: ``fresh_deps("redis")`` -> DependencyEndpoints with your
    Redis and the shared ``deps`` for the rest; ``fresh_deps()`` starts all four (~1 s).

    Kill or restart them freely through ``.servers`` (e.g. ``.servers.redis.kill()``); they are
    stopped after the test.
    """
    factory = FreshDeps(tmp_path, lambda: request.getfixturevalue("deps"))
    yield factory
    factory.stop_all()
