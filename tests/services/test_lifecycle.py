"""Activation lifecycle against the simulator (real HTTP, virtual time), in both
funding modes: code delivered, cancel (too early, refunded, CODE_RECEIVED race),
auto-expiry, Not Found, purchase errors, idempotency and ownership."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any

import pytest

from bot.services.api import (
    Activation,
    ActivationNotFound,
    ActivationState,
    DuplicateRequest,
    EventKind,
    InsufficientFunds,
    PriceChanged,
    RefundReason,
    ServiceUnavailable,
    SoldOut,
    TooBusy,
)
from bot.services.engine import Engine
from tests.services.conftest import ADMIN, ALICE, BOB, OP_KEY, USER_KEY, USER_KEY_B, Harness

MODES = ["operator", "own_key"]


async def setup(h: Harness, mode: str, **overrides: Any) -> Engine:
    eng = await h.engine(mode, **overrides)
    if mode == "operator":
        await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
        await eng.admin_adjust(ADMIN, BOB, Decimal("10"), "top-up")
    else:
        await eng.link_key(ALICE, USER_KEY)
        await eng.link_key(BOB, USER_KEY_B)
    return eng


def key_of(mode: str, user: int = ALICE) -> str:
    if mode == "operator":
        return OP_KEY
    return USER_KEY if user == ALICE else USER_KEY_B


async def balance(eng: Engine, h: Harness, mode: str, user: int = ALICE) -> Decimal:
    if mode == "operator":
        return await eng.inspect.balance(user)
    return h.sim_balance(key_of(mode, user))


# --------------------------------------------------------------------------- code


@pytest.mark.parametrize("mode", MODES)
async def test_code_delivered_exactly_once(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "sb_wa", "3109", Decimal("1.0830"), request_id="buy-1")
    assert act.state is ActivationState.WAITING and act.remote_id and act.phone
    assert act.price == Decimal("1.0830")
    assert act.cancel_after == t0 + 180 and act.expires_at == t0 + 1200
    assert await balance(eng, h, mode) == before - Decimal("1.0830")

    # Adaptive polling: the first poll a second (POLL_MIN_GAP_SECONDS) after the
    # purchase, then with the spare budget, never two within a second.
    await h.run_until(eng, t0 + 0.9)
    assert h.transport.count("/check-all") == 0
    await h.run_until(eng, t0 + 15)
    times = h.transport.times("/check-all")
    assert times[0] == t0 + 1.0 and len(times) >= 10
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))

    h.sms(act, "847261")
    await h.run_until(eng, t0 + 600)
    assert h.kinds(act.id) == [EventKind.CODE_RECEIVED]
    event = h.events[-1]
    assert event.activation.code == "847261"
    assert event.activation.state is ActivationState.COMPLETED
    done = await eng.get_activation(ALICE, act.id)
    assert done.state is ActivationState.COMPLETED and done.code == "847261"
    # Completed: polling stopped, no cancel_available, no refund.
    checks = h.transport.count("/check-all")
    await h.run_for(eng, 1200)
    assert h.transport.count("/check-all") == checks
    assert h.kinds(act.id) == [EventKind.CODE_RECEIVED]
    assert await balance(eng, h, mode) == before - Decimal("1.0830")
    assert h.sim_refunds(key_of(mode)) == {}
    page = await eng.history(ALICE, "completed")
    assert [a.id for a in page.items] == [act.id]
    wallet = await eng.wallet(ALICE)
    assert wallet.spent_this_month == Decimal("1.0830") and wallet.active_count == 0


# --------------------------------------------------------------------------- cancel


@pytest.mark.parametrize("mode", MODES)
async def test_user_cancel_too_early_then_refunded(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("0.60"), request_id="c-1")
    await h.run_until(eng, t0 + 60)
    early = await eng.cancel(ALICE, act.id)
    assert early.outcome == "too_early" and early.seconds_left == 120
    assert h.transport.count("/cancel/") == 0  # known locally: DaisySim not asked

    await h.run_until(eng, t0 + 179.9)
    assert EventKind.CANCEL_AVAILABLE not in h.kinds(act.id)
    await h.run_until(eng, t0 + 180)
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE]
    unlocked = h.events[-1].activation
    assert unlocked.cancel_available(h.clock.now())

    result = await eng.cancel(ALICE, act.id)
    assert result.outcome == "refunded"
    assert result.refund == Decimal("0.6000")
    assert result.activation.state is ActivationState.REFUNDED
    assert result.activation.refund_reason is RefundReason.USER_CANCEL
    await h.run_for(eng, 1)
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE, EventKind.REFUNDED]
    assert await balance(eng, h, mode) == before
    assert h.sim_refunds(key_of(mode)) == {act.remote_id: 1}

    again = await eng.cancel(ALICE, act.id)
    assert again.outcome == "already_final"
    await h.run_for(eng, 2000)
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE, EventKind.REFUNDED]
    assert h.sim_refunds(key_of(mode)) == {act.remote_id: 1}
    assert await balance(eng, h, mode) == before
    cancelled = await eng.history(ALICE, "cancelled")
    assert [a.id for a in cancelled.items] == [act.id]


@pytest.mark.parametrize("mode", MODES)
async def test_code_arrives_on_cancel(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Telegram", None, Decimal("1.40"), request_id="race")
    await h.run_until(eng, t0 + 180)  # the poll at +180 still saw Waiting
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE]
    h.sms(act, "555111")  # arrives between the poll and the cancel
    result = await eng.cancel(ALICE, act.id)
    assert result.outcome == "code_received"
    assert result.activation.code == "555111"
    assert result.activation.state is ActivationState.COMPLETED
    await h.run_for(eng, 1500)
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE, EventKind.CODE_RECEIVED]
    assert h.events[-1].activation.code == "555111"
    assert h.sim_refunds(key_of(mode)) == {}
    if mode == "operator":
        assert await eng.inspect.balance(ALICE) == Decimal("10") - Decimal("1.4000")


@pytest.mark.parametrize("mode", MODES)
async def test_auto_expiry_refunds_once(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "whatsapp-(us)5", None, Decimal("1"), request_id="exp")
    await h.run_until(eng, t0 + 1199)
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE]
    await h.run_until(eng, t0 + 1200)
    assert h.kinds(act.id) == [
        EventKind.CANCEL_AVAILABLE, EventKind.EXPIRED, EventKind.REFUNDED,
    ]
    final = await eng.get_activation(ALICE, act.id)
    assert final.state is ActivationState.REFUNDED
    assert final.refund_reason is RefundReason.EXPIRED
    assert final.refund_amount == Decimal("0.7400")
    assert await balance(eng, h, mode) == before
    assert h.sim_refunds(key_of(mode)) == {act.remote_id: 1}
    await h.run_for(eng, 3600)
    assert h.sim_refunds(key_of(mode)) == {act.remote_id: 1}
    assert len(h.kinds(act.id)) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_code_before_auto_cancel_wins(h: Harness, mode: str) -> None:
    """The give-up time is reached while the cancel budget is exhausted: a code
    arriving before the auto-cancel goes through still completes the number."""
    eng = await setup(h, mode, give_up_minutes=4)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="win")
    await h.run_until(eng, t0 + 239)
    [client] = eng.inspect.clients()
    assert client is not None
    while client.limiter.cancel.try_acquire():  # the key's cancel budget is used elsewhere
        pass
    await h.run_until(eng, t0 + 240)
    assert EventKind.EXPIRED in h.kinds(act.id)
    assert (await eng.get_activation(ALICE, act.id)).state is ActivationState.EXPIRED
    h.sms(act, "424242")
    await h.run_for(eng, 120)
    final = await eng.get_activation(ALICE, act.id)
    assert final.state is ActivationState.COMPLETED and final.code == "424242"
    assert h.kinds(act.id)[-1] is EventKind.CODE_RECEIVED
    assert EventKind.REFUNDED not in h.kinds(act.id)
    assert h.sim_refunds(key_of(mode)) == {}


@pytest.mark.parametrize("mode", MODES)
async def test_not_found_upstream_fails_and_refunds(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="nf")
    assert act.remote_id is not None
    h.sim.core.activations[int(act.remote_id)].account = "someone-else"  # now Not Found
    await h.run_for(eng, 30)
    final = await eng.get_activation(ALICE, act.id)
    assert final.state is ActivationState.FAILED
    assert final.refund_reason is RefundReason.FAILED
    assert h.kinds(act.id) == [EventKind.FAILED]
    if mode == "operator":
        assert final.refund_amount == Decimal("0.6000")
        assert await eng.inspect.balance(ALICE) == before  # the user got the money back
    else:
        assert final.refund_amount is None  # own key: nothing of ours to refund
    checks = h.transport.count("/check-all")
    await h.run_for(eng, 600)
    assert h.transport.count("/check-all") == checks  # dropped from polling at once
    assert h.transport.count("/cancel/") == 0


@pytest.mark.parametrize("mode", MODES)
async def test_cancel_outage_goes_pending_then_refunds_once(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="out")
    await h.run_until(eng, t0 + 200)
    h.sim.add_fault("cancel", count=2, status=500)
    result = await eng.cancel(ALICE, act.id)
    assert result.outcome == "pending"
    assert result.activation.state is ActivationState.CANCELLING
    assert (await eng.cancel(ALICE, act.id)).outcome == "pending"  # no second request
    assert h.transport.count("/cancel/") == 1
    await h.run_for(eng, 120)
    final = await eng.get_activation(ALICE, act.id)
    assert final.state is ActivationState.REFUNDED
    assert final.refund_reason is RefundReason.USER_CANCEL
    assert h.transport.count("/cancel/") == 3
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE, EventKind.REFUNDED]
    assert await balance(eng, h, mode) == before
    assert h.sim_refunds(key_of(mode)) == {act.remote_id: 1}


async def test_cancel_rate_limited_upstream_is_retried(h: Harness) -> None:
    eng = await setup(h, "operator")
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="rl")
    await h.run_until(eng, t0 + 200)
    h.sim.add_fault("cancel", status=429, code="RATE_LIMITED",
                    message="Too many cancel attempts. Please wait 30s.")
    result = await eng.cancel(ALICE, act.id)
    assert result.outcome == "pending"
    await h.run_for(eng, 29)
    assert h.transport.count("/cancel/") == 1  # waited as told
    await h.run_for(eng, 2)
    assert (await eng.get_activation(ALICE, act.id)).state is ActivationState.REFUNDED
    assert h.sim_refunds() == {act.remote_id: 1}


# --------------------------------------------------------------------------- buying


@pytest.mark.parametrize("mode", MODES)
async def test_out_of_stock_buys_nothing(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    await eng.list_services(ALICE)  # catalogue cached with stock
    h.sim.set_stock("sb_wa", "3109", 0)
    with pytest.raises(SoldOut) as info:
        await eng.buy(ALICE, "sb_wa", "3109", Decimal("2"), request_id="oos")
    service = info.value.service
    assert service is not None and service.code == "sb_wa"
    assert {p.provider_id: p.count for p in service.pools}["3109"] == 0  # refreshed
    assert await balance(eng, h, mode) == before
    assert await eng.active(ALICE) == []
    assert (await eng.history(ALICE)).total == 0
    # The cheapest other pool still works.
    act = await eng.buy(ALICE, "sb_wa", None, Decimal("2"), request_id="oos-2")
    assert act.price == Decimal("1.0920")


async def test_insufficient_funds_operator(h: Harness) -> None:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("1.00"), "small")
    with pytest.raises(InsufficientFunds) as info:
        await eng.buy(ALICE, "WhatsApp", None, Decimal("1.85"), request_id="poor")
    assert info.value.balance == Decimal("1.0000") and info.value.price == Decimal("1.8500")
    assert h.transport.count("/purchase") == 0  # refused before DaisySim was asked
    assert await eng.inspect.balance(ALICE) == Decimal("1.00")


async def test_concurrent_buys_cannot_overdraw(h: Harness) -> None:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("2.00"), "top-up")
    results = await asyncio.gather(
        eng.buy(ALICE, "WhatsApp", None, Decimal("1.85"), request_id="a"),
        eng.buy(ALICE, "WhatsApp", None, Decimal("1.85"), request_id="b"),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InsufficientFunds) for r in results) == 1
    assert await eng.inspect.balance(ALICE) == Decimal("0.1500")
    assert h.transport.count("/purchase") == 1


async def test_concurrent_first_buys_share_one_account_and_its_purchase_lock(
    h: Harness,
) -> None:
    """The first use of an account by two buys at once opens it once: before, each
    opened its own Account (the row read in between), so the two buys held different
    purchase locks and the second met the first mid-purchase ("an earlier purchase
    is still being reconciled"), and the key had two rate-limit budgets."""
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("2.00"), "top-up")
    opened = eng.services.accounts.rt.accounts
    for _ in range(5):
        opened.clear()  # as right after a start: nothing opened yet
        first, second = await asyncio.gather(
            *(eng.services.accounts.account(i) for i in (1, 1)))
        assert first is second and opened == {1: first}
    opened.clear()
    results = await asyncio.gather(
        eng.buy(ALICE, "WhatsApp", None, Decimal("1.85"), request_id="a"),
        eng.buy(ALICE, "WhatsApp", None, Decimal("1.85"), request_id="b"),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InsufficientFunds) for r in results) == 1, results
    assert h.transport.count("/purchase") == 1


