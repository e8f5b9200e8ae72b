"""Client-side budgets: a true sliding window on the injectable clock."""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.clock import SystemClock, VirtualClock
from bot.daisysim.keys import key_fingerprint
from bot.daisysim.limits import (
    CANCEL_LIMIT,
    CHECK_LIMIT,
    PURCHASE_LIMIT,
    Budget,
    KeyLimiter,
    get_limiter,
)


def assert_sliding_window(times: list[float], limit: int, window: float = 60.0) -> None:
    """No ``window``-second interval contains more than ``limit`` of ``times``."""
    times = sorted(times)
    for i in range(len(times) - limit):
        assert times[i + limit] - times[i] > window, (i, times[i], times[i + limit])


def test_published_budgets() -> None:
    lim = KeyLimiter.create(VirtualClock())
    assert (lim.purchase.limit, lim.check.limit, lim.cancel.limit) == (10, 60, 10)
    assert (PURCHASE_LIMIT, CHECK_LIMIT, CANCEL_LIMIT) == (10, 60, 10)
    assert lim.check.window == 60.5  # window + safety margin


def test_burst_then_trickle_is_refused() -> None:
    """The leaky-bucket failure mode: N at once, then one every 60/N s."""
    clock = VirtualClock()
    budget = Budget("purchase", 10, clock)
    assert all(budget.try_acquire() for _ in range(10))
    assert budget.available() == 0 and not budget.try_acquire()
    for _ in range(9):
        clock.advance(6.0)
        assert not budget.try_acquire()  # a leaky bucket would admit these
    clock.advance(60.5 - 54.0)  # 60.5 s after the burst (+1 ms granularity below)
    assert not budget.try_acquire()
    clock.advance(0.002)
    assert budget.available() == 10 and budget.try_acquire()


@pytest.mark.parametrize("seed", range(5))
def test_random_traffic_never_exceeds_limit_in_any_window(seed: int) -> None:
    rng = random.Random(seed)
    clock = VirtualClock()
    budget = Budget("check", 60, clock)
    taken: list[float] = []
    for _ in range(3000):
        clock.advance(rng.choice([0.0, 0.01, 0.3, 1.0, 2.5, 7.0]))
        for _ in range(rng.randint(0, 5)):
            before = budget.available()
            if budget.try_acquire():
                assert before > 0
                taken.append(clock.now())
            else:
                assert before == 0
    assert len(taken) > 500
    assert_sliding_window(taken, 60)


def test_available_and_wait_time_are_exact() -> None:
    clock = VirtualClock()
    budget = Budget("cancel", 3, clock, window=60.0)
    t0 = clock.now()
    assert budget.available() == 3 and budget.wait_time() == 0.0
    budget.try_acquire()
    clock.advance(10)
    budget.try_acquire()
    clock.advance(10)
    budget.try_acquire()
    assert budget.available() == 0 and budget.used() == 3
    assert budget.wait_time() == pytest.approx(t0 + 60.001 - clock.now())  # oldest frees it
    clock.set(t0 + 60.001)
    assert budget.available() == 1 and budget.wait_time() == 0.0
    assert budget.try_acquire()
    assert budget.wait_time() == pytest.approx(10.0, abs=1e-6)


def test_wait_for_several_free_slots() -> None:
    """``wait_for(k)``: when ``k`` acquisitions are possible at once (the poller's
    spare polls wait until more than the reserve is free)."""
    clock = VirtualClock()
    budget = Budget("check", 4, clock, window=60.0)
    t0 = clock.now()
    for _ in range(4):
        budget.try_acquire()
        clock.advance(10)
    # taken at t0, t0+10, t0+20, t0+30; now t0+40
    assert budget.wait_for(1) == pytest.approx(20.001)
    assert budget.wait_for(2) == pytest.approx(30.001)
    assert budget.wait_for(4) == pytest.approx(50.001)
    clock.set(t0 + 70.002)
    assert budget.available() == 2 and budget.wait_for(2) == 0.0
    assert budget.wait_for(3) == pytest.approx(9.999, abs=1e-6)
    budget.block_for(30)
    assert budget.wait_for(1) == pytest.approx(30.0)
    for bad in (0, 5):
        with pytest.raises(ValueError):
            budget.wait_for(bad)


async def test_acquire_waits_on_the_virtual_clock() -> None:
    clock = VirtualClock()
    budget = Budget("purchase", 2, clock)
    await budget.acquire()
    await budget.acquire()
    task = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not task.done()
    assert clock.next_wakeup() == pytest.approx(clock.now() + budget.wait_time())
    clock.advance(30)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(30.501)
    for _ in range(5):
        await asyncio.sleep(0)
    assert task.done()
    assert budget.used() == 1  # the two first slots have left the window


async def test_many_waiters_respect_the_window() -> None:
    clock = VirtualClock()
    budget = Budget("cancel", 10, clock)
    taken: list[float] = []

    async def one() -> None:
        await budget.acquire()
        taken.append(clock.now())

    tasks = [asyncio.create_task(one()) for _ in range(35)]
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0)
        nxt = clock.next_wakeup()
        if nxt is not None:
            clock.set(nxt)
    assert len(taken) == 35
    assert_sliding_window(taken, 10)
    assert taken[-1] - taken[0] < 3 * 60.5 + 1  # and no needless waiting


def test_block_for_after_a_server_429() -> None:
    clock = VirtualClock()
    budget = Budget("purchase", 10, clock)
    budget.block_for(43)
    assert budget.available() == 0 and not budget.try_acquire()
    assert budget.wait_time() == pytest.approx(43.0)
    budget.block_for(5)  # never shortens a block
    assert budget.wait_time() == pytest.approx(43.0)
    clock.advance(43)
    assert budget.available() == 10 and budget.try_acquire()


def test_registry_shares_one_limiter_per_key_and_clock() -> None:
    clock = VirtualClock()
    a = get_limiter("key-one-0123456789", clock)
    assert get_limiter("key-one-0123456789", clock) is a
    assert get_limiter("key-two-0123456789", clock) is not a
    assert get_limiter("key-one-0123456789", VirtualClock()) is not a
    s1 = get_limiter("key-one-0123456789", SystemClock())
    assert get_limiter("key-one-0123456789", SystemClock()) is s1  # all wall clocks share
    assert get_limiter("key-one-0123456789") is s1
    a.check.try_acquire()
    assert get_limiter("key-one-0123456789", clock).check.used() == 1
    fp = key_fingerprint("key-one-0123456789")
    assert "key-one" not in fp and len(fp) == 16
