"""Run a coroutine from sync code: the provisioning layer's one sync-to-async bridge.

Providers are synchronous (pytest's fixtures call them), yet asyncpg is async only; and the
caller may already be inside a running loop (a pytest-asyncio session loop), where
``asyncio.run`` refuses. A worker thread gets a loop of its own either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when the caller's thread has a loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, factory()).result()
