"""Concurrent chat and readiness clients for the shutdown-under-load test, and their accounting.

Every request is recorded with the moment its last byte was handed to the socket (httpcore's
``send_request_body.complete`` trace event), so it can be told exactly which requests the service
had been sent before the signal, during the drain delay, and after it. Every loop stops at a
deadline and when asked to.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import secrets
import signal
import ssl
import time
from collections import Counter
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
# When a request was sent, relative to the signal and the end of the drain delay.
Phase = Literal["in_flight", "delay", "delay_end", "after"]
PHASES: tuple[Phase, ...] = ("in_flight", "delay", "delay_end", "after")
# How it ended: served, refused (never started on the service), or failed.
Verdict = Literal["served", "refused_connection", "refused_503", "closed_unanswered", "failed"]
REFUSALS: frozenset[Verdict] = frozenset({"refused_connection", "refused_503", "closed_unanswered"})


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

    @property
    def moment(self) -> float:
        """When the request went out: its last byte sent, or its start when that never happened."""
        return self.sent_at if self.sent_at is not None else self.started


@dataclass
class Load:
    """The clients' shared state: every outcome, and when to stop."""

    base_url: str
    deadline: float
    outcomes: list[Outcome] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    async def pause(self, seconds: float) -> None:
        """Sleep, cut short when the load stops or reaches its deadline."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, min(seconds, self.deadline - time.monotonic()))):
                await self.stop.wait()

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
        while load.running():
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
            else:  # refused: try again later (Retry-After when given), as a good client would
                await load.pause(float(outcome.retry_after or RETRY_PAUSE_S))


async def readiness_client(load: Load, pause: float = 0.1) -> None:
    async with httpx.AsyncClient(base_url=load.base_url, timeout=30, verify=_TLS) as client:
        while load.running():
            await load.request(client, Outcome("readiness", time.monotonic()), "GET", READINESS)
            await load.pause(pause)


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
class Window:
    """The moments that split the requests: the signal, and the end of the drain delay with a
    margin either side, in which a request may be served or refused (how soon the service reads
    a request is not the behaviour under test)."""

    signal_at: float
    delay_end: float
    margin: float

    def phase(self, outcome: Outcome) -> Phase:
        failed_early = outcome.done_at is not None and outcome.done_at < self.signal_at
        if outcome.sent_before(self.signal_at) or failed_early:
            return "in_flight"
        if outcome.moment < self.delay_end - self.margin:
            return "delay"
        if outcome.moment < self.delay_end + self.margin:
            return "delay_end"
        return "after"


@dataclass(frozen=True)
class Tally:
    """The counts the test reports, as ``<phase>_<kind>_<verdict>``, and the requests that ended
    wrongly in each phase. Sent before the signal ("in flight") or during the drain delay, a
    request must be served: a chat turn with a 200, readiness with a 200 or, after the signal, a
    503. Around the delay's end it may be served or refused. After it a chat turn must be refused:
    no connection, the gate's 503 with Retry-After, or a kept-alive connection closed unanswered.
    """

    counts: dict[str, int]
    failed: dict[Phase, list[Outcome]]
    in_flight_at_signal: int  # chat turns sent before the signal and still unanswered at it

    def count(self, phase: Phase, kind: Kind, verdicts: frozenset[Verdict]) -> int:
        return sum(self.counts.get(f"{phase}_{kind}_{v}", 0) for v in verdicts)

    def figures(self) -> dict[str, int]:
        failed = {f"failed_{phase}": len(self.failed[phase]) for phase in PHASES}
        return {**self.counts, "in_flight_at_signal": self.in_flight_at_signal, **failed}


def tally(outcomes: list[Outcome], window: Window) -> Tally:
    counts: Counter[str] = Counter(sent=len(outcomes))
    failed: dict[Phase, list[Outcome]] = {phase: [] for phase in PHASES}
    in_flight = 0
    for outcome in outcomes:
        phase = window.phase(outcome)
        verdict = _verdict(outcome, window.signal_at)
        counts[f"{phase}_{outcome.kind}_{verdict}"] += 1
        if phase == "in_flight" and outcome.kind == "chat":
            in_flight += (outcome.done_at or window.signal_at) >= window.signal_at
        if not _allowed(phase, outcome.kind, verdict):
            failed[phase].append(outcome)
    return Tally(dict(sorted(counts.items())), failed, in_flight)


def _allowed(phase: Phase, kind: Kind, verdict: Verdict) -> bool:
    if phase in ("in_flight", "delay"):
        return verdict == "served"
    if phase == "delay_end":
        return verdict != "failed"
    # after the delay: no new chat turn is taken; readiness still answers a kept-alive connection
    return verdict in REFUSALS or (kind == "readiness" and verdict == "served")


def _verdict(outcome: Outcome, signal_at: float) -> Verdict:
    if _succeeded(outcome, signal_at):
        return "served"
    if outcome.error == "ConnectError":
        return "refused_connection"
    if outcome.error in ("RemoteProtocolError", "ReadError"):
        return "closed_unanswered"
    if outcome.kind == "chat" and outcome.status == 503 and outcome.retry_after:
        return "refused_503"
    return "failed"


def _succeeded(outcome: Outcome, signal_at: float) -> bool:
    """A chat turn answered 200; readiness answered 200, or 503 once the signal had come."""
    if outcome.kind == "chat":
        return outcome.status == 200 and outcome.reply is not None
    shutting_down = (outcome.done_at or 0) >= signal_at
    return outcome.status == 200 or (outcome.status == 503 and shutting_down)