async def test_insufficient_funds_own_key(h: Harness) -> None:
    eng = await h.engine("own_key")
    await eng.link_key(ALICE, USER_KEY)
    h.sim.update_account(USER_KEY, balance="0.50")
    with pytest.raises(InsufficientFunds) as info:
        await eng.buy(ALICE, "WhatsApp", None, Decimal("1.85"), request_id="poor")
    assert info.value.balance == Decimal("0.5000") and info.value.price == Decimal("1.8500")
    assert await eng.active(ALICE) == []


@pytest.mark.parametrize("mode", MODES)
async def test_price_changed(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    quote = await eng.quote(ALICE, "sb_wa", "3170")
    assert quote.price == Decimal("1.3810")
    with pytest.raises(PriceChanged) as info:
        await eng.buy(ALICE, "sb_wa", "3170", Decimal("1.30"), request_id="pc")
    assert info.value.quote is not None and info.value.quote.price == Decimal("1.3810")
    assert h.transport.count("/purchase") == 0
    # Upstream PRICE_VERIFICATION_FAILED: asked again at the re-read price.
    h.sim.add_fault("purchase", status=422, code="PRICE_VERIFICATION_FAILED",
                    message="Price verification failed.")
    with pytest.raises(PriceChanged) as verify:
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="pc-2")
    assert verify.value.quote is not None and verify.value.quote.price == Decimal("0.6000")
    # The service vanished after the quote: the fresh /apps at Confirm says so before
    # anything is sent.
    await eng.list_services(ALICE)
    h.sim.remove_service("Signal")
    with pytest.raises(ServiceUnavailable):
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="pc-3")
    with pytest.raises(ServiceUnavailable):
        await eng.quote(ALICE, "Signal", None)
    assert h.transport.count("/purchase") == 1


