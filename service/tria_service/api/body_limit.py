"""Refuse request bodies larger than any valid request, before they are read into memory.

FastAPI reads a JSON body whole before validating it, so without a bound a client could make the
service hold a body of any size (100 MB took 150 MB of memory just to be refused with a 422). A
declared Content-Length over the bound is refused at once; a chunked body is read up to it.

A request declaring neither has no body in HTTP/1.x (RFC 9112 section 6.3), so it is passed on
untouched: most requests (every GET) cost this middleware one scan of their headers and nothing
more. Over HTTP/2 and later a body may come without either header, so there it is read up to the
bound as a chunked one is.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Above any valid request: a chat message has at most 100 000 characters (the hard limit of
# TRIA_CHAT_MAX_MESSAGE_CHARS), each at most 12 bytes of JSON ("\ud83d\ude00" for one emoji).
MAX_BODY_BYTES = 2 * 1024 * 1024
# The HTTP versions in which a request without Content-Length or Transfer-Encoding has no body.
_FRAMED_BY_HEADERS = frozenset({"1.0", "1.1"})


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            chunked, declared = _framing(scope["headers"])
            if chunked or (
                declared is None and scope.get("http_version", "1.1") not in _FRAMED_BY_HEADERS
            ):
                await self._read_within_limit(scope, receive, send)
                return
            if declared is not None and declared.isdigit() and int(declared) > self.limit:
                await self._refuse(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _read_within_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer a body of unknown length up to the limit, then hand it to the app."""
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = JSONResponse(
            {"detail": f"request body larger than {self.limit} bytes"},
            status_code=413,
            headers={"Connection": "close"},
        )
        await refused(scope, receive, send)


def _framing(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bool, bytes | None]:
    """Whether a Transfer-Encoding is declared (it wins over Content-Length), and the length."""
    chunked = False
    declared = None
    for name, value in headers:
        if name == b"transfer-encoding":
            chunked = True
        elif name == b"content-length":
            declared = value
    return chunked, declared


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the buffered body over once, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
