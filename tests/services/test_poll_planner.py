"""Adaptive polling's pure planning (bot.services.poller): where one account's
check budget goes, on the virtual clock. Invariants only, never timings."""

from __future__ import annotations

import itertools
import math

import pytest

from bot.clock import VirtualClock
from bot.daisysim.limits import CHECK_LIMIT, CHECK_RESERVE, Budget
from bot.services.poller import (
    BATCH,
    PollSlot,
    compose,
    due_slots,
    extra_gap,
    fill_order,
    likelihood,
    next_extra_time,
    next_round_time,
    round_gap,
)

INTERVAL = 15.0
WINDOW = 60.5


def test_spare_polls_leave_the_reserve_and_the_fresh_rounds_their_share() -> None:
    for n in range(1, 401):
        gap = extra_gap(n, INTERVAL, CHECK_LIMIT, window=WINDOW)
        fresh = math.ceil(n / BATCH) / INTERVAL  # requests/s the fresh rounds need
        if gap is None:
            # No spare: the fresh rounds alone need (about) the whole budget.
            assert fresh >= (CHECK_LIMIT - CHECK_RESERVE) / WINDOW
            continue
        assert gap > 0
        total = fresh + 1.0 / gap
        assert total <= (CHECK_LIMIT - CHECK_RESERVE) / WINDOW + 1e-9
    # 300 waiting: the budget is all the 15-s cadence's (as before adaptive polling).
    assert extra_gap(300, INTERVAL, CHECK_LIMIT, window=WINDOW) is None
    assert extra_gap(0, INTERVAL, CHECK_LIMIT) is None
    # A few waiting: about one request a second.
    gap1 = extra_gap(1, INTERVAL, CHECK_LIMIT, window=WINDOW)
    assert gap1 is not None and 1.0 < gap1 < 1.5


def test_new_purchases_first_then_the_longest_unseen_weighted_by_likelihood() -> None:
    now = 10_000.0
    old_unseen = PollSlot(1, "1", due=now + 5, born=now - 900, last_poll=now - 4)
    young_unseen = PollSlot(2, "2", due=now + 5, born=now - 60, last_poll=now - 3)
    recent = PollSlot(3, "3", due=now + 5, born=now - 60, last_poll=now - 0.5)  # < min gap
    new_a = PollSlot(4, "4", due=now + 14, born=now - 2)  # never polled
    new_b = PollSlot(5, "5", due=now + 15, born=now - 1)
    just_bought = PollSlot(6, "6", due=now + 15, born=now - 0.2)  # within the min gap
    order = fill_order([old_unseen, young_unseen, recent, new_a, new_b, just_bought], now)
    # Never-polled purchases first (oldest first); then unseen × likelihood:
    # 3 s × 2.0 (bought a minute ago) beats 4 s × 0.5 (bought 15 minutes ago).
    assert [s.activation_id for s in order] == [4, 5, 2, 1]
    assert likelihood(10) > likelihood(300) > likelihood(1200)
    assert likelihood(None) == likelihood(300)


def test_compose_puts_due_ids_first_and_never_an_id_twice() -> None:
    now = 500.0
    slots = [PollSlot(i, str(i), due=now - 1 if i < 25 else now + 9, born=0.0,
                      last_poll=now - 2 - i % 3) for i in range(50)]
    due = due_slots(slots, now)
    fill = fill_order(slots, now)
    batches = compose(due, fill, 2)
    assert [len(b) for b in batches] == [BATCH, BATCH]
    flat = [s.activation_id for b in batches for s in b]
    assert len(set(flat)) == len(flat)
    assert flat[:25] == [s.activation_id for s in due]
    assert compose(due, fill, 0) == []
    new = PollSlot(99, "99", due=now + 15, born=now - 2)  # bought 2 s ago, never polled
    first = compose(due, fill_order([*slots, new], now), 1)[0]
    assert first[0] is new and first[1:] == due[:BATCH - 1]
    assert [len(b) for b in compose([], fill[:3], 1)] == [3]


def test_only_a_poll_sent_after_due_restarts_the_interval() -> None:
    slot = PollSlot(1, "1", due=115.0, born=100.0)
    assert slot.fresh(101.0)  # first poll: there is no cache yet
    slot.last_poll, slot.due = 101.0, 116.0
    assert not slot.fresh(110.0)  # may have been the cached Waiting
    assert slot.fresh(116.0)


