"""LifecycleManager: order, deadlines, failures, idempotence, the chained signal hook, and when
new work stops being accepted."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from types import FrameType

import pytest
from tria_service.production.lifecycle_manager import (
    LifecycleManager,
    ShutdownCallback,
    get_lifecycle_manager,
    reset_lifecycle_manager,
)

from tests.service.helpers import run_python


def recorder(log: list[str], name: str) -> ShutdownCallback:
    async def callback() -> None:
        await asyncio.sleep(0)
        log.append(name)

    return callback


async def test_callbacks_run_in_reverse_registration_order() -> None:
    calls: list[str] = []
    manager = LifecycleManager()
    for name in ("database", "redis", "monitor"):
        manager.register(name, recorder(calls, name))

    outcomes = await manager.shutdown()

    assert calls == ["monitor", "redis", "database"]
    assert [(o.name, o.outcome) for o in outcomes] == [
        ("monitor", "ok"),
        ("redis", "ok"),
        ("database", "ok"),
    ]


async def test_a_failing_callback_is_reported_and_the_others_still_run() -> None:
    calls: list[str] = []

    async def broken() -> None:
        raise RuntimeError("pool already closed")

    manager = LifecycleManager()
    manager.register("first", recorder(calls, "first"))
    manager.register("broken", broken)
    manager.register("last", recorder(calls, "last"))

    outcomes = {o.name: o for o in await manager.shutdown()}

    assert calls == ["last", "first"]
    assert outcomes["broken"].outcome == "failed"
    assert outcomes["broken"].error == "pool already closed"


async def test_a_hanging_callback_is_cut_off_at_its_deadline() -> None:
    calls: list[str] = []
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    manager = LifecycleManager()
    manager.register("first", recorder(calls, "first"))
    manager.register("hangs", hangs, deadline=0.2)

    started = time.perf_counter()
    outcomes = {o.name: o for o in await manager.shutdown()}

    assert outcomes["hangs"].outcome == "timed_out"
    assert outcomes["hangs"].error == "did not finish within 0.2s"
    assert calls == ["first"]
    assert time.perf_counter() - started < 5  # the deadline fired, not the hang


async def test_the_total_budget_bounds_the_whole_shutdown() -> None:
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    manager = LifecycleManager(default_deadline=30, total_budget=0.3)
    for name in ("a", "b", "c"):
        manager.register(name, hangs)

    started = time.perf_counter()
    outcomes = await manager.shutdown()

    assert [o.outcome for o in outcomes] == ["timed_out"] * 3
    assert time.perf_counter() - started < 10  # 3 x 30 s without the budget


async def test_shutdown_twice_runs_each_callback_once() -> None:
    calls: list[str] = []
    manager = LifecycleManager()
    manager.register("only", recorder(calls, "only"))

    first, second = await asyncio.gather(manager.shutdown(), manager.shutdown())
    assert first == second == manager.last_outcomes
    third = await manager.shutdown()

    assert calls == ["only"]
    assert [o.name for o in first] == ["only"]
    assert third == []  # the completed shutdown left nothing to run


async def test_drain_hooks_run_once_and_a_completed_shutdown_starts_afresh() -> None:
    flips: list[str] = []
    manager = LifecycleManager()
    manager.on_drain(lambda: flips.append("readiness failing"))

    def broken_hook() -> None:
        raise RuntimeError("hook bug")

    manager.on_drain(broken_hook)
    manager.on_drain(lambda: flips.append("after the broken one"))
    assert not manager.draining

    manager.begin_drain()
    manager.begin_drain()
    assert manager.draining
    assert manager.accepting  # readiness fails, but new work is still served until the delay ends
    await manager.shutdown()

    assert flips == ["readiness failing", "after the broken one"]
    assert not manager.draining  # done: the next app registers its own callbacks and hooks
    assert manager.accepting
    calls: list[str] = []
    manager.register("second run", recorder(calls, "second run"))
    assert [o.name for o in await manager.shutdown()] == ["second run"]
    assert calls == ["second run"]
    assert flips == ["readiness failing", "after the broken one"]


def test_invalid_deadlines_are_refused() -> None:
    with pytest.raises(ValueError, match="default_deadline must be positive"):
        LifecycleManager(default_deadline=0)
    with pytest.raises(ValueError, match="deadline for 'x' must be positive"):
        LifecycleManager().register("x", recorder([], "x"), deadline=-1)


def test_the_module_accessor_returns_one_manager() -> None:
    reset_lifecycle_manager()
    assert get_lifecycle_manager() is get_lifecycle_manager()
    reset_lifecycle_manager()


async def test_shutdown_stops_accepting_while_the_callbacks_run() -> None:
    seen: list[tuple[bool, bool]] = []
    manager = LifecycleManager()

    async def look() -> None:
        seen.append((manager.draining, manager.accepting))

    manager.register("look", look)
    await manager.shutdown()

    assert seen == [(True, False)]  # a shutdown without a signal has no delay to wait out
    assert manager.accepting


class Received(list[int]):
    """Signals the stand-in server handler saw, whether new work was still accepted when each
    came, and an event set on the first."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()
        self.manager: LifecycleManager | None = None
        self.accepting: list[bool] = []

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.append(signum)
        if self.manager is not None:
            self.accepting.append(self.manager.accepting)
        self.event.set()


