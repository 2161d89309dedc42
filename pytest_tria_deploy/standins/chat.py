"""Chat completions: from a validated request to OpenAI's response and stream-chunk shapes."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pytest_tria_deploy.standins.answers import Answer, Conversation, Message, compose, read
from pytest_tria_deploy.standins.choices import option_score
from pytest_tria_deploy.standins.lexical import count_tokens, truncate_tokens
from pytest_tria_deploy.standins.protocol import APIError, ChatRequest, NamedToolChoice, Tool
from pytest_tria_deploy.standins.schema_fill import FillContext, SchemaError, fill

SYSTEM_FINGERPRINT = "fp_tria_standin"
_PIECE = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class Completion:
    """One reply (repeated for ``n`` choices) with its finish reason and token counts."""

    id: str
    model: str
    created: int
    n: int
    content: str | None
    tool_call: ToolCall | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def _message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content, "refusal": None}
        if self.tool_call is not None:
            message["tool_calls"] = [self.tool_call.as_dict()]
        return message

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {
                    "index": index,
                    "message": self._message(),
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
                for index in range(self.n)
            ],
            "usage": self.usage(),
        }

    def chunks(self, include_usage: bool) -> Iterator[dict[str, Any]]:
        """Stream chunks: role, content piece by piece (or the tool call), finish, usage."""
        for index in range(self.n):
            yield self._chunk(index, {"role": "assistant", "content": ""}, None, include_usage)
            if self.tool_call is not None:
                call = {"index": 0, **self.tool_call.as_dict()}
                yield self._chunk(index, {"tool_calls": [call]}, None, include_usage)
            for piece in _PIECE.findall(self.content or ""):
                yield self._chunk(index, {"content": piece}, None, include_usage)
            yield self._chunk(index, {}, self.finish_reason, include_usage)
        if include_usage:
            yield {**self._envelope(), "choices": [], "usage": self.usage()}

    def _envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    def _chunk(
        self, index: int, delta: dict[str, Any], finish: str | None, include_usage: bool
    ) -> dict[str, Any]:
        chunk = {
            **self._envelope(),
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if include_usage:
            chunk["usage"] = None
        return chunk


def _content(request: ChatRequest, conversation: Conversation, answer: Answer) -> str:
    """The reply text in the requested response format."""
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return answer.text
    if response_format.type == "json_object":
        if not any("json" in m.text().lower() for m in request.messages):
            raise APIError(
                400,
                "'messages' must contain the word 'json' in some form, to use 'response_format' "
                "of type 'json_object'.",
                param="messages",
            )
        return json.dumps({"answer": answer.text})
    if response_format.json_schema is None:
        raise APIError(
            400,
            "response_format of type 'json_schema' needs a 'json_schema' object with a 'schema'.",
            param="response_format",
            code="missing_schema",
        )
    context = FillContext(answer.query, answer.text, conversation.instructions)
    try:
        value = fill(response_format.json_schema.schema_, context)
    except SchemaError as error:
        raise APIError(
            400,
            f"Invalid schema for response_format: {error}",
            param="response_format",
            code="invalid_schema",
        ) from None
    return json.dumps(value)


def _tool_call(request: ChatRequest, conversation: Conversation, answer: Answer) -> ToolCall | None:
    """A tool call when ``tool_choice`` forces one; "auto" and "none" get a text reply."""
    choice = request.tool_choice
    if choice is None or choice in ("none", "auto"):
        return None
    tools = request.tools or []
    if not tools:
        raise APIError(400, "tool_choice needs at least one tool in 'tools'.", param="tool_choice")
    tool: Tool
    if isinstance(choice, NamedToolChoice):
        named = [t for t in tools if t.function.name == choice.function.name]
        if not named:
            raise APIError(
                400,
                f"tool_choice names {choice.function.name!r}, which is not in 'tools'.",
                param="tool_choice",
            )
        tool = named[0]
    else:
        tool = max(
            tools,
            key=lambda t: option_score(answer.query, t.function.name, [t.function.description]),
        )
    parameters = tool.function.parameters or {"type": "object", "properties": {}}
    context = FillContext(answer.query, answer.text, conversation.instructions)
    try:
        arguments = fill(parameters, context)
    except SchemaError as error:
        raise APIError(
            400,
            f"Invalid parameters schema for tool: {error}",
            param="tools",
            code="invalid_schema",
        ) from None
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", tool.function.name, json.dumps(arguments))


def _cut(content: str, request: ChatRequest) -> tuple[str, str]:
    """Apply ``stop`` sequences and the token limit; return the text and finish reason."""
    stops = [request.stop] if isinstance(request.stop, str) else request.stop or []
    for stop in stops:
        if stop and stop in content:
            content = content[: content.index(stop)]
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        content, truncated = truncate_tokens(content, limit)
        if truncated:
            return content, "length"
    return content, "stop"


def complete(request: ChatRequest) -> Completion:
    """The deterministic completion for ``request``."""
    messages = [Message(m.role, m.text()) for m in request.messages]
    conversation = read(messages)
    answer = compose(conversation)
    tool_call = _tool_call(request, conversation, answer)
    n = request.n or 1
    if tool_call is not None:
        content, finish, produced = None, "tool_calls", tool_call.arguments
    else:
        content, finish = _cut(_content(request, conversation, answer), request)
        produced = content
    return Completion(
        id=f"chatcmpl-{uuid.uuid4().hex[:29]}",
        model=request.model,
        created=int(time.time()),
        n=n,
        content=content,
        tool_call=tool_call,
        finish_reason=finish,
        prompt_tokens=sum(count_tokens(m.text) for m in messages),
        completion_tokens=count_tokens(produced) * n,
    )