async def test_markup_applies_to_prices_and_charges(h: Harness) -> None:
    """A marked-up price is rounded UP to the cent (1.85 x 1.1 = 2.035 -> 2.04), and
    exactly that is shown, quoted, held and charged."""
    eng = await h.engine("operator", markup_percent=Decimal("10"))
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    services = {s.code: s for s in await eng.list_services(ALICE)}
    assert services["WhatsApp"].price == Decimal("2.04")
    assert services["sb_wa"].pools[0].price == Decimal("1.20")  # 1.0830 * 1.1 = 1.1913
    quote = await eng.quote(ALICE, "WhatsApp", None)
    assert quote.price == Decimal("2.04") and quote.balance_after == Decimal("2.96")
    act = await eng.buy(ALICE, "WhatsApp", None, quote.price, request_id="m")
    assert act.price == Decimal("2.04")
    assert await eng.inspect.balance(ALICE) == Decimal("2.96")
    assert h.sim_balance() == Decimal("500") - Decimal("1.85")


async def test_duplicate_request_id(h: Harness) -> None:
    eng = await setup(h, "operator")
    first = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="dup")
    with pytest.raises(DuplicateRequest) as info:
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="dup")
    assert info.value.activation is not None and info.value.activation.id == first.id
    with pytest.raises(DuplicateRequest) as other:
        await eng.buy(BOB, "Signal", None, Decimal("1"), request_id="dup")
    assert other.value.activation is None  # never someone else's order
    assert h.transport.count("/purchase") == 1
    assert await eng.inspect.balance(ALICE) == Decimal("10") - Decimal("0.6")


