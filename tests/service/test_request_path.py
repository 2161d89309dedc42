"""The request path's body limit: untouched when a request has no body, bounded when it has one.

The middleware is driven directly with ASGI messages (what it reads and what it hands on is the
behaviour), then the running service is spoken to over a raw socket, so the framing headers are
exactly what a client sent and a refusal can be seen to come before the body does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send
from tria_service.api.body_limit import MAX_BODY_BYTES, BodyLimit

from pytest_tria_deploy.provision.processes import ServiceServer

LIMIT = 16
CHUNK = b"x" * 10  # two of them exceed LIMIT
SOCKET_TIMEOUT_S = 30.0


class App:
    """The app behind the middleware: records the receive() it was given and the body it read."""

    def __init__(self) -> None:
        self.receives: list[Receive] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.receives.append(receive)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await PlainTextResponse("ok")(scope, receive, send)


class Peer:
    """The server's side of one request: the body in chunks, and what the app sent back."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.reads = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.reads += 1
        if not self.chunks:
            return {"type": "http.disconnect"}
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        (start,) = [m for m in self.sent if m["type"] == "http.response.start"]
        status: int = start["status"]
        return status


def http_scope(headers: dict[str, str], method: str = "POST", version: str = "1.1") -> Scope:
    return {
        "type": "http",
        "http_version": version,
        "method": method,
        "path": "/api/v1/chat",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }


async def call(scope: Scope, peer: Peer) -> App:
    app = App()
    await BodyLimit(app, limit=LIMIT)(scope, peer.receive, peer.send)
    return app


async def test_a_request_declaring_no_body_reaches_the_app_with_the_servers_own_receive() -> None:
    """A GET without Content-Length or Transfer-Encoding is passed on unread and unwrapped."""
    peer = Peer(b"")
    app = await call(http_scope({"host": "tria.test"}, method="GET"), peer)
    assert app.receives == [peer.receive]
    assert (peer.status, peer.reads) == (200, 1)  # the app's own read, none by the middleware


async def test_a_declared_length_within_the_limit_reaches_the_app_unwrapped() -> None:
    peer = Peer(b"hello")
    app = await call(http_scope({"content-length": "5"}), peer)
    assert app.receives == [peer.receive]
    assert app.bodies == [b"hello"]
    assert peer.status == 200


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body() -> None:
    peer = Peer(CHUNK, CHUNK)
    app = await call(http_scope({"content-length": str(LIMIT + 1)}), peer)
    assert (app.receives, peer.reads, peer.status) == ([], 0, 413)


@pytest.mark.parametrize(
    ("headers", "version"),
    [
        ({"transfer-encoding": "chunked"}, "1.1"),
        # Transfer-Encoding wins over Content-Length (RFC 9112 6.3): the small length is no bound
        ({"transfer-encoding": "chunked", "content-length": "4"}, "1.1"),
        ({}, "2"),  # HTTP/2 frames a body without either header
    ],
    ids=["chunked", "chunked-with-small-length", "http2-without-length"],
)
async def test_a_body_of_unknown_length_is_read_only_up_to_the_limit(
    headers: dict[str, str], version: str
) -> None:
    peer = Peer(CHUNK, CHUNK, CHUNK, CHUNK)
    app = await call(http_scope(headers, version=version), peer)
    assert (app.receives, peer.reads, peer.status) == ([], 2, 413)
    assert json.loads(peer.sent[1]["body"]) == {"detail": f"request body larger than {LIMIT} bytes"}


async def test_a_chunked_body_within_the_limit_is_handed_to_the_app_whole() -> None:
    peer = Peer(b"ab", b"cd")
    app = await call(http_scope({"transfer-encoding": "chunked"}), peer)
    assert app.bodies == [b"abcd"]
    assert peer.status == 200


async def exchange(server: ServiceServer, request: bytes) -> tuple[int, Any]:
    """Send raw bytes, read the answer to the end (every request here closes the connection)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", server.port), SOCKET_TIMEOUT_S
    )
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), SOCKET_TIMEOUT_S)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: tria.test", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


REFUSED = {"detail": f"request body larger than {MAX_BODY_BYTES} bytes"}
JSON = "Content-Type: application/json"


async def test_the_service_answers_a_declared_oversize_body_before_it_is_sent(
    running_service: ServiceServer,
) -> None:
    """Only the headers go out: the 413 comes back while the body has not been sent at all."""
    request = head("POST", "/api/v1/chat", JSON, f"Content-Length: {MAX_BODY_BYTES + 1}")
    assert await exchange(running_service, request) == (413, REFUSED)


async def test_the_service_reads_a_chunked_body_only_up_to_the_limit(
    running_service: ServiceServer,
) -> None:
    """A chunked body one byte over the limit and never finished: refused all the same."""
    over = b" " * (MAX_BODY_BYTES // 2)
    body = chunk(over) + chunk(over) + chunk(b" ")  # no closing 0-chunk
    request = head("POST", "/api/v1/chat", JSON, "Transfer-Encoding: chunked") + body
    assert await exchange(running_service, request) == (413, REFUSED)


async def test_the_service_still_hands_a_small_chunked_body_and_a_bodiless_get_to_the_app(
    running_service: ServiceServer,
) -> None:
    """The chat endpoint validates a chunked body it was handed (422), and GET /health answers."""
    body = chunk(b'{"message": ') + chunk(b"42}") + b"0\r\n\r\n"
    request = head("POST", "/api/v1/chat", JSON, "Transfer-Encoding: chunked") + body
    status, answer = await exchange(running_service, request)
    assert status == 422
    assert answer["detail"][0]["loc"] == ["body", "message"]
    status, answer = await exchange(running_service, head("GET", "/health"))
    assert status == 200
    assert answer["status"] == "pass"
