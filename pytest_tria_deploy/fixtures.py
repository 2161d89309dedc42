"""Fixtures built from the resolved target's endpoints.

Nothing starts until a test asks for an endpoint fixture: ``tria_target`` is plain data, and
``tria_endpoints`` (which every client fixture depends on) is where a provider starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pytest
import pytest_asyncio

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import (
    KeyNamespace,
    Record,
    SecretValues,
    Timeouts,
    Warn,
    asyncpg_dsn,
    timed_out,
)
from pytest_tria_deploy.provision.base import Provider, ProvisionError
from pytest_tria_deploy.provision.errors import failure_cause
from pytest_tria_deploy.provision.registry import provider_for
from pytest_tria_deploy.provision.shared import SharedProvider
from pytest_tria_deploy.redact import MIN_SECRET_LENGTH, redact, register_secrets
from pytest_tria_deploy.report import provided
from pytest_tria_deploy.runstate import WARNINGS, settings_of
from pytest_tria_deploy.targets import Budgets, Target

if TYPE_CHECKING:
    import asyncpg
    import httpx
    import redis.asyncio as aioredis
    from openai import AsyncOpenAI

    from pytest_tria_deploy.conversations import SyntheticChat


@pytest.fixture(scope="session")
def tria_target(request: pytest.FixtureRequest) -> Target:
    """The resolved target under test (one per selected target when several are given)."""
    settings = settings_of(request.config)
    return settings.target(getattr(request, "param", settings.targets[0].name))


@pytest.fixture(scope="session")
def tria_instance(request: pytest.FixtureRequest) -> int:
    """Index of the service instance a test runs against (parametrized when there are several)."""
    return int(getattr(request, "param", 0))


def _provider(
    target: Target, tmp_path_factory: pytest.TempPathFactory, config: pytest.Config
) -> Provider:
    """The target's provider; on an xdist worker, one stack shared by the run's workers."""
    local = target.provider == "local"
    workdir = tmp_path_factory.mktemp(f"tria-{target.name}") if local else None
    provider = provider_for(target, workdir)
    if hasattr(config, "workerinput") and target.provider != "external":
        # The parent of a worker's basetemp is the run's own dir, shared by all its workers.
        return SharedProvider(provider, tmp_path_factory.getbasetemp().parent, target.name)
    return provider


@pytest.fixture(scope="session")
def tria_endpoints(
    request: pytest.FixtureRequest, tria_target: Target, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoints]:
    """Where the target's parts answer; starts the target's provider on first use."""
    try:
        provider = _provider(tria_target, tmp_path_factory, request.config)
    except LookupError as exc:
        raise ProvisionError(tria_target.name, tria_target.provider, str(exc)) from None
    try:
        endpoints = provider.start(tria_target)
    except Exception as exc:
        provider.stop()
        raise ProvisionError(tria_target.name, tria_target.provider, failure_cause(exc)) from None
    try:
        register_secrets(endpoints.secrets())  # on attaching xdist workers too
        provided.record(request.config, tria_target.name, provider.describe())
        yield endpoints
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def tria_budget(tria_target: Target) -> Budgets:
    """The target's budgets, so a suite's limits come from tria.toml rather than its own code:
    the same check holds prod to 5 ms and a laptop's throwaway stack to 50 ms."""
    return tria_target.budgets


