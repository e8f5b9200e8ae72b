"""Contract tests: every endpoint and every documented error code, through the client,
against the DaisySim simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.daisysim import (
    AccountLocked,
    AccountSuspended,
    CodeReceived,
    ConcurrentError,
    InsufficientBalance,
    InvalidCountry,
    KeyLimiter,
    NotFound,
    OutOfStock,
    PriceVerificationFailed,
    ProviderError,
    PurchaseFailed,
    RateLimited,
    ServerError,
    TooEarly,
    Unauthenticated,
    UnknownAPIError,
)
from tests.daisysim.conftest import KEY, SimEnv
from tests.daisysim.helpers import run_virtual


def no_429(env: SimEnv) -> None:
    assert env.sim.stats.rate_limited.get(KEY, 0) == 0


async def test_balance_countries_apps(env: SimEnv) -> None:
    c = env.client
    bal = await c.balance()
    assert bal.balance == Decimal("20") and bal.currency == "USD"
    assert bal.email == "user@example.com"
    assert [(x.id, x.name) for x in await c.countries()] == [("USA", "USA")]
    apps = {a.code: a for a in await c.apps("USA")}
    assert apps["WhatsApp"].price == Decimal("1.85") and not apps["WhatsApp"].multi_pool
    sb = apps["sb_wa"]
    assert sb.multi_pool and sb.price == Decimal("1.0830") and sb.name == "WhatsApp 3"
    assert [p.provider_id for p in sb.providers] == ["3109", "2266", "3170", "2617"]
    assert [p.price for p in sb.providers] == [Decimal(x) for x in
                                               ("1.083", "1.092", "1.381", "3.6")]
    assert sb.providers[0].count == 4000


async def test_purchase_check_cancel_history_cycle(env: SimEnv) -> None:
    c, clock, sim = env.client, env.clock, env.sim
    pinned = await c.purchase("USA", "sb_wa", "2266", app_name="WhatsApp 3")
    assert pinned.amount_charged == Decimal("1.092") and pinned.service == "WhatsApp 3"
    assert pinned.balance_after == Decimal("18.908") and not pinned.reconciled
    cheap = await c.purchase("USA", "sb_wa", country_name="United States")
    assert cheap.amount_charged == Decimal("1.083") and cheap.country == "United States"
    single = await c.purchase("USA", "Signal", provider_id="ignored")
    assert single.amount_charged == Decimal("0.6") and single.service == "Signal"
    assert single.phone_number.startswith("+1940")

    first = await c.check(pinned.activation_id)
    assert first.waiting and first.phone_number == pinned.phone_number
    sim.deliver_sms(pinned.activation_id, "847261")
    sim.core.cache_bound = True  # the cache-bound reading: the 15-s Waiting cache hides it
    assert (await c.check(pinned.activation_id)).waiting
    clock.advance(15)
    done = await c.check(pinned.activation_id)
    assert done.completed and done.code == "847261" and done.status == "Completed"

    results = await c.check_all([pinned.activation_id, cheap.activation_id, "99999", "abc"])
    by_id = {r.activation_id: r for r in results}
    assert by_id[pinned.activation_id].code == "847261"
    assert by_id[cheap.activation_id].waiting
    assert by_id["99999"].unresolvable and by_id["99999"].status == "Not Found"
    assert by_id["abc"].unresolvable and by_id["abc"].status == "Invalid"

    with pytest.raises(TooEarly) as early:
        await c.cancel(cheap.activation_id)
    assert early.value.seconds_left == 165  # 180 - 15
    with pytest.raises(CodeReceived) as received:
        await c.cancel(pinned.activation_id)
    assert received.value.otp == "847261"
    assert received.value.activation_id == pinned.activation_id
    clock.advance(early.value.seconds_left or 0)
    refund = await c.cancel(cheap.activation_id)
    assert refund.refund == Decimal("1.083")
    assert refund.balance_after == Decimal("20") - Decimal("1.092") - Decimal("0.6")
    with pytest.raises(UnknownAPIError) as again:  # the simulator's undocumented code
        await c.cancel(cheap.activation_id)
    assert again.value.code == "ALREADY_CANCELLED"
    assert (await c.balance()).balance == refund.balance_after  # never refunded twice

    page = await c.history(per_page=2)
    assert page.pagination.total == 3 and page.pagination.last_page == 2
    assert [o.activation_id for o in page.orders] == [single.activation_id,
                                                      cheap.activation_id]
    every = [o async for o in c.iter_history(per_page=1)]
    assert [o.activation_id for o in every] == [single.activation_id, cheap.activation_id,
                                                pinned.activation_id]
    assert every[2].completed and every[2].completed_at is not None
    assert every[1].status == "Cancelled" and every[1].amount_charged == Decimal("1.083")
    completed = await c.history(status="completed")
    assert [o.activation_id for o in completed.orders] == [pinned.activation_id]
    cancelled = await c.history(status="cancelled")
    assert [o.activation_id for o in cancelled.orders] == [cheap.activation_id]
    waiting = await c.history(status="waiting")
    assert [o.activation_id for o in waiting.orders] == [single.activation_id]
    no_429(env)
    assert env.sim.invariant_violations() == []


async def test_unauthenticated(env: SimEnv) -> None:
    async with env.new_client("sk_wrong_key_000000000000") as bad:
        with pytest.raises(Unauthenticated) as err:
            await bad.balance()
    assert err.value.status == 401 and "sk_wrong" not in str(err.value)


@pytest.mark.parametrize(("state", "cls"), [("suspended", AccountSuspended),
                                            ("locked", AccountLocked)])
async def test_account_states(env: SimEnv, state: str, cls: type[Exception]) -> None:
    env.sim.update_account(KEY, state=state)
    with pytest.raises(cls):
        await env.client.balance()
    with pytest.raises(cls):
        await env.client.purchase("USA", "Signal")
    env.sim.update_account(KEY, state="active")
    assert (await env.client.balance()).balance == Decimal(20)


async def test_not_found(env: SimEnv) -> None:
    with pytest.raises(NotFound):
        await env.client.check("99999")
    with pytest.raises(NotFound):
        await env.client.cancel("99999")
    env.sim.add_account("sk_other_account_0000000", "5")
    async with env.new_client("sk_other_account_0000000") as other:
        mine = await other.purchase("USA", "Signal")
    with pytest.raises(NotFound):  # someone else's activation
        await env.client.check(mine.activation_id)


async def test_price_verification_invalid_country_balance_stock(env: SimEnv) -> None:
    c, sim = env.client, env.sim
    sim.remove_service("Telegram")
    with pytest.raises(PriceVerificationFailed):
        await c.purchase("USA", "Telegram")
    with pytest.raises(PriceVerificationFailed):
        await c.purchase("USA", "sb_wa", "0000")  # unknown pool
    assert "Telegram" not in {a.code for a in await c.apps()}
    with pytest.raises(InvalidCountry):
        await c.apps("CAN")
    with pytest.raises(InvalidCountry):
        await c.purchase("CAN", "Signal")
    sim.set_stock("sb_tg", "2266", 0)
    with pytest.raises(OutOfStock) as oos:
        await c.purchase("USA", "sb_tg", "2266")
    assert oos.value.status == 503
    fallback = await c.purchase("USA", "sb_tg")  # omit provider_id: next pool with stock
    assert fallback.amount_charged == Decimal("0.6")
    sim.update_account(KEY, balance="1.0")
    with pytest.raises(InsufficientBalance):
        await c.purchase("USA", "WhatsApp")
    assert (await c.balance()).balance == Decimal("1.0")
    assert len(sim.state()["activations"]) == 1  # errors bought nothing
    no_429(env)


async def test_concurrent_error_retried_then_raised(env: SimEnv) -> None:
    env.sim.add_fault("cancel", code="CONCURRENT_ERROR", count=2)
    p = await env.client.purchase("USA", "Signal")
    env.clock.advance(180)
    refund = await env.client.cancel(p.activation_id)  # two 409s, then done
    assert refund.refund == Decimal("0.6")
    env.sim.add_fault("balance", code="CONCURRENT_ERROR", count=5)
    with pytest.raises(ConcurrentError):
        await env.client.balance()  # bounded: 3 tries
    assert env.sim.stats.count(KEY, "balance") == 3


async def test_provider_and_server_errors(env: SimEnv) -> None:
    env.sim.add_fault("apps", code="PROVIDER_ERROR", count=9)
    with pytest.raises(ProviderError):
        await run_virtual(env.clock, env.client.apps())
    assert env.sim.stats.count(KEY, "apps") == 4  # max_attempts
    env.sim.clear_faults()
    env.sim.add_fault("cancel", status=500)
    p = await env.client.purchase("USA", "Signal")
    env.clock.advance(180)
    with pytest.raises(ServerError):
        await env.client.cancel(p.activation_id)  # not retried blindly
    assert env.sim.stats.count(KEY, "cancel") == 1
    env.sim.add_fault("purchase", code="PROVIDER_ERROR")
    with pytest.raises(PurchaseFailed) as failed:  # reconciled: nothing was bought
        await env.client.purchase("USA", "Signal")
    assert isinstance(failed.value.original, ProviderError)


async def test_rate_limited_when_the_key_is_used_elsewhere(env: SimEnv) -> None:
    # Another process with the same key: a separate limiter that we do not share.
    async with env.new_client(limiter=KeyLimiter.create(env.clock)) as elsewhere:
        for _ in range(10):
            await elsewhere.purchase("USA", "Signal")
    t0 = env.clock.now()
    async with env.new_client(max_attempts=1) as impatient:
        with pytest.raises(RateLimited) as err:
            await impatient.purchase("USA", "Signal")
        assert err.value.retry_after == 60.0
        assert impatient.limiter.purchase.available() == 0  # blocked until then
    env.clock.advance(20)
    p = await run_virtual(env.clock, env.client.purchase("USA", "Signal"))
    assert p.activation_id and env.clock.now() - t0 == pytest.approx(60.0)
    # env.client shares the impatient client's limiter (same key, same process), so it
    # waited out the block instead of asking again: exactly one 429 in total.
    assert env.sim.stats.rate_limited[KEY] == 1
    assert len(env.sim.state()["activations"]) == 11


async def test_client_limiter_prevents_429(env: SimEnv) -> None:
    ids = [(await env.client.purchase("USA", "Signal")).activation_id for _ in range(10)]
    nxt = await run_virtual(env.clock, env.client.purchase("USA", "Signal"))  # waits ~60.5 s
    ids.append(nxt.activation_id)
    for _ in range(70):
        await run_virtual(env.clock, env.client.check(ids[0]))
    for _ in range(5):
        await run_virtual(env.clock, env.client.check_all(ids[:5]))
    env.clock.advance(180)
    for aid in ids:
        await run_virtual(env.clock, env.client.cancel(aid))
    no_429(env)
    assert env.sim.stats.count(KEY, "check") == 70
    assert env.sim.invariant_violations() == []
