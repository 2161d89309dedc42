"""Chat completions through the real SDK: plain, RAG-quoting, streaming, tools, limits."""

from __future__ import annotations

import json

import pytest
from openai import AsyncOpenAI, BadRequestError, NotFoundError, OpenAI
from openai.types.chat import ChatCompletionMessageParam

RAG_SYSTEM = """You are Tria, a support assistant. Answer only from the context below.

Context:
[1] Source: returns_policy.md
Customers may return unused items within 30 days of delivery. Refunds reach the original payment
method within 5 business days.
[2] Source: shipping.md
Standard shipping takes 3-5 business days. Express shipping arrives the next business day.
"""


def test_completion_has_openai_shape_and_word_count_usage(client: OpenAI) -> None:
    question = "Can you tell me about your opening hours?"
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    )

    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert question in (choice.message.content or "")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 9  # 8 words and a question mark
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_answers_are_deterministic(client: OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": RAG_SYSTEM},
        {"role": "user", "content": "How long does express shipping take?"},
    ]

    first = client.chat.completions.create(model="gpt-4o", messages=messages)
    second = client.chat.completions.create(model="gpt-4o", messages=messages)

    assert first.choices[0].message.content == second.choices[0].message.content


@pytest.mark.parametrize(
    ("question", "quoted", "source", "unrelated"),
    [
        (
            "How many days do I have to return an item?",
            "Customers may return unused items within 30 days of delivery.",
            "returns_policy.md",
            "shipping",
        ),
        (
            "How fast is express shipping?",
            "Express shipping arrives the next business day.",
            "shipping.md",
            "return",
        ),
        (
            "When will my refund reach my card?",
            "Refunds reach the original payment method within 5 business days.",
            "returns_policy.md",
            "shipping",
        ),
    ],
)
def test_rag_answer_quotes_the_most_relevant_context_sentence(
    client: OpenAI, question: str, quoted: str, source: str, unrelated: str
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": RAG_SYSTEM},
            {"role": "user", "content": question},
        ],
    )

    answer = completion.choices[0].message.content or ""
    assert answer.startswith("According to the provided context: ")
    assert f'"{quoted}" (source: {source})' in answer
    assert unrelated not in answer.lower()


def test_context_inside_the_user_message_and_tool_messages_is_quoted(client: OpenAI) -> None:
    inline = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {
                "role": "user",
                "content": "Context:\nOur office opens at 9am on weekdays. Parking is free.\n\n"
                "Question: When does the office open?\nAnswer:",
            }
        ],
    )
    from_tool = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": "Is the warranty transferable?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search_kb", "arguments": "{}"},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": "The warranty is transferable to a new owner. It lasts two years.",
            },
        ],
    )

    assert '"Our office opens at 9am on weekdays."' in (inline.choices[0].message.content or "")
    assert '"The warranty is transferable to a new owner."' in (
        from_tool.choices[0].message.content or ""
    )


def test_context_without_a_relevant_sentence_says_so(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": RAG_SYSTEM},
            {"role": "user", "content": "What is the capital of Peru?"},
        ],
    )

    answer = completion.choices[0].message.content or ""
    assert "could not find" in answer
    assert "Customers may return" not in answer


def test_stream_yields_the_same_text_then_usage_then_done(client: OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": RAG_SYSTEM},
        {"role": "user", "content": "How fast is express shipping?"},
    ]
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    content_chunks = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == whole.choices[0].message.content
    assert len(content_chunks) > 3
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == whole.usage


async def test_async_stream_without_usage_request_has_no_usage_chunk(
    aclient: AsyncOpenAI,
) -> None:
    stream = await aclient.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Tell me something"}],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]

    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert "Tell me something" in "".join(c.choices[0].delta.content or "" for c in chunks)


def test_raw_stream_ends_with_done(client: OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as response:
        events = [line for line in response.iter_lines() if line]

    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0].removeprefix("data: "))["object"] == "chat.completion.chunk"


def test_max_tokens_truncates_with_finish_reason_length(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Describe your whole product catalogue"}],
        max_tokens=3,
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3
    assert choice.message.content == "You said:"


def test_n_returns_that_many_choices(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], n=2
    )

    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].message.content == completion.choices[1].message.content


def test_forced_tool_call_fills_arguments_from_the_message(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Where is my order 1234?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "escalate",
                    "description": "hand the conversation to a human agent",
                    "parameters": {"type": "object", "properties": {}},
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "find where an order is",
                    "parameters": {
                        "type": "object",
                        "properties": {"order_id": {"type": "string"}},
                        "required": ["order_id"],
                    },
                },
            },
        ],
        tool_choice="required",
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].function.name == "lookup_order"
    assert json.loads(calls[0].function.arguments) == {"order_id": "1234"}


def test_embedding_model_is_refused_for_chat(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as raised:
        client.chat.completions.create(
            model="text-embedding-3-small", messages=[{"role": "user", "content": "hi"}]
        )

    assert raised.value.code == "model_not_supported"


def test_unknown_chat_model_is_404(client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.chat.completions.create(
            model="gpt-unknown", messages=[{"role": "user", "content": "hi"}]
        )

    assert raised.value.code == "model_not_found"