def test_next_extra_time_waits_for_gap_min_gap_reserve_and_backoff() -> None:
    slots = [PollSlot(1, "1", due=130.0, born=100.0, last_poll=110.0)]
    kw = {"now": 110.2, "reserve_wait": 0.0, "min_gap": 1.0}
    assert next_extra_time(slots, gap=None, last_extra=None, **kw) is None
    assert next_extra_time([], gap=1.2, last_extra=None, **kw) is None
    assert next_extra_time(slots, gap=1.2, last_extra=None, **kw) == 111.0  # min gap
    assert next_extra_time(slots, gap=1.2, last_extra=110.5, **kw) == pytest.approx(111.7)
    assert next_extra_time(slots, gap=1.2, last_extra=None, now=110.2, reserve_wait=5.0,
                           min_gap=1.0) == pytest.approx(115.2)
    assert next_extra_time(slots, gap=1.2, last_extra=None, not_before=140.0, **kw) == 140.0


def test_one_account_never_exceeds_the_budget_and_keeps_the_reserve() -> None:
    """The planning loop polling.round runs, on the virtual clock with the real
    sliding-window budget: every request fits the budget (the server never says
    429), spare polls never take the last CHECK_RESERVE, no id is polled twice
    within the min gap, and every id gets a fresh poll at least once per
    interval (plus the budget's wait when the account is full)."""
    for n in (1, 19, 45, 150, 300):
        clock = VirtualClock(0.0)
        budget = Budget("check", CHECK_LIMIT, clock)
        slots = [PollSlot(i, str(i), due=i * 0.37 + INTERVAL, born=i * 0.37) for i in range(n)]
        last_round: float | None = None
        last_extra: float | None = None
        sent: list[float] = []
        polls: dict[int, list[float]] = {i: [] for i in range(n)}
        fresh_polls: dict[int, list[float]] = {i: [] for i in range(n)}
        clock.set(n * 0.37)
        while clock.now() < 600.0:
            now = clock.now()
            gap = round_gap(n, INTERVAL, CHECK_LIMIT)
            fresh_at = next_round_time(slots, last_round=last_round, gap=gap, now=now,
                                       budget_wait=0.0)
            due = due_slots(slots, now)
            batches: list[list[PollSlot]] = []
            if due and fresh_at is not None and fresh_at <= now:
                count = min(budget.available(), math.ceil(len(due) / BATCH))
                if count:
                    last_round = now if count * BATCH >= len(due) else None
                    batches = compose(due, fill_order(slots, now), count)
            else:
                spare_gap = extra_gap(n, INTERVAL, CHECK_LIMIT, window=budget.window)
                spare_at = next_extra_time(slots, gap=spare_gap, last_extra=last_extra, now=now,
                                           reserve_wait=budget.wait_for(CHECK_RESERVE + 1))
                if spare_at is not None and spare_at <= now:
                    assert budget.available() > CHECK_RESERVE  # the reserve stays free
                    batches = compose(due, fill_order(slots, now), 1)
                    assert batches  # ready means some id is worth a spare poll
                    last_extra = now
            for batch in batches:
                assert budget.try_acquire()  # never a request the budget has no room for
                sent.append(now)
                for s in batch:
                    if s.fresh(now):
                        fresh_polls[s.activation_id].append(now)
                        s.due = now + INTERVAL
                    polls[s.activation_id].append(now)
                    s.last_poll = now
            fresh_next = next_round_time(
                slots, last_round=last_round, gap=round_gap(n, INTERVAL, CHECK_LIMIT),
                now=now, budget_wait=budget.wait_time() if budget.available() <= 0 else 0.0)
            spare_next = next_extra_time(
                slots, gap=extra_gap(n, INTERVAL, CHECK_LIMIT, window=budget.window),
                last_extra=last_extra, now=now,
                reserve_wait=budget.wait_for(CHECK_RESERVE + 1))
            nxt = min(t for t in (fresh_next, spare_next) if t is not None)
            clock.set(max(nxt, now + 1e-6) if not batches else max(nxt, now))
        # The server's own count: a fixed 60-s window never sees more than 60.
        for i, t in enumerate(sent):
            assert sum(1 for u in sent[i:] if u < t + 60.0) <= CHECK_LIMIT
        for i in range(n):
            assert all(b - a >= 1.0 for a, b in itertools.pairwise(polls[i]))
            # Late by at most the spacing that merges phases into full batches.
            late = round_gap(n, INTERVAL, CHECK_LIMIT) + 1e-6
            fresh = fresh_polls[i]
            assert fresh and all(b - a <= INTERVAL + late
                                 for a, b in itertools.pairwise(fresh)), (n, i)
        if n <= 60:  # spare budget: every id far more often than once per interval
            assert min(len(p) for p in polls.values()) > 2 * 600 / INTERVAL
        if n == 300:  # no spare: the 15-s cadence alone, as before
            assert max(len(p) for p in polls.values()) <= 600 / INTERVAL + 1
