"""The chat API: a conversation turn, a session's messages, deleting a session, reindexing.

Every response a client can cause is declared in the OpenAPI schema with its body: 404 for an
unknown session, 422 for invalid input (a JSON body that is not UTF-8 included), 413 for a body
larger than any valid one, 429 with Retry-After over a rate limit, 401 without the admin token, 503
when nothing could be made durable. The schema states the message rules the service enforces (not
blank, no control characters, at most TRIA_CHAT_MAX_MESSAGE_CHARS, set per app from its settings).
Chat turns and message reads count against the client's rate limit and carry RateLimit-* headers.
The client is the peer address (behind a proxy listed in TRIA_FORWARDED_ALLOW_IPS, the address it
forwards); X-Client-Id names it only when TRIA_TRUST_CLIENT_ID_HEADER says a gateway sets it.

X-Tria-Synthetic marks a deployment gate's own traffic, and is honoured only with the diagnostics
or admin bearer token: such requests count for their session alone (not the client), and their
session leaves nothing behind once deleted, so a gate may run on a production target.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator

from tria_service.api.auth import require_bearer
from tria_service.api.drain import RETRY_AFTER_SECONDS
from tria_service.api.health import ErrorBody
from tria_service.chat.agent import ChatReply
from tria_service.chat.components import ChatComponents
from tria_service.chat.errors import (
    KnowledgeError,
    RateLimitedError,
    SessionNotFoundError,
    StorageUnavailableError,
)
from tria_service.chat.intents import Intent
from tria_service.chat.rate_limit import RateDecision
from tria_service.chat.sessions import StoredMessage
from tria_service.config import Settings

ADMIN_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="tria-admin"'}
SYNTHETIC_HEADER = "X-Tria-Synthetic"
SYNTHETIC_UNAUTHORIZED = (
    f"{SYNTHETIC_HEADER} needs Authorization: Bearer with the diagnostics or admin token "
    "(TRIA_DIAGNOSTICS_TOKEN or TRIA_ADMIN_TOKEN); send the request without the header "
    "for ordinary traffic"
)
# The control characters a message may not hold (tab, newline and carriage return are text).
_CONTROL_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
# Exactly what str.isspace() (and so str.strip()) takes for whitespace, spelled out: \s means
# another set in ECMA-262 regexes, which JSON Schema patterns are (\ufeff in, \x85 out).
_SPACE_CHARS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The declared form of _readable's rules: no control character, and one that is not whitespace.
# Plain classes and escapes only, so Python's re and ECMA-262 read it alike.
MESSAGE_PATTERN = f"^[^{_CONTROL_CHARS}]*[^{_CONTROL_CHARS}{_SPACE_CHARS}][^{_CONTROL_CHARS}]*$"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
_TRUTHY = frozenset({"1", "true", "yes"})
CLIENT_ID_MAX_CHARS = 200


class SourceBody(BaseModel):
    source_id: str = Field(description="the article's id (its file stem)")
    title: str


class ChatRequestBody(BaseModel):
    session_id: UUID | None = Field(
        default=None, description="continue this session; omit to start a new one"
    )
    # Declared, not enforced, by the schema: _readable keeps the service's own wording, and the
    # configured limit (maxLength, set per app) is checked per request; BodyLimit bounds the body.
    message: str = Field(
        description="the customer's message: not blank, no control characters but tab, newline "
        "and carriage return, at most TRIA_CHAT_MAX_MESSAGE_CHARS characters",
        examples=["Where is my order? I need my tracking number."],
        json_schema_extra={"minLength": 1, "pattern": MESSAGE_PATTERN},
    )

    @field_validator("message")
    @classmethod
    def _readable(cls, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON's \ud800 escapes decode to lone surrogates, which nothing downstream can encode.
            message = "message must be a valid string of Unicode text (it has a lone surrogate)"
            raise ValueError(message) from None
        if not value.strip():
            raise ValueError("message must not be empty or only whitespace")
        if _CONTROL.search(value):
            raise ValueError("message must not contain control characters (other than tab/newline)")
        return value


class ChatResponseBody(BaseModel):
    session_id: UUID
    reply: str
    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    sources: list[SourceBody] = Field(description="the articles the reply cites")
    escalated: bool = Field(description="a human agent will follow up (an escalation was filed)")
    cached: bool = Field(description="served from the answer cache, without a model call")


class MessageBody(BaseModel):
    id: int
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    intent: str | None = Field(description="a user message's classified intent")
    confidence: float | None
    sources: list[SourceBody] = Field(description="for a reply: the articles it cites")
    escalated: bool
    cached: bool
    created_at: datetime


class MessagesBody(BaseModel):
    session_id: UUID
    messages: list[MessageBody] = Field(description="oldest first")


class DeletedBody(BaseModel):
    session_id: UUID
    messages: int = Field(description="messages deleted")
    escalations: int = Field(description="escalations deleted")


class ReindexBody(BaseModel):
    added: int = Field(description="articles new to the collection")
    updated: int = Field(description="articles whose chunks were replaced")
    deleted: int = Field(description="articles no longer in the folder, their chunks deleted")
    unchanged: int
    chunks_written: int
    chunks_deleted: int
    chunks: int = Field(description="chunks of the folder's articles now in the collection")
    version: str = Field(description="digest of the ingested articles (keys the answer cache)")
    skipped: list[str] = Field(description="files left out, with the reason")
    seconds: float


class RateLimitedBody(BaseModel):
    detail: str
    scope: Literal["session", "client"]
    limit: int
    window_s: int
    retry_after_s: int


_RATE_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in {
        "RateLimit-Limit": "requests allowed per window (the most constrained scope)",
        "RateLimit-Remaining": "requests left in the current window",
        "RateLimit-Reset": "seconds until the window ends",
    }.items()
}
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "storage unavailable, starting or shutting down"}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no session with this id"}
}
_RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": RateLimitedBody,
        "description": "over the client's rate limit",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}, **_RATE_HEADERS},
    }
}
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "missing or wrong bearer token (TRIA_ADMIN_TOKEN or TRIA_DIAGNOSTICS_TOKEN)",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
}
_SYNTHETIC_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        **_UNAUTHORIZED[401],
        "description": f"{SYNTHETIC_HEADER} without the diagnostics or admin bearer token",
    }
}
# The bearer token is optional on routes that take it only for X-Tria-Synthetic: in OpenAPI, an
# empty requirement next to the bearer one says "with the token, or without any".
_OPTIONAL_BEARER: dict[str, Any] = {"security": [{}]}


class Utf8JsonRequest(Request):
    """A JSON body must be UTF-8 (RFC 8259; a leading byte order mark is ignored, as before):
    anything else is a 422 like any other JSON that does not parse, not an undeclared 400."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                what = f"the JSON body is not valid UTF-8 (byte {exc.start})"
                raise json.JSONDecodeError(what, "", exc.start) from None
            self._json = json.loads(text)
        return self._json


