"""JSON modes and the enum choice the intent classifier relies on, through the real SDK."""

from __future__ import annotations

import enum
import json
from typing import Any

import jsonschema
import pytest
from openai import BadRequestError, OpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, Field

INTENT_EXAMPLES = [
    ("Where is my order #1234?", "order_status"),
    ("I was charged twice, I want a refund", "billing"),
    ("The app crashes when I log in", "technical_support"),
    ("This is unacceptable, I want to complain", "complaint"),
    ("Let me talk to a human agent", "human_handoff"),
    ("hello", "general"),
]
KEYWORDS = {
    "order_status": "where is my order, tracking, delivery, shipping",
    "billing": "charge, payment, refund, invoice",
    "technical_support": "app crash, error, bug, login problem",
    "complaint": "complain, unacceptable, angry, bad service",
    "human_handoff": "talk to a human, agent, representative",
    "general": "hello, hi, general question",
}
LISTING = "; ".join(f"{name}: {words}" for name, words in KEYWORDS.items())


def _structured(
    client: OpenAI, messages: list[ChatCompletionMessageParam], schema: dict[str, Any]
) -> Any:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema, "strict": True},
        },
    )
    value = json.loads(completion.choices[0].message.content or "")
    jsonschema.Draft202012Validator(schema).validate(value)
    return value


def _classifier_schema(intent: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "intent": intent,
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reasoning": {"type": "string"},
        },
        "required": ["intent", "confidence", "reasoning"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(("message", "expected"), INTENT_EXAMPLES)
def test_intent_from_a_property_description_listing_the_options(
    client: OpenAI, message: str, expected: str
) -> None:
    schema = _classifier_schema(
        {"type": "string", "enum": list(KEYWORDS), "description": f"The intent. {LISTING}"}
    )

    value = _structured(client, [{"role": "user", "content": message}], schema)

    assert value["intent"] == expected
    assert 0.3 <= value["confidence"] <= 1.0
    assert expected in value["reasoning"]


@pytest.mark.parametrize(("message", "expected"), INTENT_EXAMPLES)
def test_intent_from_const_branches_with_descriptions(
    client: OpenAI, message: str, expected: str
) -> None:
    schema = _classifier_schema(
        {"anyOf": [{"const": name, "description": words} for name, words in KEYWORDS.items()]}
    )

    value = _structured(client, [{"role": "user", "content": message}], schema)

    assert value["intent"] == expected


@pytest.mark.parametrize(("message", "expected"), INTENT_EXAMPLES)
def test_intent_from_a_system_prompt_listing_with_a_bare_enum(
    client: OpenAI, message: str, expected: str
) -> None:
    system = "Classify the customer's message. Intents:\n" + "\n".join(
        f"- {name}: {words}" for name, words in KEYWORDS.items()
    )
    schema = _classifier_schema({"type": "string", "enum": list(KEYWORDS)})

    value = _structured(
        client,
        [{"role": "system", "content": system}, {"role": "user", "content": message}],
        schema,
    )

    assert value["intent"] == expected


def test_confidence_is_low_when_nothing_matches(client: OpenAI) -> None:
    schema = _classifier_schema({"type": "string", "enum": list(KEYWORDS), "description": LISTING})

    value = _structured(
        client, [{"role": "user", "content": "Quantum chromodynamics lecture notes"}], schema
    )

    assert value["intent"] == "general"
    assert value["confidence"] < 0.1


class Intent(enum.StrEnum):
    ORDER_STATUS = "order_status"
    BILLING = "billing"
    GENERAL = "general"


class Classification(BaseModel):
    intent: Intent = Field(
        description="order_status: where is my order, tracking; billing: refund, charge; "
        "general: hello"
    )
    confidence: float = Field(ge=0, le=1)
    order_id: str | None


def test_sdk_parse_helper_with_a_pydantic_model(client: OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Where is my order #1234?"}],
        response_format=Classification,
    )

    parsed = completion.choices[0].message.parsed
    assert parsed is not None
    assert parsed.intent is Intent.ORDER_STATUS
    assert parsed.order_id == "1234"
    assert parsed.confidence > 0.3


def test_nested_schema_with_refs_arrays_and_bounds_is_satisfied(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "minLength": 3, "maxLength": 8},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 9},
                    "gift": {"type": "boolean"},
                },
                "required": ["sku", "quantity", "gift"],
                "additionalProperties": False,
            }
        },
        "properties": {
            "answer": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
            "priority": {"type": "string", "enum": ["low", "high"]},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "price": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["answer", "items", "priority", "note", "price"],
        "additionalProperties": False,
    }

    value = _structured(client, [{"role": "user", "content": "Order two gifts"}], schema)

    assert len(value["items"]) == 2
    assert "Order two gifts" in value["answer"]


def test_json_object_mode_returns_a_json_object(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Reply in JSON: is shipping free?"}],
        response_format={"type": "json_object"},
    )

    value = json.loads(completion.choices[0].message.content or "")
    assert isinstance(value, dict)
    assert "is shipping free?" in value["answer"]


def test_json_object_mode_needs_the_word_json_like_openai(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "is shipping free?"}],
            response_format={"type": "json_object"},
        )

    assert raised.value.param == "messages"


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/Missing"},
        {"type": "object", "properties": {"x": {"type": "tuple"}}, "required": ["x"]},
        {"type": "integer", "minimum": 5, "maximum": 1},
    ],
)
def test_unusable_schema_is_a_400(client: OpenAI, schema: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        )

    assert raised.value.code == "invalid_schema"