async def test_duplicate_request_id_racing_the_first_is_still_a_duplicate(h: Harness) -> None:
    """Both pass the early check; the second meets the UNIQUE request_id inside its
    transaction. On PostgreSQL a failed statement aborts the transaction, so the
    first order is looked up after the rollback, not inside it."""
    eng = await setup(h, "operator")
    results = await asyncio.gather(
        eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="race"),
        eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="race"),
        return_exceptions=True,
    )
    [first] = [r for r in results if isinstance(r, Activation)]
    [dup] = [r for r in results if not isinstance(r, Activation)]
    assert isinstance(dup, DuplicateRequest), dup
    assert dup.activation is not None and dup.activation.id == first.id
    assert h.transport.count("/purchase") == 1
    assert await eng.inspect.balance(ALICE) == Decimal("10") - Decimal("0.6")


async def test_purchase_rate_limit_is_local(h: Harness) -> None:
    eng = await setup(h, "operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("100"), "more")
    for i in range(10):
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id=f"p{i}")
    with pytest.raises(TooBusy) as info:
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="p10")
    assert 0 < info.value.retry_after <= 61
    assert h.sim.state()["rate_limited"] == {}
    await h.run_for(eng, info.value.retry_after)
    await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="p11")


# --------------------------------------------------------------------------- ownership


@pytest.mark.parametrize("mode", MODES)
async def test_other_users_activation_is_invisible(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="mine")
    await h.run_until(eng, t0 + 200)
    for probe in (act.id, act.id + 1, 999_999):
        with pytest.raises(ActivationNotFound):
            await eng.get_activation(BOB, probe)
        with pytest.raises(ActivationNotFound):
            await eng.cancel(BOB, probe)
        with pytest.raises(ActivationNotFound):
            await eng.set_message(BOB, probe, 5, 6)
    assert await eng.active(BOB) == []
    assert (await eng.history(BOB)).total == 0
    assert (await eng.get_activation(ALICE, act.id)).state is ActivationState.WAITING
    assert h.transport.count("/cancel/") == 0
    await eng.set_message(ALICE, act.id, 11, 22)
    got = await eng.get_activation(ALICE, act.id)
    assert (got.chat_id, got.message_id) == (11, 22)