class Utf8JsonRoute(APIRoute):
    """Hands the route a Utf8JsonRequest, whose ``json()`` FastAPI calls for a JSON body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def utf8_json(request: Request) -> Response:
            return await handler(Utf8JsonRequest(request.scope, request.receive))

        return utf8_json


def declare_message_limit(app: FastAPI) -> None:
    """Put the app's TRIA_CHAT_MAX_MESSAGE_CHARS into its schema as the message's maxLength.

    One router serves every app, so the model cannot carry a per-app limit; the schema reads it
    from the app's settings (set at creation or, once loaded, by the lifespan) when generated.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        settings: Settings | None = app.state.settings
        if settings is not None:
            body = schema["components"]["schemas"][ChatRequestBody.__name__]
            body["properties"]["message"]["maxLength"] = settings.tria_chat_max_message_chars
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's way to extend the schema


router = APIRouter(prefix="/api/v1", tags=["chat"], route_class=Utf8JsonRoute)
_admin_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminBearer",
    description="TRIA_ADMIN_TOKEN, or TRIA_DIAGNOSTICS_TOKEN",
)


def _components(request: Request) -> ChatComponents:
    components: ChatComponents | None = getattr(request.app.state, "chat", None)
    if components is None:
        raise HTTPException(
            503,
            "the chat components are not started",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return components


Components = Annotated[ChatComponents, Depends(_components)]


def require_admin_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    """Bearer TRIA_ADMIN_TOKEN or TRIA_DIAGNOSTICS_TOKEN."""
    settings = request.app.state.settings
    accepted = [settings.tria_diagnostics_token, settings.tria_admin_token]
    require_bearer(credentials, accepted, ADMIN_UNAUTHORIZED_HEADERS)


def _client_id(
    request: Request,
    components: Components,
    header: Annotated[
        str | None,
        Header(
            alias="X-Client-Id",
            description="who is asking, set by a trusted gateway: honoured (and then 1 to "
            f"{CLIENT_ID_MAX_CHARS} characters) only when TRIA_TRUST_CLIENT_ID_HEADER is true; "
            "otherwise ignored, and the peer address is the client",
        ),
    ] = None,
) -> str:
    """Whose budget a request counts against: never a value the client itself picked, unless the
    operator said a gateway sets X-Client-Id. A header that is ignored is not validated either."""
    if header is None or not components.settings.tria_trust_client_id_header:
        return request.client.host if request.client is not None else "unknown"
    if not 1 <= len(header) <= CLIENT_ID_MAX_CHARS:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long" if header else "string_too_short",
                    "loc": ("header", "X-Client-Id"),
                    "msg": f"X-Client-Id must be 1 to {CLIENT_ID_MAX_CHARS} characters",
                    "ctx": {"min_length": 1, "max_length": CLIENT_ID_MAX_CHARS},
                }
            ]
        )
    return header


