"""Embeddings through the real SDK: formats, dimensions, lexical similarity, bad input."""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest
from openai import AsyncOpenAI, BadRequestError, OpenAI

MODEL = "text-embedding-3-small"


def _cosine(left: list[float], right: list[float]) -> float:
    return sum(a * b for a, b in zip(left, right, strict=True))


def test_sdk_default_asks_for_base64_and_decodes_to_the_float_vector(client: OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model=MODEL, input="refund policy")
    wire = json.loads(raw.http_response.request.content)
    decoded = raw.parse().data[0].embedding

    as_floats = client.embeddings.create(
        model=MODEL, input="refund policy", encoding_format="float"
    )

    assert wire["encoding_format"] == "base64"
    assert isinstance(raw.http_response.json()["data"][0]["embedding"], str)
    assert decoded == pytest.approx(as_floats.data[0].embedding, abs=1e-6)


def test_explicit_base64_is_little_endian_float32(client: OpenAI) -> None:
    response = client.embeddings.create(
        model=MODEL, input="refund policy", encoding_format="base64"
    )
    floats = client.embeddings.create(model=MODEL, input="refund policy", encoding_format="float")

    blob = base64.b64decode(str(response.data[0].embedding))
    unpacked = struct.unpack(f"<{len(blob) // 4}f", blob)
    assert list(unpacked) == pytest.approx(floats.data[0].embedding, abs=1e-6)


async def test_vectors_are_unit_length_with_default_and_requested_dimensions(
    aclient: AsyncOpenAI,
) -> None:
    default = await aclient.embeddings.create(model=MODEL, input=["a", "shipping times"])
    large = await aclient.embeddings.create(model="text-embedding-3-large", input="shipping")
    small = await aclient.embeddings.create(
        model="text-embedding-3-large", input="shipping times", dimensions=64
    )

    assert [item.index for item in default.data] == [0, 1]
    assert {len(item.embedding) for item in default.data} == {1536}
    assert len(large.data[0].embedding) == 3072
    assert len(small.data[0].embedding) == 64
    for item in [*default.data, *large.data, *small.data]:
        assert math.sqrt(sum(v * v for v in item.embedding)) == pytest.approx(1.0, abs=1e-5)
    assert default.usage.prompt_tokens == 3


def test_embeddings_are_deterministic(client: OpenAI) -> None:
    first = client.embeddings.create(model=MODEL, input="Where is my parcel?")
    second = client.embeddings.create(model=MODEL, input="Where is my parcel?")

    assert first.data[0].embedding == second.data[0].embedding


def test_similar_texts_score_higher_than_unrelated_ones(client: OpenAI) -> None:
    query = "How do I return a damaged item for a refund?"
    documents = [
        "Returns: damaged items can be returned within 30 days for a full refund.",
        "Our returns process: send the item back and we refund you.",
        "The cafeteria serves pasta on Tuesdays and Thursdays.",
    ]
    response = client.embeddings.create(
        model=MODEL, input=[query, *documents], encoding_format="float"
    )
    vectors = [item.embedding for item in response.data]

    close, related, unrelated = (_cosine(vectors[0], v) for v in vectors[1:])
    assert close > related > unrelated
    assert close > 0.4
    assert abs(unrelated) < 0.2


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": [15339, 1917]}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "dimensions": 5000}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_bad_embedding_requests_are_400(
    client: OpenAI, payload: dict[str, object], param: str
) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.post(
            "/embeddings",
            body={"model": MODEL, **payload},
            cast_to=object,
        )

    assert raised.value.param == param


def test_token_arrays_get_a_clear_message(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.embeddings.create(model=MODEL, input=[[1, 2, 3]])

    assert "Token-array input is not supported" in raised.value.message


def test_chat_model_is_refused_for_embeddings(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.embeddings.create(model="gpt-4o-mini", input="hi")

    assert raised.value.code == "model_not_supported"
