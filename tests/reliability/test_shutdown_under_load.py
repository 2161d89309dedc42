"""SIGTERM while 50 clients chat and ask readiness: nothing in flight fails, nothing acked is lost.

The stand-in answers every model call after a delay, so chat turns are really running when the
signal comes, and the clients keep sending right through it. A request counts as in flight when
its last byte was sent before the signal (see ``load_clients.Tally``); those must all succeed, and
so must the requests sent during the drain delay (a load balancer still routes to the instance
until it sees readiness fail). After the delay new work is refused: no new connection is taken.
Every turn the service acknowledged with a 200 must be in PostgreSQL, read directly, after a
restart, and no refused turn may be there.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from pytest_tria_deploy.helpers import percentile
from pytest_tria_deploy.provision.processes import ServiceServer, start_service
from tests.reliability.load_clients import (
    Load,
    Outcome,
    Phase,
    SignalPoller,
    Tally,
    Window,
    chat_client,
    readiness_client,
    tally,
)
from tests.service.helpers import set_fault_async

if TYPE_CHECKING:
    from tests.conftest import FreshDeps

CHAT_CLIENTS = 40
READINESS_CLIENTS = 10
MODEL_LATENCY_MS = 1000  # each model call; a turn makes two in a row
TURN_S = 2 * MODEL_LATENCY_MS / 1000  # about how long a turn runs: the clients start spread over it
GRACE_S = 15.0
DRAIN_DELAY_S = 2.0
# Around the delay's end a request may be served or refused, depending on when the service reads
# it: wide enough for a busy machine, narrow enough to leave most of the delay to check.
DELAY_END_MARGIN_S = 0.5
READINESS_503_WITHIN_MS = 100.0
WARM_UP_LIMIT_S = 40.0  # bound on waiting for the load to build up before the signal
RUN_LIMIT_S = WARM_UP_LIMIT_S + GRACE_S + 10.0


async def test_sigterm_under_load_drops_nothing_in_flight_and_loses_no_message(
    tmp_path: Path,
    service_env: Mapping[str, str],
    fresh_deps: FreshDeps,
    record_property: Callable[[str, object], None],
) -> None:
    own = fresh_deps()  # a database of its own to count in, a stand-in of its own to slow down
    assert own.servers.openai is not None
    env = {
        **service_env,
        **own.env(),
        "TRIA_SHUTDOWN_GRACE": str(GRACE_S),
        "TRIA_SHUTDOWN_DRAIN_DELAY": str(DRAIN_DELAY_S),
        "TRIA_TIMEOUT_OPENAI": "10",  # the slowed models list is still healthy
        "TRIA_RATE_LIMIT_PER_CLIENT": "100000",  # every client comes from 127.0.0.1
        "TRIA_RATE_LIMIT_PER_SESSION": "100000",
    }
    service = start_service(tmp_path / "first", env)
    try:
        await set_fault_async(own.servers.openai, "latency", latency_ms=MODEL_LATENCY_MS)
        run = await _run_and_signal(service)
    finally:
        service.stop()
    signal_at, first_503, exited_at, code, load = run
    window = Window(signal_at, signal_at + DRAIN_DELAY_S, DELAY_END_MARGIN_S)
    counts = tally(load.outcomes, window)
    refused_turns = [o for o in load.outcomes if o.kind == "chat" and o.status != 200]
    restarted = start_service(tmp_path / "second", env)  # the same database, a new process
    try:
        lost, stored_refused = await _check_storage(
            own.database_url, load.acknowledged(), refused_turns
        )
    finally:
        restarted.stop()

    figures: dict[str, float] = {
        **counts.figures(),
        "acknowledged": len(load.acknowledged()),
        "lost": len(lost),
        "refused_turns_stored": len(stored_refused),
        "readiness_503_after_ms": _ms(first_503, signal_at),
        **_readiness_before(load.outcomes, signal_at),
        **_switch_over(load.outcomes, signal_at),
        "exited_after_s": round(exited_at - signal_at, 3) if exited_at else -1.0,
    }
    for name, value in figures.items():
        record_property(name, value)
    print("\nshutdown under load:", ", ".join(f"{k}={v}" for k, v in figures.items()))
    for phase, failed in counts.failed.items():
        if failed:
            print(f"failed ({phase}):", _describe(failed, signal_at))

    served_in_delay = counts.count("delay", "chat", frozenset({"served"}))
    refused_connections = counts.count("after", "chat", frozenset({"refused_connection"}))
    refused_connections += counts.count("after", "readiness", frozenset({"refused_connection"}))
    assert first_503 is not None, f"readiness never answered 503 after SIGTERM: {figures}"
    assert figures["readiness_503_after_ms"] < READINESS_503_WITHIN_MS, figures
    assert counts.in_flight_at_signal >= CHAT_CLIENTS // 2, f"too little in flight: {figures}"
    _assert_none_failed(counts, "in_flight", signal_at, figures)
    _assert_none_failed(counts, "delay", signal_at, figures)
    _assert_none_failed(counts, "delay_end", signal_at, figures)
    _assert_none_failed(counts, "after", signal_at, figures)
    assert served_in_delay > 0, f"no chat turn sent during the drain delay to check: {figures}"
    assert refused_connections > 0, f"no new connection was refused after the delay: {figures}"
    assert lost == [], f"{len(lost)} acknowledged turns missing from chat_messages: {figures}"
    assert stored_refused == [], f"{len(stored_refused)} refused turns were stored: {figures}"
    assert exited_at is not None, f"the service did not exit: {figures}"
    assert exited_at - signal_at < GRACE_S, figures
    assert code in (0, -signal.SIGTERM), service.process.tail()


def _assert_none_failed(
    counts: Tally, phase: Phase, signal_at: float, figures: dict[str, float]
) -> None:
    failed = counts.failed[phase]
    assert failed == [], f"{phase}: {_describe(failed, signal_at)}; {figures}"


async def _run_and_signal(
    service: ServiceServer,
) -> tuple[float, float | None, float | None, int | None, Load]:
    """Load the service, send SIGTERM once it is busy, keep the load on until it exits.

    Returns the signal's time, the first post-signal 503's arrival, the exit time and code, and
    the load with every outcome."""
    load = Load(service.url, deadline=time.monotonic() + RUN_LIMIT_S)
    tasks = [
        asyncio.create_task(chat_client(load, n, start_after=n * TURN_S / CHAT_CLIENTS))
        for n in range(CHAT_CLIENTS)
    ]
    tasks += [asyncio.create_task(readiness_client(load)) for _ in range(READINESS_CLIENTS)]
    try:
        with SignalPoller(service.url, service.process.pid, limit=RUN_LIMIT_S) as poller:
            await _busy(load)
            signal_at = await poller.fire()
            exited_at = await _exit(service, load)
            await poller.result()
    finally:
        load.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return signal_at, poller.first_503, exited_at, service.process.returncode, load


async def _busy(load: Load) -> None:
    """Until half the chat clients have had a reply and most have a turn in flight (bounded)."""
    limit = time.monotonic() + WARM_UP_LIMIT_S
    while not (
        len(load.acknowledged()) >= CHAT_CLIENTS // 2
        and load.in_flight("chat") >= CHAT_CLIENTS * 3 // 4
    ):
        assert time.monotonic() < limit, f"load never built up: {len(load.outcomes)} requests"
        await asyncio.sleep(0.01)


async def _exit(service: ServiceServer, load: Load) -> float | None:
    """The moment the process was seen gone (polling every 10 ms), None past the deadline."""
    while load.running():
        if service.process.returncode is not None:
            return time.monotonic()
        await asyncio.sleep(0.01)
    return None


async def _check_storage(
    database_url: str, acknowledged: list[Outcome], refused: list[Outcome]
) -> tuple[list[Outcome], list[Outcome]]:
    """The acknowledged turns whose question or reply is not in chat_messages (lost), and the
    turns not acknowledged whose question is (work done although the client was told it was not,
    so its retry would store it twice)."""
    sessions = sorted({o.session_id for o in acknowledged if o.session_id})
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT session_id::text AS session_id, role, content FROM chat_messages"
            " WHERE session_id = ANY($1::uuid[])",
            sessions,
        )
        asked = await conn.fetch(
            "SELECT content FROM chat_messages WHERE role = 'user' AND content = ANY($1::text[])",
            [o.message for o in refused],
        )
    finally:
        await conn.close()
    stored = {(r["session_id"], r["role"], r["content"]) for r in rows}
    lost = [
        o
        for o in acknowledged
        if (o.session_id, "user", o.message) not in stored
        or (o.session_id, "assistant", o.reply) not in stored
    ]
    stored_questions = {r["content"] for r in asked}
    return lost, [o for o in refused if o.message in stored_questions]


def _readiness_before(outcomes: list[Outcome], signal_at: float) -> dict[str, float]:
    """How long readiness took before the signal, for comparison with the 503's delay."""
    took = [
        (o.done_at - o.started) * 1000
        for o in outcomes
        if o.kind == "readiness" and o.done_at is not None and o.done_at < signal_at
    ]
    if not took:
        return {}
    return {
        "readiness_p50_ms_before": round(percentile(took, 50), 1),
        "readiness_p99_ms_before": round(percentile(took, 99), 1),
        "readiness_max_ms_before": round(max(took), 1),
    }


def _switch_over(outcomes: list[Outcome], signal_at: float) -> dict[str, float]:
    """When, after the signal, the last chat turn that was served was sent, and the first
    refused one: the switch from serving to refusing, to compare with the drain delay."""
    chat = [o for o in outcomes if o.kind == "chat" and o.moment >= signal_at]
    served = [o.moment for o in chat if o.status == 200]
    refused = [o.moment for o in chat if o.status != 200]
    return {
        "last_served_chat_sent_after_ms": _ms(max(served, default=None), signal_at),
        "first_refused_chat_sent_after_ms": _ms(min(refused, default=None), signal_at),
    }


def _ms(moment: float | None, signal_at: float) -> float:
    return round((moment - signal_at) * 1000, 1) if moment is not None else -1.0


def _describe(outcomes: list[Outcome], signal_at: float) -> str:
    shown = [
        f"{o.kind} sent {_ms(o.sent_at, signal_at)} ms, done {_ms(o.done_at, signal_at)} ms: "
        f"{o.status or o.error}"
        for o in outcomes[:10]
    ]
    return f"{len(outcomes)} failed: " + "; ".join(shown)