@pytest.fixture(scope="session")
def tria_timeouts(tria_budget: Budgets) -> Timeouts:
    """The clients' timeouts; a target changes them with the budgets ``connect_timeout_s`` and
    ``request_timeout_s`` (10 s and 30 s by default)."""
    return Timeouts(tria_budget.connect_timeout_s, tria_budget.request_timeout_s)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg(
    request: pytest.FixtureRequest,
    tria_target: Target,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool; on a protected target every transaction is read-only at the server,
    unless the run passed --tria-allow-destructive (so destructive tests can write)."""
    import asyncpg

    server_settings = {"application_name": "tria-deploy"}
    if tria_target.protected and not settings_of(request.config).allow_destructive:
        server_settings["default_transaction_read_only"] = "on"
    url = tria_endpoints.database_url.get_secret_value()
    try:
        pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=1,
            max_size=4,
            timeout=tria_timeouts.connect,
            command_timeout=tria_timeouts.request,
            server_settings=server_settings,
        )
    except (OSError, TimeoutError) as exc:
        raise _unanswered(
            "PostgreSQL", url, "a connection attempt", exc, tria_timeouts.connect
        ) from None
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), tria_timeouts.connect)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_client(
    tria_endpoints: Endpoints, tria_timeouts: Timeouts
) -> AsyncIterator[aioredis.Redis]:
    """A redis.asyncio client on the target's Redis, with bounded timeouts."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(
        tria_endpoints.redis_url.get_secret_value(),
        socket_connect_timeout=tria_timeouts.connect,
        socket_timeout=tria_timeouts.request,
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_keys(redis_client: aioredis.Redis) -> AsyncIterator[KeyNamespace]:
    """A namespaced key helper on ``redis_client``; its keys expire and are removed at teardown."""
    namespace = KeyNamespace(redis_client)
    try:
        yield namespace
    finally:
        await namespace.cleanup()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def openai_client(
    tria_endpoints: Endpoints, tria_timeouts: Timeouts
) -> AsyncIterator[AsyncOpenAI]:
    """AsyncOpenAI against the target's base URL (the stand-in on local targets); no retries."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key=tria_endpoints.openai_api_key.get_secret_value(),
        base_url=tria_endpoints.openai_base_url,
        timeout=tria_timeouts.request,
        max_retries=0,
    )
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="session")
def chroma_client(tria_endpoints: Endpoints, tria_timeouts: Timeouts) -> Any:
    """A chromadb HttpClient on the target's Chroma (whose own HTTP calls have no timeout)."""
    import chromadb
    import httpx

    heartbeat = f"{tria_endpoints.chroma_url.rstrip('/')}/api/v2/heartbeat"
    try:
        httpx.get(heartbeat, timeout=tria_timeouts.connect).raise_for_status()
    except httpx.HTTPError as exc:
        raise _unanswered(
            "chroma", tria_endpoints.chroma_url, "its heartbeat", exc, tria_timeouts.connect
        ) from None
    url = urlsplit(tria_endpoints.chroma_url)
    ssl = url.scheme == "https"
    return chromadb.HttpClient(
        host=url.hostname or "127.0.0.1", port=url.port or (443 if ssl else 8000), ssl=ssl
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def service(
    tria_endpoints: Endpoints, tria_instance: int, tria_timeouts: Timeouts
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the service; one per instance when the target has several.

    It first asks ``/health`` within the connect timeout, so a service that accepts connections
    but never answers fails every test that needs it at once, with a reason, instead of each test
    waiting out the request timeout.
    """
    import httpx

    url = tria_endpoints.service_urls[tria_instance]
    first = tria_timeouts.connect
    timeout = httpx.Timeout(tria_timeouts.request, connect=first)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        try:
            await client.get("/health", timeout=first)
        except httpx.HTTPError as exc:
            raise _unanswered("service", url, "/health", exc, first) from None
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def tria_chat(
    service: httpx.AsyncClient, tria_endpoints: Endpoints, tria_target: Target
) -> AsyncIterator[SyntheticChat]:
    """Synthetic conversations on this test's service instance.

    Every session it opens is deleted at teardown, also after a failed test; a session that
    cannot be deleted is an error naming it, since it would stay on the target.
    """
    from pytest_tria_deploy.conversations import SyntheticChat

    token = tria_endpoints.diagnostics_token
    if token is None or not token.get_secret_value():
        pytest.fail(
            f"target '{tria_target.name}' has no diagnostics_token: synthetic conversations "
            'need it (set diagnostics_token in tria.toml, e.g. "${TRIA_DIAGNOSTICS_TOKEN}")',
            pytrace=False,
        )
    chat = SyntheticChat(service, token.get_secret_value())
    yield chat
    await chat.close()


@pytest.fixture(scope="session")
def tria_secrets(tria_endpoints: Endpoints) -> SecretValues:
    """Every secret value of the target, a URL's password also on its own: what no answer from
    the target may contain. Values shorter than the redactor's minimum are left out."""
    values = tria_endpoints.secrets()
    for url in (tria_endpoints.database_url, tria_endpoints.redis_url):
        password = urlsplit(url.get_secret_value()).password
        if password:
            values += [password, unquote(password)]
    return SecretValues(sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}))


def _unanswered(
    component: str, url: str, asked: str, exc: Exception, timeout: float
) -> ConnectionError:
    """A first contact that got no answer, in one wording for every fixture that makes one."""
    import httpx

    where = f"{component} at {redact(url)} did not answer {asked}"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return ConnectionError(f"{where}: {timed_out(timeout)}")
    detail = f": {redact(str(exc))}" if str(exc) else ""
    return ConnectionError(f"{where} within {timeout:g}s: {type(exc).__name__}{detail}")


@pytest.fixture
def tria_warn(request: pytest.FixtureRequest) -> Warn:
    """Record a warning for this test's stage: the stage (and verdict) becomes WARN."""
    warnings = request.node.stash.setdefault(WARNINGS, [])

    def warn(message: str) -> None:
        text = redact(str(message))
        warnings.append(text)
        request.node.user_properties.append(("tria_warning", text))

    return warn


@pytest.fixture
def tria_record(record_property: Callable[[str, object], None]) -> Record:
    """Record a measured value (a latency, a count, a version): a JUnit property and an entry
    in verdict.json."""

    def record(name: str, value: float | str, unit: str = "") -> None:
        record_property(name, value)
        if unit:
            record_property(f"{name}.unit", unit)

    return record
