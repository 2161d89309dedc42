"""A real stand-in server on a free 127.0.0.1 port, talked to by the real openai SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from openai import AsyncOpenAI, OpenAI

from pytest_tria_deploy.standins.threaded import ThreadedStandin

API_KEY = "sk-standin-test-key-0123456789"


@pytest.fixture(scope="session")
def standin() -> Iterator[ThreadedStandin]:
    """The shared stand-in; it only accepts ``API_KEY``."""
    with ThreadedStandin(API_KEY) as running:
        yield running


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


@pytest.fixture(scope="session")
def keyless_standin() -> Iterator[ThreadedStandin]:
    """A stand-in started without an api key: any non-empty bearer is accepted."""
    with ThreadedStandin(None) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_standin(request: pytest.FixtureRequest) -> None:
    """Each test starts with no fault and zero counts on the shared server."""
    if "standin" in request.fixturenames:
        request.getfixturevalue("standin").reset()


@pytest.fixture(scope="session")
def client(standin: ThreadedStandin) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=standin.base_url, api_key=API_KEY, max_retries=0, timeout=10.0
    ) as sdk_client:
        yield sdk_client


@pytest.fixture(scope="session")
async def aclient(standin: ThreadedStandin) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        base_url=standin.base_url, api_key=API_KEY, max_retries=0, timeout=10.0
    ) as sdk_client:
        yield sdk_client
