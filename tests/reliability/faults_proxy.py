"""A TCP proxy on 127.0.0.1 that adds latency to a dependency's answers: the "slow" fault.

The dependency itself stays untouched (it may be the session's shared server); the service is
pointed at the proxy instead. Every chunk coming back from the upstream server is held for
``latency`` seconds counted from its arrival, so one request/response round trip costs about
``latency`` more however many chunks the answer has, and order is kept. ``latency`` may be changed
at any time from any thread; it applies to chunks that arrive afterwards. The proxy runs its own
event loop in a thread, so blocking and async tests can use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
_CHUNK = 65536
_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0


class LatencyProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<upstream_port>, delaying the upstream's answers."""

    def __init__(self, upstream_port: int, latency: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.latency = latency
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    def __repr__(self) -> str:
        return f"LatencyProxy({HOST}:{self.port} -> {self.upstream_port}, {self.latency}s)"

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("latency proxy did not start listening within 5 s")
        if self._failure is not None:
            raise RuntimeError(f"latency proxy failed to start: {self._failure}")
        return self

    def stop(self) -> None:
        """Close the listener and every proxied connection, then end the thread."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        future.result(_STOP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_STOP_TIMEOUT_S)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accept, HOST, 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._proxy(reader, writer)
        finally:
            self._connections.discard(task)

    async def _proxy(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                HOST, self.upstream_port
            )
        except OSError:  # upstream down: the client sees its connection closed, as it would
            client_writer.close()
            return
        pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        pumps = [
            asyncio.create_task(_pump(client_reader, upstream_writer)),
            asyncio.create_task(self._hold(upstream_reader, pending)),
            asyncio.create_task(_release(pending, client_writer)),
        ]
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if pumps[1] in done:  # the upstream ended: what it said last still goes through
                await asyncio.wait([pumps[2]], timeout=self.latency + 1.0)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (client_writer, upstream_writer):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _hold(
        self, upstream: asyncio.StreamReader, pending: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        """Stamp each chunk with the time it may go on; an empty chunk marks the end."""
        while True:
            try:
                chunk = await upstream.read(_CHUNK)
            except OSError:
                chunk = b""
            await pending.put((time.monotonic() + self.latency, chunk))
            if not chunk:
                return


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy one direction as it comes until end of stream."""
    with contextlib.suppress(OSError):
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()


async def _release(pending: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter) -> None:
    """Write each held chunk once its time has come; stop at the end marker."""
    with contextlib.suppress(OSError):
        while True:
            due, chunk = await pending.get()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not chunk:
                return
            sink.write(chunk)
            await sink.drain()