def _synthetic(
    components: Components,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
    header: Annotated[
        str | None,
        Header(
            alias=SYNTHETIC_HEADER,
            max_length=10,
            description="1 (or true, yes) marks a deployment gate's own traffic; honoured only "
            "with Authorization: Bearer TRIA_DIAGNOSTICS_TOKEN or TRIA_ADMIN_TOKEN (401 "
            "otherwise). A new session is marked synthetic; the request counts for its session "
            "only, not the client; the answer-cache entries the session creates are deleted "
            "with it by DELETE /api/v1/sessions/{id}. Send it, with the token, on every request "
            "of a synthetic conversation",
        ),
    ] = None,
) -> bool:
    """Whether the request is a gate's synthetic traffic; 401 for the header without a token,
    so nobody can mark traffic to slip past the client's rate limit."""
    if (header or "").strip().lower() not in _TRUTHY:
        return False
    settings = components.settings
    accepted = [settings.tria_diagnostics_token, settings.tria_admin_token]
    require_bearer(credentials, accepted, ADMIN_UNAUTHORIZED_HEADERS, SYNTHETIC_UNAUTHORIZED)
    return True


ClientId = Annotated[str, Depends(_client_id)]
Synthetic = Annotated[bool, Depends(_synthetic)]
Admin = [Depends(require_admin_token)]


@router.post(
    "/chat",
    response_model=ChatResponseBody,
    summary="One conversation turn: the reply, its intent, cited sources, escalation",
    description="A turn of a conversation; omit session_id to start one. Every turn counts "
    "against the session's and the client's rate limits. With X-Tria-Synthetic: 1 and the "
    "diagnostics or admin bearer token, a deployment gate's turn counts for its session only "
    "and the session is marked synthetic: DELETE /api/v1/sessions/{id} then removes everything "
    "it wrote (rows, hot state, its rate counter, the answer-cache entries it created).",
    openapi_extra=_OPTIONAL_BEARER,
    responses={
        200: {"headers": _RATE_HEADERS},
        **_SYNTHETIC_UNAUTHORIZED,
        **_NOT_FOUND,
        413: {"model": ErrorBody, "description": "request body larger than any valid request"},
        429: {**_RATE_LIMITED[429], "description": "over the session's or the client's limit"},
        **_UNAVAILABLE,
    },
)
async def chat(
    body: ChatRequestBody,
    response: Response,
    components: Components,
    client_id: ClientId,
    synthetic: Synthetic,
) -> ChatResponseBody | JSONResponse:
    limit = components.settings.tria_chat_max_message_chars
    if len(body.message) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("body", "message"),
                    "msg": f"message is longer than {limit} characters "
                    "(TRIA_CHAT_MAX_MESSAGE_CHARS)",
                    "ctx": {"max_length": limit},
                }
            ]
        )
    try:
        reply = await components.agent.chat(
            body.message,
            session_id=body.session_id,
            client_id=client_id,
            synthetic=synthetic,
        )
    except RateLimitedError as exc:
        return _rate_limited(exc.decision)
    except SessionNotFoundError as exc:
        headers = exc.rate.headers() if exc.rate is not None else None
        raise HTTPException(404, "session not found", headers=headers) from None
    if reply.rate is not None:
        response.headers.update(reply.rate.headers())
    return _chat_body(reply)


