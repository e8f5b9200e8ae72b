"""Poll planning for one DaisySim account (pure functions, no I/O).

The server caches a ``Waiting`` answer for 15 s per id, so an id is worth
polling again only ``interval`` seconds after its last fresh poll: each tracked
id has a ``due`` time (purchase + interval at first, then last poll + interval).

A *round* polls every due id in batches of :data:`BATCH` (one check-all request
each), least recently polled first, using at most the requests the account's
check budget allows right now. Ids the budget cannot cover stay due and go first
in the next round, so an overloaded account stretches every id's interval evenly.

Rounds are spaced by :func:`round_gap` so that ids with different phases merge
into few, full batches: with ``n`` ids the batches of one interval cost
``ceil(n/20)`` requests plus at most one partial batch per round; the gap keeps
the number of rounds per interval within the budget left after the full batches
(300 ids -> one round every 15 s of 15 requests = exactly 60 per minute).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["BATCH", "PollSlot", "due_slots", "next_round_time", "round_gap", "split_batches"]

BATCH = 20  # check-all takes at most 20 ids


@dataclass(slots=True)
class PollSlot:
    activation_id: int
    remote_id: str
    due: float  # next time a fresh poll is useful


def round_gap(n_ids: int, interval: float, limit: int, window: float = 60.0) -> float:
    """Minimum time between two rounds of one account."""
    if n_ids <= 0:
        return interval
    per_interval = max(1, math.floor(limit * interval / window))
    needed = math.ceil(n_ids / BATCH)
    spare = per_interval - needed
    return interval / max(1, spare)


def due_slots(slots: Iterable[PollSlot], now: float) -> list[PollSlot]:
    """Due ids, least recently polled (earliest due) first; ties by id."""
    return sorted((s for s in slots if s.due <= now), key=lambda s: (s.due, s.activation_id))


def split_batches(due: Sequence[PollSlot], available_requests: int) -> list[list[PollSlot]]:
    """The batches this round may send (``available_requests`` caps the count)."""
    count = min(max(0, available_requests), math.ceil(len(due) / BATCH))
    return [list(due[i * BATCH : (i + 1) * BATCH]) for i in range(count)]


def next_round_time(
    slots: Iterable[PollSlot],
    *,
    last_round: float | None,
    gap: float,
    now: float,
    budget_wait: float,
    backoff_until: float = 0.0,
) -> float | None:
    """When this account should poll next (None: nothing to poll).

    ``budget_wait`` is the limiter's wait for one request; it matters only when
    some id is already due (the budget, not the gap, holds it back)."""
    earliest = min((s.due for s in slots), default=None)
    if earliest is None:
        return None
    when = earliest
    if last_round is not None:
        when = max(when, last_round + gap)
    if when <= now and budget_wait > 0:
        when = now + budget_wait
    return max(when, backoff_until)
