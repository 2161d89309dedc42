"""The deterministic logic behind the answers: similarity, option listings, schema filling."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from pytest_tria_deploy.standins.answers import Message, compose, read
from pytest_tria_deploy.standins.choices import choose, listed_descriptions
from pytest_tria_deploy.standins.lexical import embed, similarity, split_sentences
from pytest_tria_deploy.standins.schema_fill import FillContext, SchemaError, fill

QUERY = "I was charged twice for order 5521, I want a refund"


def _context() -> FillContext:
    return FillContext(query=QUERY, answer="Refunds take 5 business days.")


def test_inflections_are_similar_and_unrelated_words_are_not() -> None:
    assert similarity("crashes", "crash") > 0.5
    assert similarity("charged", "charge") > 0.5
    assert similarity("refund please", "pasta recipe") < 0.1


def test_embedding_is_stable_across_calls_and_dimensions_are_honoured() -> None:
    assert embed("hello world", 32) == embed("hello world", 32)
    assert len(embed("hello world", 7)) == 7
    assert embed("", 8) == [1.0, 0, 0, 0, 0, 0, 0, 0]


def test_sentences_split_on_terminal_punctuation_and_list_markers() -> None:
    text = "- First point. Second point!\n2) Third one? yes\n[4] Fourth."

    assert split_sentences(text) == ["First point.", "Second point!", "Third one? yes", "Fourth."]


@pytest.mark.parametrize(
    "text",
    [
        "order_status: where is my order, tracking; billing: refund, charged twice",
        "Intents:\n- order_status: where is my order, tracking\n- billing: refund, charged twice\n",
        "**order_status** - where is my order, tracking\n**billing** - refund, charged twice",
        "Pick order status (where is my order, tracking) or billing (refund, charged twice).",
    ],
)
def test_option_listings_in_several_styles_are_read(text: str) -> None:
    described = listed_descriptions(["order_status", "billing"], text)

    assert "tracking" in described["order_status"][0]
    assert "billing" not in described["order_status"][0]
    assert "refund" in described["billing"][0]
    assert choose(QUERY, ["order_status", "billing"], described).value == "billing"


def test_no_match_falls_back_to_a_catch_all_option_with_zero_confidence() -> None:
    choice = choose("zebra migration", ["billing", "other", "complaint"], {})

    assert choice.value == "other"
    assert choice.score < 0.05


SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    {"type": ["string", "null"], "minLength": 40, "maxLength": 45},
    {"type": "integer", "exclusiveMinimum": 3, "maximum": 10, "multipleOf": 2},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}], "items": False},
    {
        "type": "array",
        "items": {"enum": ["refund", "shipping", "login"]},
        "uniqueItems": True,
        "minItems": 2,
        "maxItems": 2,
    },
    {"type": "array", "items": {"type": "string"}, "minItems": 3, "uniqueItems": True},
    {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["tags"],
    },
    {"type": "object", "required": ["extra"], "additionalProperties": {"type": "integer"}},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "number"}}, "required": ["b"]},
        ]
    },
    {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "email": {"type": "string", "format": "email"},
            "id": {"type": "string", "format": "uuid"},
        },
        "required": ["when", "email", "id"],
    },
    {"oneOf": [{"const": 1}, {"const": 2}]},
    {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"child": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
                "required": ["child"],
            }
        },
        "$ref": "#/$defs/Node",
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_filled_values_validate_against_their_schema(schema: dict[str, Any]) -> None:
    value = fill(schema, _context())

    jsonschema.Draft202012Validator(schema).validate(value)


def test_named_fields_draw_on_the_conversation() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "category": {"enum": ["shipping", "billing"], "description": "billing: refund"},
            "confidence_pct": {"type": "integer", "minimum": 0, "maximum": 100},
            "order_id": {"type": "string"},
            "answer": {"type": "string"},
            "keywords": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "wants_refund": {"type": "boolean", "description": "the customer asks for a refund"},
            "is_greeting": {"type": "boolean"},
        },
    }

    value = fill(schema, _context())

    assert value["category"] == "billing"
    assert 30 <= value["confidence_pct"] <= 100
    assert value["order_id"] == "5521"
    assert value["answer"] == "Refunds take 5 business days."
    assert value["keywords"] == ["charged", "twice", "order"]
    assert value["wants_refund"] is True
    assert value["is_greeting"] is False
    assert list(value) == list(schema["properties"])


@pytest.mark.parametrize(
    "schema",
    [
        False,
        {"$ref": "https://example.com/schema.json"},
        {"type": "object", "required": ["x"], "additionalProperties": False},
        {"type": "array", "minItems": 3, "maxItems": 1},
        {"enum": []},
        {"type": "string", "minLength": "long"},
    ],
)
def test_unsatisfiable_or_malformed_schemas_raise_schema_error(schema: Any) -> None:
    with pytest.raises(SchemaError):
        fill(schema, _context())


def test_question_marker_separates_question_from_context() -> None:
    conversation = read(
        [
            Message(
                "user",
                "Use these documents:\n### faq.md\nThe store opens at 8am. Pets are welcome.\n"
                "\nUser question: Are pets allowed?",
            )
        ]
    )

    answer = compose(conversation)
    assert conversation.query == "Are pets allowed?"
    assert answer.text == 'According to the provided context: "Pets are welcome." (source: faq.md)'


def test_plain_prompts_get_an_echo_and_greetings_a_greeting() -> None:
    echo = compose(read([Message("system", "Be brief."), Message("user", "Ping the server")]))
    hello = compose(read([Message("user", "Hi there!")]))

    assert '"Ping the server"' in echo.text
    assert hello.text == "Hello! How can I help you today?"
