"""External services: OpenAI offers and answers with the configured models; Chroma holds the
knowledge. Each failure names the component and what to check."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import allure
import httpx
import pytest
import pytest_asyncio

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import (
    Record,
    Timeouts,
    Warn,
    stopwatch,
    timed_out,
    warn_over_budget,
    where,
)
from pytest_tria_deploy.targets import Budgets

if TYPE_CHECKING:
    from openai import AsyncOpenAI

OPENAI = "https://api.openai.com/v1"
COLLECTIONS = "/tenants/default_tenant/databases/default_database/collections"


@contextlib.contextmanager
def openai_call(what: str, endpoints: Endpoints, timeouts: Timeouts) -> Iterator[None]:
    """Turn an OpenAI error into one line naming the component, the fix and the cause (with no
    chained traceback: the line is the whole story).

    openai is imported here, not at the top: it takes most of a second to import, and a
    ``-m smoke`` run collects this module without ever calling OpenAI.
    """
    import openai

    fixes: list[tuple[type[openai.APIError], str]] = [  # most specific first
        (openai.AuthenticationError, "check OPENAI_API_KEY (the target's openai_api_key)"),
        (
            openai.NotFoundError,
            "check OPENAI_MODEL / OPENAI_EMBEDDING_MODEL (openai_model, openai_embedding_model)",
        ),
        (openai.APIStatusError, "check the account's quota and the provider's status page"),
        (openai.APIConnectionError, "check OPENAI_BASE_URL (openai_base_url) and the network"),
    ]
    try:
        yield
    except openai.APIError as exc:
        address = where(endpoints.openai_base_url or OPENAI, 443)
        fix = next((f for kind, f in fixes if isinstance(exc, kind)), "check OpenAI")
        if isinstance(exc, openai.APIStatusError):
            problem = f"answered {exc.status_code} to {what}: {fix} ({exc.message})"
        elif isinstance(exc, openai.APITimeoutError):
            problem = f"did not answer {what}: {timed_out(timeouts.request)} — {fix}"
        else:
            problem = f"did not answer {what}: {fix} ({type(exc).__name__})"
        raise pytest.fail.Exception(f"OpenAI at {address} {problem}", pytrace=False) from None


@contextlib.contextmanager
def chroma_call(what: str, endpoints: Endpoints, timeouts: Timeouts) -> Iterator[None]:
    """Turn a Chroma connection error into one line naming the component and the fix."""
    try:
        yield
    except httpx.HTTPError as exc:
        fix = "start Chroma, or check CHROMA_URL (the target's chroma_url)"
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            cause = timed_out(timeouts.of(exc))
        address = where(endpoints.chroma_url, 8000)
        message = f"Chroma at {address} did not answer {what}: {cause} — {fix}"
        raise pytest.fail.Exception(message, pytrace=False) from None


@pytest_asyncio.fixture(loop_scope="session")
async def chroma(
    tria_endpoints: Endpoints, tria_timeouts: Timeouts
) -> AsyncIterator[httpx.AsyncClient]:
    """Chroma's REST API (v2), with timeouts (chromadb's own client has none)."""
    base = f"{tria_endpoints.chroma_url.rstrip('/')}/api/v2"
    timeout = httpx.Timeout(tria_timeouts.request, connect=tria_timeouts.connect)
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as client:
        yield client


async def test_openai_models(
    openai_client: AsyncOpenAI, tria_endpoints: Endpoints, tria_timeouts: Timeouts
) -> None:
    """OpenAI offers the configured chat and embedding models."""
    with openai_call("the models list", tria_endpoints, tria_timeouts):
        offered = {model.id async for model in openai_client.models.list()}
    wanted = [tria_endpoints.openai_model, tria_endpoints.openai_embedding_model]
    missing = [name for name in wanted if name not in offered]
    assert not missing, (
        f"OpenAI does not offer {', '.join(missing)}: set OPENAI_MODEL / OPENAI_EMBEDDING_MODEL "
        "(the target's openai_model, openai_embedding_model) to models the account offers"
    )


async def test_openai_completion(
    openai_client: AsyncOpenAI,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_budget: Budgets,
    tria_record: Record,
    tria_warn: Warn,
) -> None:
    """A tiny chat completion answers within the OpenAI budget (over it: a warning)."""
    with openai_call("a chat completion", tria_endpoints, tria_timeouts), stopwatch() as took:
        completion = await openai_client.chat.completions.create(
            model=tria_endpoints.openai_model,
            messages=[{"role": "user", "content": "Reply with the word OK."}],
            max_completion_tokens=5,
        )
    tria_record("openai_completion_ms", round(took.ms, 1), "ms")
    assert completion.choices, "OpenAI: a completion with no choices"
    assert completion.choices[0].message.content, "OpenAI: an empty completion"
    warn_over_budget(
        tria_warn,
        "OpenAI: a tiny completion",
        "openai_ms",
        tria_budget.openai_ms,
        took.ms,
        record=tria_record,
    )


async def test_openai_embedding(
    openai_client: AsyncOpenAI,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_budget: Budgets,
    tria_record: Record,
    tria_warn: Warn,
) -> None:
    """A tiny embedding answers within the OpenAI budget (over it: a warning)."""
    with openai_call("an embedding", tria_endpoints, tria_timeouts), stopwatch() as took:
        embedding = await openai_client.embeddings.create(
            model=tria_endpoints.openai_embedding_model, input="deployment check"
        )
    tria_record("openai_embedding_ms", round(took.ms, 1), "ms")
    assert embedding.data, "OpenAI: an embedding answer with no data"
    assert embedding.data[0].embedding, "OpenAI: an empty embedding"
    warn_over_budget(
        tria_warn,
        "OpenAI: a tiny embedding",
        "openai_ms",
        tria_budget.openai_ms,
        took.ms,
        record=tria_record,
    )


async def test_chroma_heartbeat(
    chroma: httpx.AsyncClient,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_budget: Budgets,
    tria_record: Record,
    tria_warn: Warn,
) -> None:
    """Chroma answers its heartbeat within the Chroma budget (over it: a warning)."""
    with chroma_call("its heartbeat", tria_endpoints, tria_timeouts), stopwatch() as took:
        answer = await chroma.get("/heartbeat")
    tria_record("chroma_heartbeat_ms", round(took.ms, 1), "ms")
    assert answer.status_code == 200, f"Chroma: heartbeat answered {answer.status_code}"
    warn_over_budget(
        tria_warn,
        "Chroma: the heartbeat",
        "chroma_ms",
        tria_budget.chroma_ms,
        took.ms,
        record=tria_record,
    )


async def test_chroma_version(
    chroma: httpx.AsyncClient,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_record: Record,
) -> None:
    """Chroma reports its version."""
    with chroma_call("its version", tria_endpoints, tria_timeouts):
        answer = await chroma.get("/version")
    assert answer.status_code == 200, f"Chroma: version answered {answer.status_code}"
    version = answer.json()
    assert isinstance(version, str), f"Chroma: no version in {answer.text[:100]!r}"
    assert version, "Chroma: an empty version"
    tria_record("chroma_version", version, "")


async def test_knowledge_collection(
    chroma: httpx.AsyncClient,
    tria_endpoints: Endpoints,
    tria_timeouts: Timeouts,
    tria_record: Record,
) -> None:
    """The knowledge collection exists in Chroma and is not empty."""
    name = tria_endpoints.chroma_collection
    with chroma_call(f"for collection {name}", tria_endpoints, tria_timeouts):
        with allure.step(f"find: the collection {name}"):
            found = await chroma.get(f"{COLLECTIONS}/{name}")
            assert found.status_code == 200, (
                f"Chroma has no collection {name!r} ({found.status_code}): check "
                "CHROMA_COLLECTION (the target's chroma_collection); the service creates and "
                "fills it at startup"
            )
            collection: dict[str, Any] = found.json()
        with allure.step("count: its chunks"):
            counted = await chroma.get(f"{COLLECTIONS}/{collection['id']}/count")
            assert counted.status_code == 200, f"Chroma: count answered {counted.status_code}"
            chunks = int(counted.json())
            tria_record("knowledge_chunks", chunks, "")
            assert chunks > 0, (
                f"Chroma collection {name!r} is empty: reindex the knowledge "
                "(POST /api/v1/knowledge/reindex with the admin token) or check TRIA_KNOWLEDGE_DIR"
            )
