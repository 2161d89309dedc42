"""Synthetic conversations through the service's chat API, cleaned up after themselves.

A deployment check talks to the chat as a customer would, but it marks every request as its own
(``X-Tria-Synthetic: 1`` with the diagnostics token, which the service requires for it) and
deletes every session it opened afterwards: a protected target keeps no messages, no escalations
and no cached state from a gate run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from pytest_tria_deploy.redact import redact
from pytest_tria_deploy.report.attach import attach_json

CHAT_PATH = "/api/v1/chat"
SESSIONS_PATH = "/api/v1/sessions"
SYNTHETIC_HEADER = "X-Tria-Synthetic"
BODY_EXCERPT_CHARS = 300
TITLE_CHARS = 60


class ChatError(Exception):
    """The chat API did not answer a synthetic request as it should have."""


class CleanupError(Exception):
    """Synthetic sessions could not be deleted: they are still on the target."""


@dataclass(frozen=True)
class Source:
    source_id: str
    title: str


@dataclass(frozen=True)
class Turn:
    """One answered turn, with the RateLimit headers it came with (None when absent)."""

    session_id: str
    reply: str
    intent: str
    confidence: float
    sources: tuple[Source, ...]
    escalated: bool
    cached: bool
    rate_limit: int | None
    rate_remaining: int | None

    @property
    def source_ids(self) -> list[str]:
        return [source.source_id for source in self.sources]


class SyntheticChat:
    """Synthetic conversations on one service instance; ``close()`` deletes every session."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self._headers = {SYNTHETIC_HEADER: "1", "Authorization": f"Bearer {token}"}
        self._open: dict[str, None] = {}  # insertion-ordered set of sessions still to delete

    async def turn(self, message: str, session_id: str | None = None) -> Turn:
        """Send one message (a new session unless ``session_id``); raises ChatError unless 200.
        The request and the answer are attached to the test's Allure result, redacted."""
        body: dict[str, Any] = {"message": message}
        if session_id is not None:
            body["session_id"] = session_id
        answer = await self.client.post(CHAT_PATH, json=body, headers=self._headers)
        attach_json(
            f"chat turn: {message[:TITLE_CHARS]}",
            {"request": body, "status_code": answer.status_code, "answer": _body(answer)},
        )
        _expect(answer, 200, "a synthetic chat turn")
        data = answer.json()
        self._open.setdefault(str(data["session_id"]), None)
        return Turn(
            session_id=str(data["session_id"]),
            reply=data["reply"],
            intent=data["intent"],
            confidence=float(data["confidence"]),
            sources=tuple(Source(s["source_id"], s["title"]) for s in data["sources"]),
            escalated=bool(data["escalated"]),
            cached=bool(data["cached"]),
            rate_limit=_int_header(answer, "RateLimit-Limit"),
            rate_remaining=_int_header(answer, "RateLimit-Remaining"),
        )

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        """The session's stored messages, oldest first."""
        answer = await self.client.get(
            f"{SESSIONS_PATH}/{session_id}/messages", headers=self._headers
        )
        _expect(answer, 200, f"reading session {session_id}")
        messages: list[dict[str, Any]] = answer.json()["messages"]
        return messages

    async def is_gone(self, session_id: str) -> bool:
        """Whether the service no longer knows the session: a second DELETE answers 404. (A read
        would count against the session's rate limit, and so leave a key behind.)"""
        return (await self._delete(session_id)).status_code == 404

    async def delete(self, session_id: str) -> dict[str, Any]:
        """Delete a session now; returns what the service removed (messages, escalations)."""
        answer = await self._delete(session_id)
        _expect(answer, 200, f"deleting session {session_id}")
        self._open.pop(session_id, None)
        deleted: dict[str, Any] = answer.json()
        return deleted

    async def close(self) -> None:
        """Delete every session still open (one already gone is fine); raises CleanupError naming
        each session left behind, after trying them all."""
        left: list[str] = []
        for session_id in list(self._open):
            try:
                answer = await self._delete(session_id)
            except httpx.HTTPError as exc:  # one unanswered delete must not stop the others
                left.append(f"{session_id}: {type(exc).__name__}: {redact(str(exc))}")
                continue
            if answer.status_code in (200, 404):
                self._open.pop(session_id, None)
            else:
                left.append(f"{session_id}: DELETE {_describe(answer)}")
        if left:
            raise CleanupError(
                f"synthetic sessions left on {self.client.base_url} (delete them with "
                "DELETE /api/v1/sessions/<id> and the admin token): " + "; ".join(left)
            )

    async def _delete(self, session_id: str) -> httpx.Response:
        return await self.client.delete(f"{SESSIONS_PATH}/{session_id}", headers=self._headers)


def _expect(answer: httpx.Response, status: int, doing: str) -> None:
    if answer.status_code != status:
        raise ChatError(f"{doing}: {answer.request.method} {answer.url.path} {_describe(answer)}")


def _describe(answer: httpx.Response) -> str:
    hint = " (the diagnostics token was refused)" if answer.status_code == 401 else ""
    return f"answered {answer.status_code}{hint}: {redact(answer.text[:BODY_EXCERPT_CHARS])}"


def _body(answer: httpx.Response) -> Any:
    """The JSON body, or an excerpt of the text when it is not JSON."""
    try:
        return answer.json()
    except ValueError:
        return answer.text[:BODY_EXCERPT_CHARS]


def _int_header(answer: httpx.Response, name: str) -> int | None:
    value = answer.headers.get(name)
    return int(value) if value is not None and value.isdigit() else None