@pytest.fixture
def own_sigterm() -> Iterator[Received]:
    """A stand-in for uvicorn's handler, installed first; the originals are put back after."""
    originals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    received = Received()
    signal.signal(signal.SIGTERM, received.handler)
    try:
        yield received
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)


async def test_sigterm_drains_first_then_reaches_the_server_handler(
    own_sigterm: Received,
) -> None:
    order: list[str] = []
    manager = LifecycleManager()
    own_sigterm.manager = manager
    manager.on_drain(lambda: order.append(f"drain (server saw {len(own_sigterm)} signals)"))
    assert manager.install_signal_handlers()

    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.05)

    assert order == ["drain (server saw 0 signals)"]
    assert own_sigterm == [signal.SIGTERM]
    assert own_sigterm.accepting == [False]  # no delay: new work is refused from the signal on
    manager.restore_signal_handlers()
    assert signal.getsignal(signal.SIGTERM) == own_sigterm.handler


async def test_drain_delay_holds_the_server_handler_back_until_a_second_signal(
    own_sigterm: Received,
) -> None:
    manager = LifecycleManager()
    own_sigterm.manager = manager
    manager.install_signal_handlers(drain_delay=30)

    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.05)
    assert manager.draining
    assert manager.accepting  # readiness fails, new work is still served
    assert own_sigterm == []  # the server keeps listening

    os.kill(os.getpid(), signal.SIGTERM)  # an impatient operator: no more waiting
    await asyncio.wait_for(own_sigterm.event.wait(), timeout=10)
    assert own_sigterm == [signal.SIGTERM]
    assert own_sigterm.accepting == [False]
    manager.restore_signal_handlers()


async def test_new_work_is_accepted_until_the_drain_delay_has_elapsed(
    own_sigterm: Received,
) -> None:
    delay = 0.5
    manager = LifecycleManager()
    own_sigterm.manager = manager
    manager.install_signal_handlers(drain_delay=delay)

    sent = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(delay / 2)
    halfway = (manager.draining, manager.accepting, list(own_sigterm))
    await asyncio.wait_for(own_sigterm.event.wait(), timeout=10)
    took = time.monotonic() - sent
    manager.restore_signal_handlers()

    assert halfway == (True, True, [])
    assert took >= delay  # the server's handler waited the whole delay out
    assert own_sigterm.accepting == [False]  # refused from the moment the server takes over


DEFAULT_ACTION_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal
    from tria_service.production.lifecycle_manager import LifecycleManager

    async def main() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        manager = LifecycleManager()
        manager.on_drain(lambda: print("drained", flush=True))
        manager.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)
        print("survived", flush=True)

    asyncio.run(main())
    """
)


def test_a_default_sigterm_disposition_still_ends_the_process_after_the_drain() -> None:
    """Without a server handler to chain to, SIGTERM keeps its default action: exit."""
    done = run_python("-c", DEFAULT_ACTION_SCRIPT)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "drained" in done.stdout.splitlines()
    assert "survived" not in done.stdout
