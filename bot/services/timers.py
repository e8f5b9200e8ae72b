"""The engine's clockwork: a timer heap, the waker, and the one backoff.

The engine never sleeps. It keeps one live due time per key (poll rounds per
account, unlock/expiry/cancel/reconciliation per activation, event delivery,
stray-order sweeps) and tells the UI's scheduler through the waker whenever work
appears earlier than the time it last reported.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Hashable

__all__ = ["TimerKey", "Timers", "Waker", "backoff"]

logger = logging.getLogger("bot.services")

TimerKey = Hashable


def backoff(attempt: int, base: float = 5.0, cap: float = 300.0) -> float:
    """Deterministic exponential backoff: ``min(cap, base * 2**(attempt-1))``.

    The engine's own retries (cancels, polls, reconciliation, event redelivery,
    sweeps) run on the (virtual) clock and must be reproducible, so this is the
    ceiling of :func:`bot.daisysim.retry.backoff` without its jitter (same base,
    cap and doubling)."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


class Timers:
    """A heap of (time, key) with lazy invalidation: one live time per key."""

    def __init__(self) -> None:
        self._due: dict[TimerKey, float] = {}
        self._heap: list[tuple[float, int, TimerKey]] = []
        self._seq = itertools.count()

    def set(self, key: TimerKey, when: float | None) -> None:
        if when is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if len(self._heap) > 4 * len(self._due) + 64:
            self._heap = [(w, next(self._seq), k) for k, w in self._due.items()]
            heapq.heapify(self._heap)

    def sooner(self, key: TimerKey, when: float) -> None:
        """Set ``key`` to ``when`` unless it is due earlier already."""
        current = self._due.get(key)
        if current is None or when < current:
            self.set(key, when)

    def get(self, key: TimerKey) -> float | None:
        return self._due.get(key)

    def _clean(self) -> None:
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) == when:
                return
            heapq.heappop(self._heap)

    def peek(self) -> float | None:
        self._clean()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[TimerKey]:
        keys: list[TimerKey] = []
        while True:
            self._clean()
            if not self._heap or self._heap[0][0] > now:
                return keys
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            keys.append(key)

    def clear(self) -> None:
        self._due.clear()
        self._heap.clear()


class Waker:
    """Calls the UI's scheduler callback with the earliest due time, only when it
    is earlier than the time last reported (by a call, or by ``run_due``)."""

    def __init__(self, timers: Timers) -> None:
        self._timers = timers
        self._callback: Callable[[float], None] | None = None
        self.reported: float | None = None

    def set_callback(self, callback: Callable[[float], None]) -> None:
        self._callback = callback
        self.reported = None
        self.notify()

    def notify(self) -> None:
        due = self._timers.peek()
        if due is None or self._callback is None:
            return
        if self.reported is not None and due >= self.reported:
            return
        self.reported = due
        try:
            self._callback(due)
        except Exception:
            logger.exception("engine waker failed")
