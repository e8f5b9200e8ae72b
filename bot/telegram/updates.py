"""Concurrent update processing that keeps each user's updates in order — and fair.

PTB processes updates one at a time by default, so one user's slow step (a
purchase waiting on DaisySim for seconds) would hold up every other user. Plain
``concurrent_updates(True)`` is unsafe with ConversationHandler (two updates of
one conversation racing each other). This processor runs updates of different
users concurrently, but those of one user strictly one after another, in the
order they arrived: exactly the guarantee a conversation needs.

Fairness: PTB's :class:`BaseUpdateProcessor` takes its semaphore *before* calling
:meth:`do_process_update`, so if that semaphore were the concurrency limit, one
user's queued updates (waiting for their own lock) would hold every slot while
their first update waits on a slow upstream call. So the base semaphore only
bounds how many updates may be *admitted* at once (``max_admitted``, generous),
and the real limit of ``max_concurrent_updates`` running updates is a second
semaphore taken *after* the per-user lock: a user's queued updates never hold
more than the one slot their running update holds. Free slots go to the waiting
user who was served least lately (:class:`FairSlots`), not first come first
served: a new user's first /start is not queued behind hundreds of flooding users'
next updates.

Each user's queue is bounded too: with ``max_queued_per_user`` updates already
waiting behind the running one, a further update is dropped (never run). A
dropped update is handed to ``on_dropped(update, note)``, with ``note`` true once
per burst (until the user's queue has drained): the application answers a dropped
button press at once (the spinner stops) and sends the note, a polite text from
the catalogue, once per burst (:mod:`bot.telegram.flood`). Every drop is counted
(:attr:`dropped`) and each burst is logged with its count. ``keep(update)`` marks
updates that must never be dropped (a message carrying an API key must still be
deleted).
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import Update
from telegram.ext import BaseUpdateProcessor

__all__ = ["FairSlots", "PerUserUpdateProcessor", "update_key"]

log = logging.getLogger(__name__)

DroppedCallback = Callable[[Update, bool], Awaitable[None]]


def update_key(update: object) -> int | None:
    """The user (else chat) an update belongs to; None for anything else."""
    if isinstance(update, Update):
        if update.effective_user is not None:
            return update.effective_user.id
        if update.effective_chat is not None:
            return update.effective_chat.id
    return None


class FairSlots:
    """At most ``limit`` holders at once; a freed slot goes to the waiter whose key
    was served least lately (a count of grants halving every ``half_life`` seconds),
    ties in arrival order. A key never served (a new user) goes first."""

    def __init__(
        self, limit: int, *, half_life: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = limit
        self._half_life = half_life
        self._clock = clock
        self._waiters: list[tuple[float, int, int, asyncio.Future[None]]] = []
        self._served: dict[int, tuple[float, float]] = {}  # key -> (score, at)
        self._seq = itertools.count()

    def score(self, key: int) -> float:
        score, at = self._served.get(key, (0.0, 0.0))
        return score * 0.5 ** (max(0.0, self._clock() - at) / self._half_life)

    def _grant(self, key: int) -> None:
        self._served[key] = (self.score(key) + 1.0, self._clock())
        if len(self._served) > 4096:  # forget keys whose score has decayed away
            self._served = {k: v for k, v in self._served.items() if self.score(k) > 0.01}

    async def acquire(self, key: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self._grant(key)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.score(key), next(self._seq), key, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted, then cancelled: pass it on
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, key, fut = heapq.heappop(self._waiters)
            if not fut.done():
                self._grant(key)
                fut.set_result(None)
                return
        self._free += 1


@dataclass
class _Queue:
    """One user's updates in this processor: running + waiting (FIFO lock)."""

    lock: asyncio.Lock
    size: int = 0  # updates queued or running
    dropped: int = 0  # dropped in the current burst
    noted: bool = False  # the burst's note was sent


class PerUserUpdateProcessor(BaseUpdateProcessor):
    def __init__(
        self,
        max_concurrent_updates: int = 64,
        *,
        max_queued_per_user: int = 8,
        max_admitted: int = 4096,
        on_dropped: DroppedCallback | None = None,
        keep: Callable[[object], bool] | None = None,
    ) -> None:
        """``max_concurrent_updates``: updates running at once (one per user at most);
        ``max_queued_per_user``: updates of one user waiting behind their running one
        (more are dropped); ``max_admitted``: updates inside the processor at once,
        waiting or running (PTB's own semaphore; only a memory bound)."""
        if max_concurrent_updates < 1 or max_queued_per_user < 0:
            raise ValueError("max_concurrent_updates >= 1 and max_queued_per_user >= 0")
        super().__init__(max(max_admitted, max_concurrent_updates))
        self.running_limit = max_concurrent_updates
        self.max_queued_per_user = max_queued_per_user
        self._slots = FairSlots(max_concurrent_updates)
        self._queues: dict[int, _Queue] = {}
        self._on_dropped = on_dropped
        self._keep = keep
        self.dropped = 0  # every update dropped since start
        self.notes_sent = 0  # notes (on_dropped calls) since start

    def queued(self, key: int) -> int:
        """Updates of ``key`` queued or running right now."""
        queue = self._queues.get(key)
        return queue.size if queue is not None else 0

    async def do_process_update(self, update: object, coroutine: Awaitable[object]) -> None:
        key = update_key(update)
        if key is None:
            await self._run(0, coroutine)
            return
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(asyncio.Lock())
        if queue.size > self.max_queued_per_user and not (self._keep and self._keep(update)):
            await self._drop(key, queue, update, coroutine)
            return
        queue.size += 1
        try:
            async with queue.lock:  # asyncio.Lock wakes waiters in FIFO order
                await self._run(key, coroutine)  # only now: waiting updates hold no slot
        finally:
            queue.size -= 1
            if queue.size == 0:  # the user's queue drained: the burst is over
                del self._queues[key]
                if queue.dropped:
                    log.info(
                        "user %s: %d update(s) dropped while %d were queued (burst over)",
                        key, queue.dropped, self.max_queued_per_user + 1,
                    )

    async def _run(self, key: int, coroutine: Awaitable[object]) -> None:
        await self._slots.acquire(key)
        try:
            await coroutine
        finally:
            self._slots.release()

    async def _drop(
        self, key: int, queue: _Queue, update: object, coroutine: Awaitable[object]
    ) -> None:
        if inspect.iscoroutine(coroutine):
            coroutine.close()  # never run (and no "never awaited" warning)
        queue.dropped += 1
        self.dropped += 1
        if not isinstance(update, Update):  # pragma: no cover - update_key() said Update
            return
        first = not queue.noted
        queue.noted = True
        if self._on_dropped is None:
            return
        if first:
            self.notes_sent += 1
        try:
            await self._on_dropped(update, first)
        except Exception:  # a note must never break the processing of other updates
            log.warning("flood note to user %s failed", key, exc_info=True)

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
