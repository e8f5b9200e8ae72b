"""The provider's reference flow (spec section 12) and fault handling, end to end
through the client against the simulator (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal

import httpx
import pytest

from bot.clock import SystemClock, VirtualClock
from bot.daisysim import (
    APITimeoutError,
    CheckResult,
    DaisySimClient,
    OutOfStock,
    PurchaseFailed,
    PurchaseOutcomeUnknown,
    ServerError,
    TooEarly,
)
from bot.sandbox.simulator import Simulator, start_simulator
from tests.daisysim.conftest import KEY, START_BALANCE, SimEnv
from tests.daisysim.helpers import run_virtual


async def test_reference_flow(env: SimEnv) -> None:
    c, clock, sim = env.client, env.clock, env.sim
    start = Decimal(START_BALANCE)

    # 1. apps; pin the cheapest pool of an sb_* service
    sim.set_stock("sb_wa", "3109", 0)
    apps = {a.code: a for a in await c.apps("USA")}
    sb = apps["sb_wa"]
    assert sb.providers[0].provider_id == "3109"
    # 2. purchase; OUT_OF_STOCK -> re-fetch /apps and take another pool
    with pytest.raises(OutOfStock):
        await c.purchase("USA", sb.code, sb.providers[0].provider_id, app_name=sb.name)
    sb = {a.code: a for a in await c.apps("USA")}["sb_wa"]
    pool = next(p for p in sb.providers if p.count > 0)
    assert pool.provider_id == "2266"
    with_code = await c.purchase("USA", sb.code, pool.provider_id, app_name=sb.name)
    assert with_code.amount_charged == pool.price == Decimal("1.092")
    no_code = await c.purchase("USA", "Signal", app_name="Signal")
    bought_at = clock.now()

    # 3. poll check-all every 15 s (up to 40 times); the SMS arrives after ~50 s
    polling = {with_code.activation_id, no_code.activation_id}
    codes: dict[str, str] = {}
    rounds = 0
    while polling and rounds < 40:
        rounds += 1
        results: list[CheckResult] = await c.check_all(sorted(polling))
        for r in results:
            if r.completed:
                codes[r.activation_id] = r.code or ""
                polling.discard(r.activation_id)
            elif r.unresolvable:
                polling.discard(r.activation_id)
        if rounds == 4:
            sim.deliver_sms(with_code.activation_id, "552211")
        if rounds >= 8:
            break  # give up on the second number early (the test's give-up time)
        clock.advance(15)
    assert codes == {with_code.activation_id: "552211"}
    assert polling == {no_code.activation_id}

    # 4. no code: cancel; TOO_EARLY -> wait the seconds in the message -> refunded
    with pytest.raises(TooEarly) as early:
        await c.cancel(no_code.activation_id)
    left = early.value.seconds_left
    assert left is not None and left == pytest.approx(180 - (clock.now() - bought_at), abs=1)
    clock.advance(left)
    refund = await c.cancel(no_code.activation_id)
    assert refund.refund == Decimal("0.6")
    assert refund.balance_after == start - Decimal("1.092")
    assert (await c.balance()).balance == start - Decimal("1.092")
    assert env.sim.stats.rate_limited.get(KEY, 0) == 0
    assert env.sim.invariant_violations() == []


# --------------------------------------------------------------------------- faults


async def test_5xx_on_idempotent_calls_retried_and_succeed(env: SimEnv) -> None:
    env.sim.add_fault("balance", status=500, count=2)
    env.sim.add_fault("check-all", code="PROVIDER_ERROR", count=1)
    env.sim.add_fault("history", status=503, code="SERVER_ERROR", count=3)
    assert (await run_virtual(env.clock, env.client.balance())).balance == Decimal(20)
    assert env.sim.stats.count(KEY, "balance") == 3
    p = await env.client.purchase("USA", "Signal")
    results = await run_virtual(env.clock, env.client.check_all([p.activation_id]))
    assert results[0].waiting and env.sim.stats.count(KEY, "check-all") == 2
    page = await run_virtual(env.clock, env.client.history())
    assert page.orders[0].activation_id == p.activation_id
    assert env.sim.stats.count(KEY, "history") == 4


async def test_timeouts_retried_for_idempotent_calls(env: SimEnv) -> None:
    async with env.new_client(timeout=0.2) as fast:
        env.sim.add_fault("countries", latency=1.0, count=1)
        countries = await run_virtual(env.clock, fast.countries())
        assert countries[0].id == "USA"
        assert env.sim.stats.count(KEY, "countries") == 2
        env.sim.add_fault("balance", latency=1.0, count=9)
        async with env.new_client(timeout=0.2, max_attempts=2) as give_up:
            with pytest.raises(APITimeoutError) as err:
                await run_virtual(env.clock, give_up.balance())
        assert err.value.request_sent


async def test_cancel_timeout_is_not_a_success(env: SimEnv) -> None:
    p = await env.client.purchase("USA", "Signal")
    env.clock.advance(180)
    env.sim.add_fault("cancel", drop=True)
    with pytest.raises(Exception) as err:
        await env.client.cancel(p.activation_id)
    assert not isinstance(err.value, AssertionError)
    assert env.sim.stats.count(KEY, "cancel") == 1  # not re-sent
    # The engine retries later: the server refuses a second refund.
    with pytest.raises(Exception) as again:
        await env.client.cancel(p.activation_id)
    assert getattr(again.value, "code", None) == "ALREADY_CANCELLED"
    assert (await env.client.balance()).balance == Decimal(20)


async def test_dropped_purchase_response_is_reconciled_without_double_charge(
    env: SimEnv,
) -> None:
    other = await env.client.purchase("USA", "sb_wa", app_name="WhatsApp 3")  # known id
    env.sim.add_fault("purchase", drop=True)
    p = await env.client.purchase("USA", "sb_wa", app_name="WhatsApp 3")
    assert p.reconciled and p.balance_after is None and p.activation_id != other.activation_id
    acts = env.sim.state()["activations"]
    assert len(acts) == 2 and {a["id"] for a in acts} == {other.activation_id, p.activation_id}
    assert p.amount_charged == Decimal("1.083")
    assert p.phone_number == env.sim.activation(p.activation_id).phone
    assert (await env.client.balance()).balance == Decimal(20) - 2 * Decimal("1.083")
    assert env.sim.stats.count(KEY, "purchase") == 2  # never re-sent
    assert env.sim.invariant_violations() == []


async def test_purchase_failed_before_effect_is_reported_not_bought(env: SimEnv) -> None:
    env.sim.add_fault("purchase", status=500)
    with pytest.raises(PurchaseFailed) as err:
        await env.client.purchase("USA", "Signal")
    assert err.value.bought is False and isinstance(err.value.original, ServerError)
    assert env.sim.state()["activations"] == []
    assert (await env.client.balance()).balance == Decimal(20)
    assert env.sim.stats.count(KEY, "purchase") == 1


async def test_dropped_purchase_with_history_down_is_outcome_unknown(env: SimEnv) -> None:
    from bot.daisysim import PurchaseOutcomeUnknown

    env.sim.add_fault("purchase", drop=True)
    env.sim.add_fault("history", status=500, count=4)
    sent = env.clock.now()
    with pytest.raises(PurchaseOutcomeUnknown) as err:
        await run_virtual(env.clock, env.client.purchase("USA", "Signal"))
    assert err.value.sent_at == sent
    # later (e.g. after a restart) the engine reconciles it
    found = await env.client.reconcile_purchase("Signal", sent)
    assert found is not None and found.activation_id == env.sim.state()["activations"][0]["id"]


class _GiveUpEarly(httpx.AsyncBaseTransport):
    """Forwards POST /purchase to the server in the background and reports a
    ReadTimeout to the client after ``give_up`` s: the server goes on working.

    (Not done with a simulator latency fault plus a short client timeout: the
    simulator reads the request body after the latency sleep, so a client that
    gives up first cancels the request — the effect then never happens.)"""

    def __init__(self, give_up: float) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.give_up = give_up
        self.background: list[asyncio.Task[httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/purchase"):
            await request.aread()
            self.background.append(asyncio.create_task(self._forward(request)))
            await asyncio.sleep(self.give_up)
            raise httpx.ReadTimeout("gave up", request=request)
        return await self.inner.handle_async_request(request)

    async def _forward(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        return response

    async def aclose(self) -> None:
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.inner.aclose()


@pytest.mark.parametrize(("delay", "found"), [(0.6, True), (0.0, False)])
async def test_purchase_completed_after_the_client_gave_up(delay: float, found: bool) -> None:
    """Wall clock: the server applies the purchase ~0.3 s after it was sent; the
    client gave up after 0.05 s. Reconciliation first waits ``reconcile_delay``;
    without it the order is not there yet, so the outcome is reported unknown
    (never "not bought") and a later reconciliation finds it."""
    sim_clock = VirtualClock(start=time.time())  # frozen near now: created_at ~ sent_at
    sim = Simulator(sim_clock, seed=3)
    key = f"sk_wall_{random.randrange(10**12):012d}"
    sim.add_account(key, "5")
    server = await start_simulator(sim)
    transport = _GiveUpEarly(give_up=0.05)
    try:
        sim.add_fault("purchase", latency=0.3)
        async with DaisySimClient(key, base_url=server.base_url, clock=SystemClock(),
                                  transport=transport, reconcile_delay=delay) as client:
            if found:
                p = await client.purchase("USA", "Signal")
                assert p.reconciled
            else:
                # Nothing in /history yet: not "not bought" but "unknown" — the
                # caller reconciles again later and then finds the order.
                with pytest.raises(PurchaseOutcomeUnknown) as unknown:
                    await client.purchase("USA", "Signal")
            await transport.aclose()
            if not found:
                later = await client.reconcile_purchase("Signal", unknown.value.sent_at)
                assert later is not None and later.reconciled
        assert len(sim.state()["activations"]) == 1  # bought exactly once either way
        assert sim.balance(key) == Decimal("4.4")
    finally:
        await server.close()
