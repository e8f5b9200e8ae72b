"""300 numbers waiting at once on one DaisySim account: every code delivered
exactly once, never more than 60 check requests in any 60 s, zero 429."""

from __future__ import annotations

import itertools
import random
from bisect import bisect_left
from collections import Counter, defaultdict
from decimal import Decimal

from bot.services.api import Activation, EventKind, TooBusy
from tests.services.conftest import ADMIN, ALICE, OP_KEY, Harness

N = 300


async def test_300_waiting_on_one_account(h: Harness) -> None:
    h.sim.core.window = 7200.0  # numbers live long enough to buy 300 at 10/min
    eng = await h.engine("operator", give_up_minutes=120)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("1000"), "load")
    rng = random.Random(3)

    acts: list[Activation] = []
    while len(acts) < N:
        try:
            acts.append(
                await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id=f"load-{len(acts)}")
            )
        except TooBusy as exc:
            await h.run_for(eng, exc.retry_after)
    all_bought = h.clock.now()
    assert len(eng.inspect.tracked()) == N

    # Everything waits for two minutes, then the codes trickle in over 20 minutes.
    await h.run_for(eng, 120)
    deliveries = sorted((rng.uniform(0, 1200), a) for a in acts)
    for offset, act in deliveries:
        await h.run_until(eng, all_bought + 120 + offset)
        h.sms(act, f"{act.id:06d}")
    await h.run_for(eng, 120)

    # Every code exactly once, and the right one.
    codes = [e for e in h.events if e.kind is EventKind.CODE_RECEIVED]
    assert Counter(e.activation.id for e in codes) == {a.id: 1 for a in acts}
    assert all(e.activation.code == f"{e.activation.id:06d}" for e in codes)
    assert eng.inspect.tracked() == {}
    assert h.sim_refunds() == {}

    # The budget: never a 429, never more than 60 check requests in 60 s.
    state = h.sim.state()
    assert state["rate_limited"] == {}
    times = sorted(t for t, _ in h.transport.checks)
    assert all(len(ids) <= 20 for _, ids in h.transport.checks)
    worst = max(
        bisect_left(times, t + 60.0) - i for i, t in enumerate(times)
    )
    assert worst <= 60
    assert state["requests"][OP_KEY]["check-all"] == len(times)

    # With 300 waiting, the budget is used fully: ~15 requests per 15 s...
    window = [t for t in times if all_bought + 60 <= t < all_bought + 120]
    assert len(window) >= 55
    # ...and fairly: while waiting, no number went unpolled for long.
    polled: dict[str, list[float]] = defaultdict(list)
    for t, ids in h.transport.checks:
        for remote in ids:
            polled[remote].append(t)
    for act in acts:
        seen = [t for t in polled[act.remote_id or ""] if all_bought <= t <= all_bought + 120]
        gaps = [b - a for a, b in itertools.pairwise(seen)]
        assert seen and max(gaps, default=0) <= 31.0, (act.id, gaps)
