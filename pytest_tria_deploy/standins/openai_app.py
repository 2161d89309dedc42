"""The stand-in's ASGI app: OpenAI's ``/v1`` routes plus ``/_admin`` routes for tests.

Every ``/v1`` request is counted, then meets the injected fault (if any), then auth, then its
handler. Errors use OpenAI's shape, so the real SDK raises its usual exception classes.
"""

from __future__ import annotations

import base64
import hmac
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pytest_tria_deploy.standins.chat import Completion, complete
from pytest_tria_deploy.standins.faults import Fault, StandinState
from pytest_tria_deploy.standins.lexical import count_tokens, embed
from pytest_tria_deploy.standins.protocol import (
    CHAT_MODELS,
    EMBEDDING_MODELS,
    NATIVE_EMBEDDING_DIMENSIONS,
    APIError,
    ChatRequest,
    EmbeddingRequest,
    FaultMode,
    FaultRequest,
    parse_body,
)

MODELS = {
    "gpt-4o-mini": 1721172741,
    "gpt-4o": 1715367049,
    "text-embedding-3-small": 1705948997,
    "text-embedding-3-large": 1705953180,
}
OPENAI_VERSION = "2020-10-01"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
Handler = Callable[[Request, bytes], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _model_entry(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": MODELS[model], "owned_by": "system"}


def _require_model(model: str, allowed: tuple[str, ...], endpoint: str) -> None:
    if model in allowed:
        return
    if model in MODELS:
        raise APIError(
            400,
            f"The model `{model}` is not supported by {endpoint}; use one of {', '.join(allowed)}.",
            param="model",
            code="model_not_supported",
        )
    raise APIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


class Authenticator:
    """Checks ``Authorization: Bearer``; the configured key stays a SecretStr, never echoed."""

    def __init__(self, api_key: str | None) -> None:
        self._key = SecretStr(api_key) if api_key else None

    def check(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise APIError(
                401,
                "You didn't provide an API key. Send it in an Authorization header using Bearer "
                "auth (Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        expected = self._key
        if expected is not None and not hmac.compare_digest(
            token.encode(), expected.get_secret_value().encode()
        ):
            raise APIError(
                401,
                "Incorrect API key provided. Use the key the stand-in was started with.",
                code="invalid_api_key",
            )


async def _models(request: Request, body: bytes) -> Response:
    model = request.path_params.get("model")
    if model is None:
        return JSONResponse({"object": "list", "data": [_model_entry(m) for m in MODELS]})
    if model not in MODELS:
        _require_model(model, (), "the models endpoint")
    return JSONResponse(_model_entry(model))


async def _sse(completion: Completion, include_usage: bool) -> AsyncIterator[str]:
    for chunk in completion.chunks(include_usage):
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


async def _chat(request: Request, body: bytes) -> Response:
    chat = parse_body(body, ChatRequest)
    _require_model(chat.model, CHAT_MODELS, "/v1/chat/completions")
    completion = complete(chat)
    if chat.stream:
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        return StreamingResponse(
            _sse(completion, include_usage),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )
    return JSONResponse(completion.body())


def _embedding_inputs(raw: object) -> list[str]:
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise APIError(400, "'input' must be a non-empty string or list of strings.", param="input")
    if not all(isinstance(text, str) for text in texts):
        raise APIError(
            400,
            "Token-array input is not supported by the OpenAI stand-in; send text as a string "
            "or a list of strings.",
            param="input",
            code="unsupported_input",
        )
    if any(not text.strip() for text in texts):
        raise APIError(400, "'input' must not contain empty strings.", param="input")
    if len(texts) > 2048:
        raise APIError(400, "'input' may hold at most 2048 strings.", param="input")
    return [str(text) for text in texts]


async def _embeddings(request: Request, body: bytes) -> Response:
    call = parse_body(body, EmbeddingRequest)
    _require_model(call.model, EMBEDDING_MODELS, "/v1/embeddings")
    texts = _embedding_inputs(call.input)
    largest = NATIVE_EMBEDDING_DIMENSIONS[call.model]
    dimensions = call.dimensions or largest
    if dimensions > largest:
        raise APIError(
            400,
            f"'dimensions' must be at most {largest} for {call.model}.",
            param="dimensions",
        )
    data = []
    for index, text in enumerate(texts):
        vector = embed(text, dimensions)
        encoded: list[float] | str = vector
        if call.encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_tokens(text) for text in texts)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _v1(state: StandinState, auth: Authenticator, route: str, handler: Handler) -> Endpoint:
    """Wrap a ``/v1`` handler: count it, inject the fault, authenticate, answer errors."""

    async def endpoint(request: Request) -> Response:
        state.requests[route] += 1
        started = time.perf_counter()
        body = await request.body()
        try:
            if not await state.apply(request.is_disconnected):
                response: Response = Response(status_code=499)
            else:
                auth.check(request)
                response = await handler(request, body)
        except APIError as error:
            response = _error_response(error)
        response.headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
        response.headers["openai-version"] = OPENAI_VERSION
        response.headers["openai-processing-ms"] = str(int((time.perf_counter() - started) * 1000))
        state.statuses[response.status_code] += 1
        return response

    return endpoint


def _admin(allow_remote: bool, handler: Endpoint) -> Endpoint:
    """Admin routes need no OpenAI key, so by default only loopback clients may use them."""

    async def endpoint(request: Request) -> Response:
        host = request.client.host if request.client else ""
        if not allow_remote and host not in _LOOPBACK:
            raise APIError(403, "The /_admin routes only answer 127.0.0.1.", type="forbidden")
        return await handler(request)

    return endpoint


def create_app(
    api_key: str | None = None,
    fault: FaultMode | str = "none",
    *,
    latency_ms: int = 1000,
    retry_after: int = 1,
    allow_remote_admin: bool = False,
) -> Starlette:
    """The stand-in as an ASGI app; ``fault`` is active from the start until changed or reset."""
    settings = {"mode": fault, "latency_ms": latency_ms, "retry_after": retry_after}
    try:
        initial = FaultRequest.model_validate(settings)
    except ValidationError as error:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
        raise ValueError(f"invalid stand-in fault settings: {problems}") from None
    state = StandinState()
    state.set_fault(Fault(initial.mode, initial.latency_ms, initial.retry_after))
    auth = Authenticator(api_key)

    async def set_fault(request: Request) -> Response:
        wanted = parse_body(await request.body(), FaultRequest)
        state.set_fault(Fault(wanted.mode, wanted.latency_ms, wanted.retry_after, wanted.count))
        return JSONResponse({"fault": state.fault.describe()})

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse(state.stats())

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return _error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = APIError(
            exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=None
        )
        return _error_response(error)

    models = _v1(state, auth, "models", _models)
    chat = _v1(state, auth, "chat_completions", _chat)
    embeddings = _v1(state, auth, "embeddings", _embeddings)
    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/_admin/fault", _admin(allow_remote_admin, set_fault), methods=["POST"]),
        Route("/_admin/stats", _admin(allow_remote_admin, stats), methods=["GET"]),
        Route("/_admin/reset", _admin(allow_remote_admin, reset), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, exception_handlers={APIError: api_error, HTTPException: http_error}
    )
    app.state.standin = state
    return app
