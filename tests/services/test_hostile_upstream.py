"""The engine against a careless or hostile upstream: absurd amounts (issue 9
item 3) and slow-loris answers (issue 10 item 1)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from bot.services.api import ActivationState, EventKind
from tests.services.conftest import ADMIN, ALICE, BOB, OP_KEY, USER_KEY, USER_KEY_B, Harness

ABSURD = [Decimal("1E+30"), Decimal(0), Decimal(-5)]


async def test_absurd_catalogue_prices_are_left_out_not_crashing(h: Harness) -> None:
    """1e30 used to raise InvalidOperation (in quantize) for every service list;
    a negative price was listed as "-$3.00" and its hold skipped."""
    eng = await h.engine("operator", markup_percent="10")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    h.sim.add_fault("apps", patch={"code=Signal/price": Decimal("1E+30"),
                                   "code=Telegram/price": Decimal(-3)})
    services = {s.code: s for s in await eng.list_services(ALICE)}
    assert "Signal" not in services and "Telegram" not in services
    assert services["WhatsApp"].price == Decimal("2.04")  # 2.035 rounded up to the cent
    assert all(s.price > 0 for s in services.values())
    act = await eng.buy(ALICE, "WhatsApp", None, Decimal("2.04"), request_id="r1")
    assert act.price == Decimal("2.04")
    assert await eng.inspect.balance(ALICE) == Decimal("7.96")


@pytest.mark.parametrize("amount", ABSURD, ids=str)
async def test_absurd_amount_charged_is_reconciled_and_never_stored(
    h: Harness, amount: Decimal
) -> None:
    """1e30 used to raise InvalidOperation and then poison every later buy on the
    account; 0 or -5 was stored as the price (and fed "spent this month")."""
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    h.sim.add_fault("purchase", patch={"amount_charged": amount})
    act = await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    assert act.state == ActivationState.WAITING
    [sim_act] = h.sim.state()["activations"]
    assert act.remote_id == sim_act["id"]  # found through /history
    assert act.price == Decimal("0.6")
    wallet = await eng.wallet(ALICE)
    assert wallet.balance == Decimal("9.4") and wallet.spent_this_month == Decimal("0.6")
    assert (await eng.stats(ADMIN)).spend == Decimal("0.6")
    # The account is not poisoned: the next purchase goes through normally.
    second = await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r2")
    assert second.price == Decimal("0.6") and second.remote_id != act.remote_id
    assert len(h.sim.state()["activations"]) == 2


async def test_unreadable_amount_in_history_records_the_confirmed_price(h: Harness) -> None:
    eng = await h.engine("own_key")
    await eng.link_key(ALICE, USER_KEY)
    h.sim.add_fault("purchase", patch={"amount_charged": Decimal(-5)}, api_key=USER_KEY)
    h.sim.add_fault("history", patch={"orders/0/amount_charged": Decimal(0)},
                    api_key=USER_KEY)
    act = await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    assert act.state == ActivationState.WAITING and act.price == Decimal("0.6")
    assert (await eng.wallet(ALICE)).spent_this_month == Decimal("0.6")


@pytest.mark.parametrize("refund", [Decimal(-5), Decimal("1E+30")], ids=str)
async def test_absurd_refund_answer_is_retried_and_recorded_sanely(
    h: Harness, refund: Decimal
) -> None:
    """An own-key cancel answered with an absurd refund is not taken as the
    refund: the cancel is retried, DaisySim then says it is already cancelled,
    and the refund recorded is what the number cost."""
    eng = await h.engine("own_key")
    await eng.link_key(ALICE, USER_KEY)
    act = await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    await h.run_for(eng, eng.cancel_lock + 1)
    h.sim.add_fault("cancel", patch={"refund": refund}, api_key=USER_KEY)
    await eng.cancel(ALICE, act.id)
    await h.run_for(eng, 600)
    done = await eng.get_activation(ALICE, act.id)
    assert done.state == ActivationState.REFUNDED
    assert done.refund_amount == Decimal("0.6")
    assert h.sim_refunds(USER_KEY) == {act.remote_id: 1}  # refunded once upstream
    assert h.kinds(act.id).count(EventKind.REFUNDED) == 1


async def test_purchase_hitting_the_deadline_is_reconciled(h: Harness) -> None:
    """The answer trickles one byte per 0.2 s: each read is far inside httpx's
    per-read timeout, so without a total deadline the Confirm hung for the whole
    body. With it the purchase is an unknown outcome, found in /history."""
    eng = await h.engine("operator", daisysim_timeout_seconds=0.5)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    operator_before = h.sim_balance(OP_KEY)
    h.sim.add_fault("purchase", trickle=0.2)
    act = await asyncio.wait_for(
        eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1"), timeout=20
    )
    [sim_act] = h.sim.state()["activations"]
    assert act.state == ActivationState.WAITING and act.remote_id == sim_act["id"]
    assert await eng.inspect.balance(ALICE) == Decimal("9.4")
    assert h.sim_balance(OP_KEY) == operator_before - Decimal("0.6")  # bought once


async def test_one_trickling_account_does_not_hold_up_another(h: Harness) -> None:
    """Alice's check-all trickles (and her deadline is long): Bob's code is still
    delivered. Used to: the rounds ran one after the other inside run_due, so
    Bob waited for Alice's whole trickle. Alice's code then arrives exactly once."""
    settings: dict[str, Any] = {"daisysim_timeout_seconds": 60.0}
    eng = await h.engine("own_key", **settings)
    eng.inspect.poll_rounds.patience = 0.3
    await eng.link_key(ALICE, USER_KEY)
    await eng.link_key(BOB, USER_KEY_B)
    alice = await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="a")
    bob = await eng.buy(BOB, "Signal", None, Decimal("0.6"), request_id="b")
    h.sms(alice, "111111")
    h.sms(bob, "222222")
    h.sim.add_fault("check-all", trickle=0.5, api_key=USER_KEY)  # ~75 s of body
    h.clock.advance(eng.interval + 1)
    await asyncio.wait_for(eng.run_due(), timeout=20)
    assert h.kinds(bob.id) == [EventKind.CODE_RECEIVED]
    assert (await eng.get_activation(BOB, bob.id)).code == "222222"
    assert h.kinds(alice.id) == []  # her round is still trickling
    assert h.sim.stats.count(USER_KEY, "check-all") == 1
    await eng.close()  # ends the trickling round (a restart, as a deploy would)
    h.sim.clear_faults()

    again = await h.engine("own_key", **settings)
    await h.run_for(again, 60)
    assert h.kinds(alice.id) == [EventKind.CODE_RECEIVED]
    assert h.kinds(bob.id) == [EventKind.CODE_RECEIVED]  # still once
    assert (await again.get_activation(ALICE, alice.id)).code == "111111"


async def test_a_slow_round_left_running_wakes_the_engine_when_done(h: Harness) -> None:
    """A round that outlives run_due's patience finishes in the background and
    calls the waker, so its codes are dispatched without waiting for the next
    scheduled time."""
    eng = await h.engine("operator", daisysim_timeout_seconds=60.0)
    eng.inspect.poll_rounds.patience = 0.1
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    act = await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    h.sms(act, "333333")
    woken = asyncio.Event()
    eng.set_waker(lambda when: woken.set())
    h.sim.add_fault("check-all", trickle=0.01)  # a second or two of body
    h.clock.advance(eng.interval + 1)
    woken.clear()
    await eng.run_due()
    assert h.kinds(act.id) == []  # not waited for
    await asyncio.wait_for(woken.wait(), timeout=20)
    await eng.run_due()
    assert h.kinds(act.id) == [EventKind.CODE_RECEIVED]


