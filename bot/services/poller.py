"""Poll planning for one DaisySim account (pure functions, no I/O).

Two kinds of request share the account's check budget (one check-all of up to
:data:`BATCH` ids each):

* **Fresh rounds.** Whatever the server does, an id polled once per
  ``interval`` (15 s) never misses a code for longer: a poll sent ``interval``
  after the last *fresh* one finds the id's ``Waiting`` cache run out. Each id
  has a ``due`` time (its next fresh poll); a round polls every due id, least
  recently polled first, within the requests the budget allows right now (it
  may use all of it: under full load this is the cadence the budget can carry).
  Ids the budget cannot cover stay due and go first in the next round. Rounds
  are spaced by :func:`round_gap` so that ids with different phases merge into
  few, full batches (300 ids -> one round every 15 s of 15 requests = exactly
  60 per minute).
* **Spare polls** (adaptive polling). The page says a stored code "is returned
  instantly on every subsequent call, bypassing the cache" (spec §13): then
  every poll can find a code, and the budget the fresh rounds leave over is
  worth spending. The account sends one extra request every
  :func:`extra_gap` seconds, carrying its due ids first and then the ids most
  worth a look (:func:`fill_order`: never-polled new purchases, then the
  longest unseen, weighted by :func:`likelihood`), each id at most once per
  ``min_gap``. A spare poll never takes the last :data:`CHECK_RESERVE`
  requests of the budget: they stay free for checks a user asks for and for
  the fresh rounds. Under the cache-bound reading a spare poll may meet a
  cached ``Waiting``; the fresh rounds still come on time, so that reading
  loses nothing.

A poll sent at or after an id's ``due`` (or its first poll) was fresh: its
answer sets ``due = answer time + interval``. Any other ``Waiting`` answer may
have come from the cache and leaves ``due`` alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.daisysim.limits import CHECK_RESERVE

__all__ = [
    "BATCH",
    "CHECK_RESERVE",
    "MIN_GAP",
    "PollSlot",
    "compose",
    "due_slots",
    "extra_gap",
    "fill_order",
    "likelihood",
    "next_extra_time",
    "next_round_time",
    "round_gap",
    "split_batches",
]

BATCH = 20  # check-all takes at most 20 ids
MIN_GAP = 1.0  # s: no id is polled more often (default of POLL_MIN_GAP_SECONDS)


@dataclass(slots=True)
class PollSlot:
    activation_id: int
    remote_id: str
    due: float  # next fresh poll: the id's Waiting cache (if any) has run out
    born: float | None = None  # when it was bought (None: unknown)
    last_poll: float | None = None  # send time of its last poll (None: not polled yet)

    def fresh(self, sent_at: float) -> bool:
        """Whether a poll sent at ``sent_at`` got a fresh (uncached) answer."""
        return self.last_poll is None or sent_at >= self.due


def round_gap(n_ids: int, interval: float, limit: int, window: float = 60.0) -> float:
    """Minimum time between two fresh rounds of one account."""
    if n_ids <= 0:
        return interval
    per_interval = max(1, math.floor(limit * interval / window))
    needed = math.ceil(n_ids / BATCH)
    spare = per_interval - needed
    return interval / max(1, spare)


def extra_gap(
    n_ids: int, interval: float, limit: int, *, reserve: int = CHECK_RESERVE,
    window: float = 60.0,
) -> float | None:
    """Seconds between two spare polls of one account, None when the fresh
    rounds need the whole budget (``limit - reserve`` requests per ``window``
    in all, ``ceil(n_ids / BATCH)`` per ``interval`` of them fresh)."""
    if n_ids <= 0:
        return None
    spare = (limit - reserve) / window - math.ceil(n_ids / BATCH) / interval
    if spare <= 1e-9:
        return None
    return 1.0 / spare


def likelihood(age: float | None) -> float:
    """Relative chance that a code arrives now for a number bought ``age`` s ago.

    Codes come soon after the purchase (the user has just asked the service for
    one): the first three minutes weigh most, numbers older than ten minutes
    least (unknown age: the middle)."""
    if age is None:
        return 1.0
    if age < 180.0:
        return 2.0
    if age < 600.0:
        return 1.0
    return 0.5


def due_slots(slots: Iterable[PollSlot], now: float) -> list[PollSlot]:
    """Due ids, least recently polled (earliest due) first; ties by id."""
    return sorted((s for s in slots if s.due <= now), key=lambda s: (s.due, s.activation_id))


def fill_order(slots: Iterable[PollSlot], now: float, *, min_gap: float = MIN_GAP
               ) -> list[PollSlot]:
    """Ids a spare poll may carry (none polled in the last ``min_gap`` s, none
    bought less than ``min_gap`` s ago, none whose fresh poll comes within
    ``min_gap``: that one is worth more), most worth a look first: never polled
    (new purchases, oldest first), then by time unseen × :func:`likelihood`."""
    never: list[PollSlot] = []
    seen: list[tuple[float, int, PollSlot]] = []
    for s in slots:
        if now < s.due < now + min_gap:
            continue
        if s.last_poll is None:
            if s.born is None or s.born + min_gap <= now:
                never.append(s)
            continue
        if s.last_poll + min_gap > now:  # the same test as next_extra_time's
            continue
        unseen = now - s.last_poll
        age = None if s.born is None else now - s.born
        seen.append((-unseen * likelihood(age), s.activation_id, s))
    never.sort(key=lambda s: (s.born if s.born is not None else -math.inf, s.activation_id))
    seen.sort(key=lambda t: (t[0], t[1]))
    return never + [t[2] for t in seen]


def split_batches(due: Sequence[PollSlot], available_requests: int) -> list[list[PollSlot]]:
    """The batches this round may send (``available_requests`` caps the count)."""
    count = min(max(0, available_requests), math.ceil(len(due) / BATCH))
    return [list(due[i * BATCH : (i + 1) * BATCH]) for i in range(count)]


def compose(due: Sequence[PollSlot], fill: Sequence[PollSlot], requests: int
            ) -> list[list[PollSlot]]:
    """``requests`` batches: new purchases (never polled) first, then the due
    ids, the room left filled from ``fill`` (in its order, no id twice)."""
    if requests <= 0:
        return []
    new = [s for s in fill if s.last_poll is None]
    pool: list[PollSlot] = []
    taken: set[int] = set()
    for s in (*new, *due, *fill):
        if s.activation_id not in taken:
            taken.add(s.activation_id)
            pool.append(s)
    pool = pool[: requests * BATCH]
    return [pool[i : i + BATCH] for i in range(0, len(pool), BATCH)]


def next_round_time(
    slots: Iterable[PollSlot],
    *,
    last_round: float | None,
    gap: float,
    now: float,
    budget_wait: float,
    backoff_until: float = 0.0,
) -> float | None:
    """When this account's next fresh round is due (None: nothing to poll).

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


def next_extra_time(
    slots: Iterable[PollSlot],
    *,
    gap: float | None,
    last_extra: float | None,
    now: float,
    reserve_wait: float,
    min_gap: float = MIN_GAP,
    not_before: float = 0.0,
) -> float | None:
    """When this account's next spare poll may go (None: no spare budget, or
    no id to poll). ``reserve_wait``: the limiter's wait until more than the
    reserve is free."""
    if gap is None:
        return None
    ready = None  # the earliest moment some id may be polled again
    for s in slots:
        if now < s.due < now + min_gap:
            continue  # its fresh round comes first (see fill_order)
        if s.last_poll is not None:
            t = s.last_poll + min_gap
        elif s.born is not None:
            t = s.born + min_gap
        else:
            t = now
        ready = t if ready is None else min(ready, t)
    if ready is None:
        return None
    when = max(ready, not_before, now + reserve_wait)
    if last_extra is not None:
        when = max(when, last_extra + gap)
    return when
