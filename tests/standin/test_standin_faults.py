"""Injected faults as the SDK sees them, plus the stats and reset admin routes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from openai import (
    APITimeoutError,
    AsyncOpenAI,
    AuthenticationError,
    InternalServerError,
    OpenAI,
    RateLimitError,
)
from openai.types.chat import ChatCompletionMessageParam

from pytest_tria_deploy.standins.threaded import ThreadedStandin

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def test_fault_401_is_an_authentication_error_even_with_the_right_key(
    standin: ThreadedStandin, client: OpenAI
) -> None:
    standin.set_fault("401")

    with pytest.raises(AuthenticationError) as raised:
        client.models.list()

    assert raised.value.code == "invalid_api_key"


def test_fault_429_is_a_rate_limit_error_with_retry_after(
    standin: ThreadedStandin, client: OpenAI
) -> None:
    standin.set_fault("429", retry_after=7)

    with pytest.raises(RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)

    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "rate_limit_exceeded"


def test_fault_500_is_an_internal_server_error(standin: ThreadedStandin, client: OpenAI) -> None:
    standin.set_fault("500")

    with pytest.raises(InternalServerError) as raised:
        client.embeddings.create(model="text-embedding-3-small", input="x")

    assert raised.value.status_code == 500
    assert raised.value.type == "server_error"


def test_limited_fault_recovers_and_the_sdk_retry_succeeds(
    standin: ThreadedStandin, api_key: str
) -> None:
    standin.set_fault("429", retry_after=0, count=1)

    with OpenAI(base_url=standin.base_url, api_key=api_key, max_retries=1) as retrying:
        models = retrying.models.list()

    assert models.data
    assert standin.stats()["models"] == 2
    assert standin.stats()["by_status"] == {"200": 1, "429": 1}


def test_latency_fault_trips_a_short_client_timeout_but_not_a_long_one(
    standin: ThreadedStandin, api_key: str
) -> None:
    standin.set_fault("latency", latency_ms=1000)

    with OpenAI(base_url=standin.base_url, api_key=api_key, max_retries=0) as sdk:
        with pytest.raises(APITimeoutError):
            sdk.with_options(timeout=0.3).models.list()
        assert sdk.with_options(timeout=10.0).models.list().data


async def test_hang_is_cut_by_the_client_timeout_while_admin_still_answers(
    standin: ThreadedStandin, api_key: str
) -> None:
    standin.set_fault("hang")

    async with AsyncOpenAI(
        base_url=standin.base_url, api_key=api_key, max_retries=0, timeout=1.0
    ) as sdk:
        hung = asyncio.create_task(sdk.chat.completions.create(model="gpt-4o-mini", messages=HI))
        async with httpx.AsyncClient(base_url=standin.url, timeout=5.0) as admin:
            stats = await admin.get("/_admin/stats")
            assert stats.status_code == 200
            assert not hung.done()
        with pytest.raises(APITimeoutError):
            await hung


async def test_clearing_a_hang_releases_the_waiting_request(
    standin: ThreadedStandin, api_key: str
) -> None:
    standin.set_fault("hang")

    async with AsyncOpenAI(
        base_url=standin.base_url, api_key=api_key, max_retries=0, timeout=10.0
    ) as sdk:
        hung = asyncio.create_task(
            sdk.embeddings.create(model="text-embedding-3-small", input="released")
        )
        async with httpx.AsyncClient(base_url=standin.url, timeout=5.0) as admin:
            for _ in range(250):
                if (await admin.get("/_admin/stats")).json()["embeddings"]:
                    break
                await asyncio.sleep(0.02)
            assert not hung.done()
            await admin.post("/_admin/fault", json={"mode": "none"})
        released = await asyncio.wait_for(hung, timeout=5.0)

    assert len(released.data[0].embedding) == 1536


def test_startup_fault_applies_until_reset(api_key: str) -> None:
    with ThreadedStandin(api_key, fault="429", retry_after=3) as started:
        sdk = OpenAI(base_url=started.base_url, api_key=api_key, max_retries=0)
        with pytest.raises(RateLimitError) as raised:
            sdk.models.list()
        started.reset()
        models = sdk.models.list()

    assert raised.value.response.headers["retry-after"] == "3"
    assert models.data


def test_stats_count_requests_per_route_and_reset_clears_them(
    standin: ThreadedStandin, client: OpenAI
) -> None:
    client.models.list()
    client.models.retrieve("gpt-4o")
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    client.embeddings.create(model="text-embedding-3-small", input="x")
    standin.set_fault("500")

    before = standin.stats()
    reset = standin.admin("POST", "reset").json()

    assert before["models"] == 2
    assert before["chat_completions"] == 1
    assert before["embeddings"] == 1
    assert before["total"] == 4
    assert before["fault"]["mode"] == "500"
    assert reset["total"] == 0
    assert reset["fault"]["mode"] == "none"
    assert client.models.list().data


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "teapot"},
        {"mode": "latency", "latency_ms": -5},
        {"mode": "429", "retry_after": "soon"},
        {"mode": "500", "surprise": True},
    ],
)
def test_bad_fault_requests_are_400(standin: ThreadedStandin, body: dict[str, object]) -> None:
    response = standin.admin("POST", "fault", body)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert standin.stats()["fault"]["mode"] == "none"
