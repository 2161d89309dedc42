"""Model listing through the real SDK."""

from __future__ import annotations

import pytest
from openai import AsyncOpenAI, NotFoundError, OpenAI

SERVED = {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "text-embedding-3-large"}


def test_models_list_names_every_served_model(client: OpenAI) -> None:
    models = list(client.models.list())

    assert {model.id for model in models} == SERVED
    assert all(model.object == "model" and model.owned_by for model in models)


async def test_model_retrieve_returns_the_model(aclient: AsyncOpenAI) -> None:
    model = await aclient.models.retrieve("text-embedding-3-small")

    assert model.id == "text-embedding-3-small"
    assert model.object == "model"


def test_unknown_model_is_a_404_model_not_found(client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.models.retrieve("gpt-9-imaginary")

    assert raised.value.code == "model_not_found"
    assert "gpt-9-imaginary" in raised.value.message