@router.get(
    "/sessions/{session_id}/messages",
    response_model=MessagesBody,
    summary="Every message of a session, oldest first",
    description="Each read counts against the client's rate limit; with X-Tria-Synthetic: 1 "
    "and the diagnostics or admin bearer token, against the session's instead.",
    openapi_extra=_OPTIONAL_BEARER,
    responses={
        200: {"headers": _RATE_HEADERS},
        **_SYNTHETIC_UNAUTHORIZED,
        **_NOT_FOUND,
        **_RATE_LIMITED,
        **_UNAVAILABLE,
    },
)
async def session_messages(
    session_id: UUID,
    response: Response,
    components: Components,
    client_id: ClientId,
    synthetic: Synthetic,
) -> MessagesBody | JSONResponse:
    """Counted before the lookup: reading, even unknown ids, is not free."""
    try:
        if synthetic:
            rate = await components.agent.limit(client_id, session_id, client_scope=False)
        else:
            rate = await components.agent.limit(client_id)
    except RateLimitedError as exc:
        return _rate_limited(exc.decision)
    headers = rate.headers() if rate is not None else {}
    try:
        messages = await components.sessions.messages(session_id)
    except SessionNotFoundError:
        raise HTTPException(404, "session not found", headers=headers) from None
    response.headers.update(headers)
    return MessagesBody(session_id=session_id, messages=[_message_body(m) for m in messages])


@router.delete(
    "/sessions/{session_id}",
    response_model=DeletedBody,
    summary="Delete a session, its messages, escalations and cached state (admin)",
    dependencies=Admin,
    responses={**_UNAUTHORIZED, **_NOT_FOUND, **_UNAVAILABLE},
)
async def delete_session(session_id: UUID, components: Components) -> DeletedBody:
    try:
        deleted = await components.agent.delete_session(session_id)
    except SessionNotFoundError:
        raise HTTPException(404, "session not found") from None
    return DeletedBody(session_id=session_id, **deleted)


@router.post(
    "/knowledge/reindex",
    response_model=ReindexBody,
    summary="Re-ingest the knowledge folder: only what changed is embedded again (admin)",
    dependencies=Admin,
    responses={**_UNAUTHORIZED, **_UNAVAILABLE},
)
async def reindex(components: Components) -> ReindexBody:
    report = await components.knowledge.ingest()
    return ReindexBody.model_validate(asdict(report))


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """StorageUnavailableError and KnowledgeError: the cause, already redacted, and a retry hint."""
    what = "knowledge base" if isinstance(exc, KnowledgeError) else "storage"
    return JSONResponse(
        {"detail": f"{what} unavailable: {exc}"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body without the rejected input: a client's text is never echoed back (it
    may be 100 kB long, or not even encodable, like an unpaired surrogate)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


EXCEPTION_HANDLERS = {
    RequestValidationError: invalid_request,
    StorageUnavailableError: unavailable,
    KnowledgeError: unavailable,
}


def _rate_limited(decision: RateDecision) -> JSONResponse:
    body = RateLimitedBody(
        detail=f"rate limit reached: {decision.limit} requests per {decision.window}s for this "
        f"{decision.scope}; retry after {decision.reset}s",
        scope=decision.scope,
        limit=decision.limit,
        window_s=decision.window,
        retry_after_s=decision.reset,
    )
    return JSONResponse(body.model_dump(), status_code=429, headers=decision.headers())


def _chat_body(reply: ChatReply) -> ChatResponseBody:
    return ChatResponseBody(
        session_id=reply.session_id,
        reply=reply.reply,
        intent=reply.intent,
        confidence=reply.confidence,
        sources=[SourceBody(source_id=s.source_id, title=s.title) for s in reply.sources],
        escalated=reply.escalated,
        cached=reply.cached,
    )


def _message_body(message: StoredMessage) -> MessageBody:
    meta = message.metadata
    return MessageBody(
        id=message.id,
        role=message.role,
        content=message.content,
        intent=message.intent,
        confidence=message.confidence,
        sources=[SourceBody.model_validate(s) for s in meta.get("sources", [])],
        escalated=bool(meta.get("escalated")),
        cached=bool(meta.get("cached")),
        created_at=message.created_at,
    )
