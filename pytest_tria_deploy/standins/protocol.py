"""Request bodies the stand-in accepts and the OpenAI error shape it answers with.

Bodies are parsed by hand (not by FastAPI's 422 machinery) so every bad request gets OpenAI's
400 ``{"error": {"message", "type", "param", "code"}}``; messages never echo submitted values.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CHAT_MODELS = ("gpt-4o-mini", "gpt-4o")
EMBEDDING_MODELS = ("text-embedding-3-small", "text-embedding-3-large")
# OpenAI's native sizes: the default when no `dimensions` is asked for, and its upper bound, so
# vectors from the stand-in fit a store sized for the real model.
NATIVE_EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


class APIError(Exception):
    """An error answered in OpenAI's shape with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text or "" for part in self.content or [] if part.type == "text")


class StreamOptions(_Lenient):
    include_usage: bool = False


class JSONSchemaFormat(_Lenient):
    name: str = "response"
    schema_: dict[str, Any] | bool = Field(default=True, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class FunctionSpec(_Lenient):
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class Tool(_Lenient):
    type: str = "function"
    function: FunctionSpec


class NamedFunction(_Lenient):
    name: str


class NamedToolChoice(_Lenient):
    type: str = "function"
    function: NamedFunction


class ChatRequest(_Lenient):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=1, ge=1, le=16)
    stop: str | list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None


class EmbeddingRequest(_Lenient):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = "float"


FaultMode = Literal["none", "401", "429", "500", "latency", "hang"]


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: FaultMode
    latency_ms: int = Field(default=1000, ge=0, le=600_000)
    retry_after: int = Field(default=1, ge=0, le=3600)
    count: int | None = Field(default=None, ge=1)


Model = TypeVar("Model", bound=BaseModel)


def parse_body(raw: bytes, model: type[Model]) -> Model:
    """The body as ``model``, or a 400 naming every problem (locations only, never values)."""
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise APIError(
            400,
            "We could not parse the JSON body of your request. The body must be valid JSON.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_body")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_input=False, include_url=False):
            location = ".".join(str(part) for part in item["loc"]) or "body"
            problems.append(f"{location}: {item['msg']}")
        first = error.errors()[0]["loc"]
        raise APIError(
            400,
            "Invalid request body: " + "; ".join(sorted(set(problems))),
            param=str(first[0]) if first else None,
            code="invalid_value",
        ) from None
