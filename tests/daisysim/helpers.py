"""Test helpers: drive a VirtualClock while a coroutine runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from bot.clock import VirtualClock

T = TypeVar("T")


async def run_virtual(clock: VirtualClock, aw: Awaitable[T], *, limit: float = 3600.0) -> T:
    """Await ``aw``; whenever it (or anything else) sleeps on ``clock``, jump the
    clock to the earliest wake-up. Real I/O in between is left to progress.
    Fails if more than ``limit`` virtual seconds would pass."""
    start = clock.now()
    task = asyncio.ensure_future(aw)
    try:
        while not task.done():
            await asyncio.sleep(0.001)
            nxt = clock.next_wakeup()
            if nxt is not None and not task.done():
                if nxt - start > limit:
                    raise AssertionError(f"more than {limit} virtual seconds would pass")
                clock.set(max(nxt, clock.now()))
    finally:
        if not task.done():
            task.cancel()
    return task.result()
