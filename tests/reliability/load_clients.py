"""Concurrent chat and readiness clients for the shutdown-under-load test, and their accounting.

Every request is recorded with the moment its last byte was handed to the socket (httpcore's
``send_request_body.complete`` trace event), so it can be told exactly which requests the service
had been sent before a signal. Every loop stops at a deadline and when asked to.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
import signal
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType
from typing import Any, Literal, Self

import httpx

CHAT = "/api/v1/chat"
READINESS = "/api/v1/health/readiness"
_SENT_EVENT = "http11.send_request_body.complete"
RETRY_PAUSE_S = 0.25  # after a refused connection
# One TLS context for every client: httpx builds a new one per client otherwise (~50 ms of CPU
# each, which would stall the clients' own event loop). The URLs are plain http on 127.0.0.1.
_TLS = ssl.create_default_context()
POLL_PAUSE_S = 0.005
# Questions of every intent: the replies differ in kind (answers, escalations), as in production.
QUESTIONS = (
    "Where is my order NW-10482? The tracking number has not updated since Monday.",
    "I was charged twice for the same order, please refund the extra payment.",
    "The app crashes every time I open it on my phone.",
    "Please let me speak to a human agent.",
    "What are your opening hours on Sunday?",
    "How do I get a VAT invoice for my order?",
)

Kind = Literal["chat", "readiness"]


@dataclass
class Outcome:
    """One request: when its bytes were sent and its answer came, and what the answer was."""

    kind: Kind
    started: float
    sent_at: float | None = None  # None: never completely sent
    done_at: float | None = None
    status: int | None = None
    retry_after: str | None = None
    error: str | None = None  # the transport error's type, when there was no response
    session_id: str | None = None
    message: str | None = None
    reply: str | None = None

    def sent_before(self, moment: float) -> bool:
        return self.sent_at is not None and self.sent_at < moment


@dataclass
class Load:
    """The clients' shared state: every outcome, and when to stop."""

    base_url: str
    deadline: float
    outcomes: list[Outcome] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    quiet: bool = False  # chat clients hold new turns back while this is True

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    async def turn_allowed(self) -> bool:
        """Wait out a quiet window (bounded by the deadline); False once the load is over."""
        while self.quiet and self.running():  # noqa: ASYNC110 - a flag flipped twice per run
            await asyncio.sleep(0.005)
        return self.running()

    def in_flight(self, kind: Kind) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind and o.done_at is None and o.sent_at)

    def acknowledged(self) -> list[Outcome]:
        """Chat turns answered 200: the service says they are stored."""
        return [o for o in self.outcomes if o.kind == "chat" and o.status == 200]

    async def request(
        self, client: httpx.AsyncClient, outcome: Outcome, method: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        """Send one request, recording its outcome; None when no response came."""

        async def trace(event: str, info: Mapping[str, Any]) -> None:
            if event == _SENT_EVENT:
                outcome.sent_at = time.monotonic()

        self.outcomes.append(outcome)
        try:
            response = await client.request(method, path, extensions={"trace": trace}, **kw)
        except httpx.TransportError as exc:
            outcome.done_at, outcome.error = time.monotonic(), type(exc).__name__
            return None
        outcome.done_at, outcome.status = time.monotonic(), response.status_code
        outcome.retry_after = response.headers.get("retry-after")
        return response


async def chat_client(load: Load, number: int, start_after: float = 0.0) -> None:
    """Chat turns, every other one in a new session and the rest continuing the last one.

    ``start_after`` staggers the clients, so turns arrive spread out, not in lockstep bursts."""
    session_id: str | None = None
    turn = 0
    await asyncio.sleep(start_after)
    async with httpx.AsyncClient(base_url=load.base_url, timeout=60, verify=_TLS) as client:
        while await load.turn_allowed():
            question = QUESTIONS[(number + turn) % len(QUESTIONS)]
            message = f"{question} (ref {number}-{turn}-{secrets.token_hex(4)})"
            body: dict[str, str] = {"message": message}
            if turn % 2 == 1 and session_id is not None:
                body["session_id"] = session_id
            outcome = Outcome("chat", time.monotonic(), message=message)
            response = await load.request(client, outcome, "POST", CHAT, json=body)
            turn += 1
            if response is not None and response.status_code == 200:
                answer = response.json()
                session_id = outcome.session_id = answer["session_id"]
                outcome.reply = answer["reply"]
            else:  # refused: try again later, as a well-behaved client would
                await asyncio.sleep(_backoff(outcome, load.deadline))


def _backoff(outcome: Outcome, deadline: float) -> float:
    """Retry-After when the service said it (bounded by the deadline), else a short pause."""
    pause = float(outcome.retry_after) if outcome.retry_after else RETRY_PAUSE_S
    return max(0.0, min(pause, deadline - time.monotonic()))


async def readiness_client(load: Load, pause: float = 0.1) -> None:
    async with httpx.AsyncClient(base_url=load.base_url, timeout=30, verify=_TLS) as client:
        while load.running():
            await load.request(client, Outcome("readiness", time.monotonic()), "GET", READINESS)
            await asyncio.sleep(pause)


class SignalPoller:
    """Sends SIGTERM and watches readiness from a process of its own, so neither the clients'
    event loop nor the GIL can delay what it sees: it polls every few ms on one connection, and
    notes the moment of the signal and the arrival of the first 503 after it (CLOCK_MONOTONIC,
    the same in every process)."""

    def __init__(self, base_url: str, pid: int, limit: float) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process running threads
        self._go = context.Event()
        self._results: multiprocessing.Queue[tuple[float | None, float | None, int]]
        self._results = context.Queue()
        self._limit = limit
        self._process = context.Process(
            target=poll_and_signal,
            args=(f"{base_url}{READINESS}", pid, self._go, self._results, limit),
            name="readiness-poller",
            daemon=True,
        )
        self.signal_at: float | None = None
        self.first_503: float | None = None
        self.polls = 0

    def __enter__(self) -> Self:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._go.set()  # never left waiting, even when the signal was not given
        self._process.join(self._limit + 5)
        if self._process.is_alive():
            self._process.kill()

    async def fire(self) -> float:
        """Have the poller send the signal now; the moment it did (waited for, bounded)."""
        self._go.set()
        loop = asyncio.get_running_loop()
        signal_at, _, _ = await loop.run_in_executor(None, self._results.get, True, 10)
        assert signal_at is not None, "the poller did not send the signal"
        self.signal_at = signal_at
        return signal_at

    async def result(self) -> float | None:
        """The arrival of the first 503 after the signal (waited for, bounded)."""
        loop = asyncio.get_running_loop()
        _, self.first_503, self.polls = await loop.run_in_executor(
            None, self._results.get, True, self._limit + 5
        )
        return self.first_503


def poll_and_signal(
    url: str,
    pid: int,
    go: EventType,
    results: multiprocessing.Queue[tuple[float | None, float | None, int]],
    limit: float,
) -> None:
    """The poller process: wait for ``go``, SIGTERM ``pid``, poll until the first 503."""
    with httpx.Client(timeout=5) as client:
        client.get(url)  # the connection is open before the signal
        go.wait(limit)
        signal_at = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        results.put((signal_at, None, 0))
        first_503: float | None = None
        polls = 0
        while first_503 is None and time.monotonic() < signal_at + limit:
            try:
                response = client.get(url)
            except httpx.TransportError:
                break
            polls += 1
            if response.status_code == 503:
                first_503 = time.monotonic()
            time.sleep(POLL_PAUSE_S)
    results.put((signal_at, first_503, polls))


@dataclass(frozen=True)
class Tally:
    """The counts the test reports. "Accepted" means the request's last byte was sent before
    the signal; such a chat request succeeds only with a 200, a readiness request with a 200 or,
    answered after the signal, a 503. A request that failed before the signal counts as failed
    in flight too."""

    sent: int
    completed: int  # accepted, and answered with success
    in_flight_at_signal: int  # accepted chat requests still unanswered at the signal
    refused_after_signal: int  # sent after the signal: 503 with Retry-After, or no connection
    refused_with_503: int
    refused_no_connection: int
    served_after_signal: int  # sent after the signal and still served (not a failure)
    failed_in_flight: list[Outcome]  # accepted but not answered with success
    failed_after_signal: list[Outcome]  # sent after the signal and failed in any other way

    def counts(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "completed": self.completed,
            "in_flight_at_signal": self.in_flight_at_signal,
            "refused_after_signal": self.refused_after_signal,
            "refused_with_503": self.refused_with_503,
            "refused_no_connection": self.refused_no_connection,
            "served_after_signal": self.served_after_signal,
            "failed_in_flight": len(self.failed_in_flight),
            "failed_after_signal": len(self.failed_after_signal),
        }


def tally(outcomes: list[Outcome], signal_at: float) -> Tally:
    completed = in_flight = refused_503 = refused_conn = served_after = 0
    failed_in_flight: list[Outcome] = []
    failed_after: list[Outcome] = []
    for outcome in outcomes:
        failed_early = outcome.done_at is not None and outcome.done_at < signal_at
        if outcome.sent_before(signal_at) or failed_early:
            if outcome.kind == "chat" and (outcome.done_at or signal_at) > signal_at:
                in_flight += 1
            if _succeeded(outcome, signal_at):
                completed += 1
            else:
                failed_in_flight.append(outcome)
        elif outcome.status == 503 and outcome.retry_after and outcome.kind == "chat":
            refused_503 += 1
        elif outcome.status is None:
            refused_conn += 1
        elif _succeeded(outcome, signal_at):
            served_after += 1
        else:
            failed_after.append(outcome)
    return Tally(
        sent=len(outcomes),
        completed=completed,
        in_flight_at_signal=in_flight,
        refused_after_signal=refused_503 + refused_conn,
        refused_with_503=refused_503,
        refused_no_connection=refused_conn,
        served_after_signal=served_after,
        failed_in_flight=failed_in_flight,
        failed_after_signal=failed_after,
    )


def _succeeded(outcome: Outcome, signal_at: float) -> bool:
    """A chat turn answered 200; readiness answered 200, or 503 once the signal had come."""
    if outcome.kind == "chat":
        return outcome.status == 200 and outcome.reply is not None
    shutting_down = (outcome.done_at or 0) >= signal_at
    return outcome.status == 200 or (outcome.status == 503 and shutting_down)
