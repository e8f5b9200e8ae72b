"""Concurrent rounds, one per key (e.g. one poll round per DaisySim account).

:meth:`Rounds.run` starts a round for every key that has none running, at most
``concurrency`` at a time, and waits for them up to ``patience`` real seconds.
A round still running then goes on in the background; when it ends,
``on_late_done`` is called (the engine's waker: its results are due now). So one
slow key (a slow upstream; each request has its own total deadline) never holds
up the rounds of the others, nor what the caller does after them. A key never
has two rounds at once (a round plans its key's request budget)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping

__all__ = ["Rounds"]

logger = logging.getLogger("bot.services")

Round = Callable[[], Awaitable[None]]


class Rounds:
    def __init__(
        self, *, concurrency: int, patience: float, on_late_done: Callable[[], None]
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.patience = patience
        self._slots = asyncio.Semaphore(concurrency)
        self._on_late_done = on_late_done
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._late: set[asyncio.Task[None]] = set()
        self.queued = 0  # rounds waiting for a free slot (the bound is reached)
        self.in_flight = 0  # rounds running now (never more than ``concurrency``)

    def running(self, key: Hashable) -> bool:
        return key in self._running

    async def run(self, rounds: Mapping[Hashable, Round]) -> None:
        """Start each key's round (unless one is running) and wait up to
        ``patience`` s. A round must handle its own errors."""
        started: list[asyncio.Task[None]] = []
        for key, round_ in rounds.items():
            if key in self._running:
                continue  # the running round reschedules its key when it ends
            task = asyncio.ensure_future(self._one(key, round_))
            self._running[key] = task
            started.append(task)
        if not started:
            return
        _, pending = await asyncio.wait(started, timeout=self.patience)
        self._late.update(pending)
        if pending:
            logger.info("%d slow round(s) continue in the background", len(pending))

    async def _one(self, key: Hashable, round_: Round) -> None:
        try:
            self.queued += 1
            try:
                await self._slots.acquire()
            finally:
                self.queued -= 1
            self.in_flight += 1
            try:
                await round_()
            finally:
                self.in_flight -= 1
                self._slots.release()
        finally:
            task = self._running.pop(key, None)
            if task is not None and task in self._late:
                self._late.discard(task)
                self._on_late_done()

    async def close(self) -> None:
        """Cancel the rounds still running and wait for them to end."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
