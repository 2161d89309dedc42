"""Graceful shutdown: what runs when the process stops, in which order, and for how long.

Components register async callbacks as they start; shutdown runs them in reverse order (last
started, first stopped), each under its own deadline, so one stuck or failing component cannot keep
the others from releasing their resources. Pre-drain hooks run synchronously the moment SIGTERM
arrives, so readiness can flip to 503 at once; new work is still served through the drain delay
(while load balancers stop routing here) and refused only once it has elapsed.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from types import FrameType
from typing import Any, Literal

import structlog

ShutdownCallback = Callable[[], Awaitable[None]]
PreDrainHook = Callable[[], None]
SignalHandler = Callable[[int, FrameType | None], Any] | int | None

DEFAULT_DEADLINE_SECONDS = 10.0
# Least time a callback gets once the total budget is spent: enough to drop a socket, no more.
MIN_SLICE_SECONDS = 0.1
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Registration:
    name: str
    callback: ShutdownCallback
    deadline: float


@dataclass(frozen=True)
class ShutdownOutcome:
    """How one callback ended, for the log and for tests."""

    name: str
    outcome: Literal["ok", "failed", "timed_out"]
    seconds: float
    error: str | None = None


class LifecycleManager:
    """Ordered, bounded, idempotent shutdown plus the SIGTERM hook that starts it.

    Each callback runs under its own deadline and, when ``total_budget`` is set, under what is
    left of that budget, so the whole shutdown fits the grace period the platform allows. Once a
    shutdown has completed the manager is empty again, so the process-wide one can serve the
    next app started in the same process (tests, embedded servers).
    """

    def __init__(
        self, default_deadline: float = DEFAULT_DEADLINE_SECONDS, total_budget: float | None = None
    ) -> None:
        if default_deadline <= 0:
            raise ValueError("default_deadline must be positive")
        self._default_deadline = default_deadline
        self.total_budget = total_budget
        self._registrations: list[_Registration] = []
        self._pre_drain_hooks: list[PreDrainHook] = []
        self._draining = False
        self._accepting = True
        self._shutdown_task: asyncio.Task[list[ShutdownOutcome]] | None = None
        self._previous_handlers: dict[int, SignalHandler] = {}
        self._release: asyncio.TimerHandle | None = None
        self._released = False
        self.last_outcomes: list[ShutdownOutcome] = []

    @property
    def draining(self) -> bool:
        """True from the moment shutdown is requested until it has completed: fail readiness."""
        return self._draining

    @property
    def accepting(self) -> bool:
        """False once the drain delay has elapsed (or shutdown began without one): refuse new work.

        During the delay load balancers still route here until they see readiness fail, so the
        requests they send are served; after it the server stops taking connections.
        """
        return self._accepting

    @property
    def registered(self) -> list[str]:
        return [r.name for r in self._registrations]

    def register(
        self, name: str, callback: ShutdownCallback, *, deadline: float | None = None
    ) -> None:
        """Add a shutdown callback; it runs before every callback registered earlier."""
        if deadline is not None and deadline <= 0:
            raise ValueError(f"deadline for {name!r} must be positive")
        self._registrations.append(
            _Registration(name, callback, deadline or self._default_deadline)
        )

    def on_drain(self, hook: PreDrainHook) -> None:
        """Add a synchronous hook that runs as soon as shutdown is requested (fail readiness)."""
        self._pre_drain_hooks.append(hook)

    def begin_drain(self) -> None:
        """Mark the service as draining and run the pre-drain hooks once; signal-handler safe."""
        if self._draining:
            return
        self._draining = True
        for hook in self._pre_drain_hooks:
            try:
                hook()
            except Exception as exc:  # a broken hook must not stop the others or the shutdown
                log.error("pre_drain_hook_failed", hook=repr(hook), error=str(exc))
        log.info("draining", hooks=len(self._pre_drain_hooks))

    def stop_accepting(self) -> None:
        """Mark the drain delay as over: from now on new work is refused; signal-handler safe."""
        if not self._accepting:
            return
        self._accepting = False
        log.info("not_accepting_new_work")

    async def shutdown(self) -> list[ShutdownOutcome]:
        """Run every callback in reverse registration order; a concurrent call awaits the first.

        A call after a completed shutdown finds nothing registered and returns an empty list
        (the completed run's outcomes stay in ``last_outcomes``).
        """
        self.begin_drain()
        self.stop_accepting()
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._run_callbacks())
        return await asyncio.shield(self._shutdown_task)

    async def _run_callbacks(self) -> list[ShutdownOutcome]:
        started = time.perf_counter()
        outcomes = []
        for registration in reversed(self._registrations):
            deadline = registration.deadline
            if self.total_budget is not None:
                remaining = self.total_budget - (time.perf_counter() - started)
                deadline = max(min(deadline, remaining), MIN_SLICE_SECONDS)
            outcomes.append(await self._run_one(registration, deadline))
        self.restore_signal_handlers()
        log.info("shutdown_complete", outcomes={o.name: o.outcome for o in outcomes})
        self.last_outcomes = outcomes
        self._reset()
        return outcomes

    def _reset(self) -> None:
        """Forget this run's registrations, hooks and state: the next app starts afresh."""
        self._registrations.clear()
        self._pre_drain_hooks.clear()
        self._draining = False
        self._accepting = True
        self._shutdown_task = None

    async def _run_one(self, registration: _Registration, deadline: float) -> ShutdownOutcome:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(deadline):
                await registration.callback()
        except TimeoutError:
            seconds = time.perf_counter() - started
            log.error(
                "shutdown_callback_timed_out",
                component=registration.name,
                deadline_s=deadline,
            )
            return ShutdownOutcome(
                registration.name, "timed_out", seconds, f"did not finish within {deadline}s"
            )
        except Exception as exc:
            seconds = time.perf_counter() - started
            log.error("shutdown_callback_failed", component=registration.name, error=str(exc))
            return ShutdownOutcome(registration.name, "failed", seconds, str(exc))
        seconds = time.perf_counter() - started
        log.info("shutdown_callback_done", component=registration.name, seconds=round(seconds, 3))
        return ShutdownOutcome(registration.name, "ok", seconds)

    def install_signal_handlers(self, drain_delay: float = 0.0) -> bool:
        """Chain onto the current SIGTERM/SIGINT handlers (uvicorn's): drain first, then theirs.

        uvicorn runs the lifespan shutdown only after it has drained connections, so the pre-drain
        hooks must run from the signal itself. With ``drain_delay`` the server keeps serving new
        requests for that long after readiness has flipped, so load balancers see the 503 and stop
        routing here before anything is refused; then new work is refused and the server's handler
        runs (it stops accepting, finishes what is in flight, closes idle connections). A second
        signal goes through at once. A previous handler of SIG_DFL gets the default action (the
        process ends by the signal), SIG_IGN keeps the signal ignored. Returns False off the main
        thread, where Python cannot install signal handlers.
        """
        if threading.current_thread() is not threading.main_thread() or self._previous_handlers:
            return False
        loop = asyncio.get_running_loop()
        self._released = False
        for sig in HANDLED_SIGNALS:
            previous = signal.getsignal(sig)
            self._previous_handlers[sig] = previous
            signal.signal(sig, self._make_handler(loop, previous, drain_delay))
        return True

    def _make_handler(
        self, loop: asyncio.AbstractEventLoop, previous: SignalHandler, drain_delay: float
    ) -> Callable[[int, FrameType | None], None]:
        def forward(signum: int) -> None:
            self._released = True
            self.stop_accepting()
            if callable(previous):
                previous(signum, None)
            elif previous != signal.SIG_IGN:  # SIG_DFL, or not set from Python: the default
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        def hold(signum: int) -> None:
            if not self._released:
                self._release = loop.call_later(drain_delay, forward, signum)

        def handler(signum: int, frame: FrameType | None) -> None:
            first = not self._draining
            self.begin_drain()
            if first and drain_delay > 0:
                log.info("drain_delay", seconds=drain_delay, signal=signal.Signals(signum).name)
                # the loop's own structures may be mid-update here: schedule through its queue
                loop.call_soon_threadsafe(hold, signum)
            else:
                self._cancel_release()
                forward(signum)

        return handler

    def _cancel_release(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def restore_signal_handlers(self) -> None:
        """Put back the handlers found by install_signal_handlers (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._cancel_release()
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()


@cache
def get_lifecycle_manager() -> LifecycleManager:
    """The process-wide manager, created on first use."""
    return LifecycleManager()


def reset_lifecycle_manager() -> None:
    """Forget the process-wide manager (tests that build several apps in one process)."""
    get_lifecycle_manager.cache_clear()
