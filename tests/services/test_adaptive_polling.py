"""Adaptive polling end to end (engine → real HTTP → simulator, virtual clock),
under both readings of a stored code: no 429, the reserve kept, new purchases
first, spare polls only where they can help, concurrent account rounds within
the bound. Invariants only, never timings."""

from __future__ import annotations

import asyncio
import itertools
import math
from decimal import Decimal

import httpx
import pytest

from bot.daisysim.limits import CHECK_LIMIT, CHECK_RESERVE
from bot.services.api import Activation, EventKind
from bot.services.engine import Engine
from bot.services.poller import BATCH
from tests.services.conftest import ADMIN, ALICE, Harness

READINGS = ["documented", "cache_bound"]


async def funded(h: Harness, reading: str, **overrides: object) -> Engine:
    h.sim.core.cache_bound = reading == "cache_bound"
    eng = await h.engine("operator", **overrides)  # type: ignore[arg-type]
    await eng.admin_adjust(ADMIN, ALICE, Decimal("100"), "top-up")
    return eng


async def buy(h: Harness, eng: Engine, n: int, tag: str) -> list[Activation]:
    """``n`` purchases, as fast as the purchase budget (10/min) allows."""
    acts: list[Activation] = []
    for i in range(n):
        acts.append(await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id=f"{tag}{i}"))
        [client] = eng.inspect.clients()
        assert client is not None
        wait = client.limiter.purchase.wait_time()
        if wait > 0:
            await h.run_for(eng, wait)
    return acts


@pytest.mark.parametrize("reading", READINGS)
async def test_no_429_the_reserve_kept_and_every_id_polled_per_interval(
    h: Harness, reading: str
) -> None:
    eng = await funded(h, reading)
    acts = await buy(h, eng, 25, "r")  # two batches
    [client] = eng.inspect.clients()
    assert client is not None
    budget = client.limiter.check
    start = h.clock.now()
    low = CHECK_LIMIT
    while h.clock.now() < start + 240:
        await h.run_until(eng, h.clock.now() + 0.5)
        low = min(low, budget.available())
    assert h.sim.state()["rate_limited"] == {}
    # The fresh rounds need at most 2 requests at a time: spare polls never took
    # the last CHECK_RESERVE, so a user-asked check always finds room.
    assert low >= CHECK_RESERVE - math.ceil(len(acts) / BATCH)
    polls: dict[str, list[float]] = {}
    for t, ids in h.transport.checks:
        for i in ids:
            polls.setdefault(i, []).append(t)
    for act in acts:
        times = [t for t in polls[str(act.remote_id)] if t >= start]
        assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))
        assert max(b - a for a, b in itertools.pairwise(times)) <= 15.0 + 1.5
        assert len(times) > 240 / 15.0  # more often than the 15-s cadence alone


@pytest.mark.parametrize("reading", READINGS)
async def test_a_code_is_found_early_only_where_the_reading_allows(
    h: Harness, reading: str
) -> None:
    eng = await funded(h, reading)
    [act] = await buy(h, eng, 1, "c")
    await h.run_for(eng, 40)  # a fresh round came at about +15/+16 and +31
    fresh = [t for t, ids in h.transport.checks if ids == [act.remote_id]]
    assert len(fresh) > 20
    h.sms(act, "4242")
    sent_at = h.clock.now()
    await h.run_for(eng, 20)
    [event] = [e for e in h.events if e.activation.id == act.id]
    assert event.kind is EventKind.CODE_RECEIVED and event.activation.code == "4242"
    # Polling stops at the answer that brought the code: the last check-all.
    after = [t for t, _ in h.transport.checks if t >= sent_at]
    if reading == "documented":
        # The very next spare poll (about a second later) brings the code.
        assert len(after) == 1 and after[0] - sent_at <= 1.5
    else:
        # Cached Waiting answers hide it (spare polls meet them), the fresh round
        # a cache's length after the last fresh poll brings it, not later.
        assert len(after) >= 2 and after[-1] - sent_at <= 15.0 + 1e-6
    assert h.sim.state()["rate_limited"] == {}


async def test_new_purchases_are_polled_first(h: Harness) -> None:
    eng = await funded(h, "documented")
    await buy(h, eng, 45, "o")  # three batches: spare polls pick 20 ids each
    await h.run_for(eng, 30)
    [new] = await buy(h, eng, 1, "n")
    bought = h.clock.now()
    await h.run_for(eng, 5)
    after = [ids for t, ids in h.transport.checks if t >= bought + 1.0]
    # The new number rides first in the first poll after the 1-s min gap, before
    # due ids and numbers that were polled a few seconds ago.
    assert after[0][0] == new.remote_id
    assert h.sim.state()["rate_limited"] == {}


async def test_adaptive_off_polls_once_per_interval(h: Harness) -> None:
    eng = await funded(h, "documented", poll_adaptive=False)
    t0 = h.clock.now()
    [act] = await buy(h, eng, 1, "x")
    await h.run_until(eng, t0 + 61)
    assert h.transport.times("/check-all") == [t0 + 15, t0 + 30, t0 + 45, t0 + 60]
    assert act.remote_id is not None


class InFlight(httpx.AsyncBaseTransport):
    """Counts check-all requests on the wire at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.now = 0
        self.peak = 0
        self.total = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/check-all"):
            return await self.inner.handle_async_request(request)
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1


async def test_rounds_of_many_accounts_run_concurrently_within_the_bound(
    h: Harness,
) -> None:
    """Own-key mode, 12 accounts, a 100-ms round trip (simulator clock): the
    rounds overlap, never more than POLL_CONCURRENCY at once, and one pass of
    every account takes about ceil(12 / 4) round trips, not 12."""
    keys = [f"sk_conc_{i:02d}_0123456789abcdef0123" for i in range(12)]
    for k in keys:
        h.sim.add_account(k, "20")
    eng = await h.engine("own_key", poll_concurrency=4, poll_adaptive=False)
    t0 = h.clock.now()
    for i, k in enumerate(keys):
        await eng.link_key(100 + i, k)
        await eng.buy(100 + i, "Signal", None, Decimal("1"), request_id=f"k{i}")
    counter = InFlight(h.transport._inner)
    h.transport._inner = counter  # type: ignore[assignment]
    h.sim.rtt = 0.1
    await eng.run_due()  # whatever else is due now (events, sweeps)
    due = t0 + 15.0  # every account's first (fresh) round
    await h.run_until(eng, due - 0.001)
    assert counter.total == 0
    h.clock.set(due)
    run = asyncio.ensure_future(eng.run_due())
    for _ in range(20_000):
        if counter.total >= len(keys) and not counter.now:
            break
        await asyncio.sleep(0.001)
        if h.sim.on_wire and h.sim.on_wire == counter.now:  # all parked on the clock
            h.clock.advance(0.05)
    await run
    assert counter.total == len(keys)
    assert counter.peak == 4
    # 3 waves of 4 requests, each 0.1 s: the pass took 0.3 s of simulator time.
    assert h.clock.now() - due == pytest.approx(0.3, abs=0.051)
