"""Late purchases: DaisySim finishes a purchase after the client gave up *and* after
the reconciliation window. Regression (issue 9.1): the row became "not bought",
the hold was released and the upstream order was never cancelled, so the key's
owner paid for a number nobody used. Now the write-off is watched and the
stray-order sweep (bot/services/sweep.py) cancels the late order for the refund as soon
as the cancel lock allows, or records it as a loss when its code came first.

Also issue 9.5: a purchase under reconciliation with /history down blocks only the
purchases of the same service, not every purchase on the account.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.services.api import (
    ActivationState,
    EventKind,
    PurchasePending,
    UpstreamUnavailable,
)
from bot.telegram.admin import views
from tests.services.conftest import ADMIN, ALICE, BOB, OP_KEY, USER_KEY, Harness

LATE = 150.0  # > the 60-s reconciliation window after sending


def _late_ids(h: Harness) -> list[str]:
    return list(h.sim.state()["late_done"])


async def test_operator_late_order_is_cancelled_and_refunded_upstream(h: Harness) -> None:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    operator_before = h.sim_balance(OP_KEY)
    h.sim.add_fault("purchase", late=LATE)
    with pytest.raises(PurchasePending) as info:
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    pending = info.value.activation
    assert pending.state == ActivationState.PURCHASING
    assert await eng.inspect.balance(ALICE) == Decimal("9.4")  # held, not spent

    await h.run_for(eng, 100)  # the reconciliation window passes: written off
    [row] = await eng.inspect.repos.activations.list_all()
    assert row.state == "failed" and row.remote_id is None
    assert row.finished_at is not None  # watched as long as such a number could exist
    assert row.watch_until == row.finished_at + eng.give_up
    assert await eng.inspect.balance(ALICE) == Decimal("10")  # the hold is released
    assert EventKind.FAILED in h.kinds(row.id)

    await h.run_for(eng, 900)  # the order appears at +150 s; lock until +330 s
    [late_id] = _late_ids(h)
    assert h.sim.activation(late_id).refunded  # cancelled upstream, refunded once
    assert h.sim_refunds() == {late_id: 1}
    assert h.sim_balance(OP_KEY) == operator_before  # the operator is not out of pocket
    assert await eng.inspect.balance(ALICE) == Decimal("10")  # and Alice never paid
    [stray] = await eng.inspect.repos.strays.all()
    assert (stray.remote_id, stray.state, stray.activation_id) == (late_id, "refunded", row.id)
    assert stray.refund == Decimal("0.6")
    stats = await eng.stats(ADMIN)
    assert stats.strays_refunded == (1, Decimal("0.6"))
    assert stats.strays_lost == (0, Decimal(0))
    # The cancel waited for the lock (never TOO_EARLY-hammered) and nothing hit a 429.
    cancels = h.transport.times("/cancel/" + late_id)
    assert len(cancels) == 1 and cancels[0] >= stray.ordered_at + eng.cancel_lock
    assert not h.sim.stats.rate_limited
    assert eng.next_due() is None or eng.inspect.tracked() == {}


async def test_operator_late_order_whose_code_came_first_is_a_loss_in_stats(
    h: Harness,
) -> None:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    operator_before = h.sim_balance(OP_KEY)
    h.sim.add_fault("purchase", late=LATE)
    with pytest.raises(PurchasePending):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    await h.run_for(eng, LATE + 40)  # written off; the late order exists now
    [late_id] = _late_ids(h)
    h.sim.deliver_sms(late_id, "424242")  # before the 180-s lock lets us cancel
    await h.run_for(eng, 900)

    [stray] = await eng.inspect.repos.strays.all()
    assert (stray.remote_id, stray.state, stray.code) == (late_id, "lost", "424242")
    assert h.sim_refunds() == {}
    assert h.sim_balance(OP_KEY) == operator_before - Decimal("0.6")  # the loss
    assert await eng.inspect.balance(ALICE) == Decimal("10")  # never the user's
    stats = await eng.stats(ADMIN)
    assert stats.strays_lost == (1, Decimal("0.6"))
    text = views.stats("en", stats).text
    assert "lost" in text and "$0.60" in text


async def test_own_key_sweep_touches_only_the_bots_own_late_order(h: Harness) -> None:
    eng = await h.engine("own_key")
    await eng.link_key(ALICE, USER_KEY)
    user_acct = h.sim.core.accounts[USER_KEY]
    # Alice's own orders on her key, bought elsewhere: one of the same service long
    # before the bot's attempt, one of another service at the same time.
    before = h.sim.core.purchase(user_acct, country="USA", app="Signal", provider_id=None,
                                 app_name=None, country_name=None)
    await h.run_for(eng, 120)
    h.sim.add_fault("purchase", late=LATE)
    with pytest.raises(PurchasePending):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    await h.run_for(eng, 30)
    other = h.sim.core.purchase(user_acct, country="USA", app="Telegram", provider_id=None,
                                app_name=None, country_name=None)
    balance_after_own = h.sim_balance(USER_KEY)

    await h.run_for(eng, 1200)

    [late_id] = _late_ids(h)
    assert h.sim.activation(late_id).refunded
    assert h.sim_refunds(USER_KEY) == {late_id: 1}
    for foreign in (before, other):  # left alone
        assert not h.sim.activation(foreign.aid).refunded
        assert h.sim.activation(foreign.aid).cancelled_at is None
    assert [s.remote_id for s in await eng.inspect.repos.strays.all()] == [late_id]
    # The late order was charged and refunded: net, the bot cost Alice nothing.
    assert h.sim_balance(USER_KEY) == balance_after_own


async def test_sweep_is_exactly_once_across_restarts(h: Harness) -> None:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    operator_before = h.sim_balance(OP_KEY)
    h.sim.add_fault("purchase", late=LATE)
    with pytest.raises(PurchasePending):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    await h.run_for(eng, 100)  # written off, watched
    await eng.close()  # restart while the purchase is only watched

    eng2 = await h.engine("operator")
    await h.run_for(eng2, LATE)  # the order appears; the new process finds it
    [stray] = await eng2.inspect.repos.strays.all()
    assert stray.state == "cancelling"
    # The cancel goes through upstream but its answer is lost, and the process
    # dies before it learns anything.
    h.sim.add_fault("cancel", drop=True)
    await h.run_until(eng2, stray.ordered_at + eng2.cancel_lock + 1)
    [late_id] = _late_ids(h)
    assert h.sim.activation(late_id).refunded
    assert (await eng2.inspect.repos.strays.all())[0].state == "cancelling"
    await eng2.close()

    eng3 = await h.engine("operator")
    await h.run_for(eng3, 600)
    [stray] = await eng3.inspect.repos.strays.all()
    assert stray.state == "refunded"
    assert h.sim_refunds() == {late_id: 1}  # refunded once, whatever the attempts
    assert h.sim_balance(OP_KEY) == operator_before
    assert await eng3.inspect.balance(ALICE) == Decimal("10")
    assert len(await eng3.inspect.repos.ledger.for_activation(stray.activation_id or 0)) == 2


async def test_history_down_blocks_only_purchases_of_the_same_service(h: Harness) -> None:
    eng = await h.engine("operator")
    for user in (ALICE, BOB):
        await eng.admin_adjust(ADMIN, user, Decimal("10"), "top-up")
    h.sim.add_fault("purchase", drop=True)  # the answer is lost...
    h.sim.add_fault("history", status=502, count=1000)  # ...and /history is down
    with pytest.raises(PurchasePending):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="a1")
    [sim_signal] = h.sim.state()["activations"]

    # Another service goes ahead, for another user and for the same user.
    bob = await eng.buy(BOB, "Telegram", None, Decimal("1.4"), request_id="b1")
    assert bob.state == ActivationState.WAITING
    alice2 = await eng.buy(ALICE, "sb_tg", None, Decimal("0.45"), request_id="a2")
    assert alice2.state == ActivationState.WAITING
    # The same service waits: it could be confused with the purchase in doubt.
    with pytest.raises(UpstreamUnavailable) as info:
        await eng.buy(BOB, "Signal", None, Decimal("0.6"), request_id="b2")
    assert not isinstance(info.value, PurchasePending)
    assert len(h.sim.state()["activations"]) == 3  # nothing was sent for it
    assert await eng.inspect.balance(BOB) == Decimal("8.6")  # no hold left behind

    h.sim.clear_faults()  # /history is back: the doubt resolves, Signal buys again
    await h.run_for(eng, 20)
    first = await eng.get_activation(ALICE, 1)
    assert first.remote_id == sim_signal["id"]
    bob2 = await eng.buy(BOB, "Signal", None, Decimal("0.6"), request_id="b3")
    assert bob2.state == ActivationState.WAITING and bob2.remote_id != first.remote_id


async def test_operator_sweep_also_cancels_orders_the_bot_does_not_know(h: Harness) -> None:
    """The operator's key belongs to the bot: an order on it that no activation owns
    (e.g. its row was lost), seen by the sweep, is cancelled for the refund too."""
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    operator_before = h.sim_balance(OP_KEY)
    h.sim.add_fault("purchase", late=LATE)
    with pytest.raises(PurchasePending):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    await h.run_for(eng, 20)
    unknown = h.sim.core.purchase(h.sim.core.accounts[OP_KEY], country="USA", app="Telegram",
                                  provider_id=None, app_name=None, country_name=None)
    await h.run_for(eng, 1200)
    [late_id] = _late_ids(h)
    assert {s.remote_id: s.activation_id for s in await eng.inspect.repos.strays.all()} == {
        late_id: 1, unknown.aid: None,
    }
    assert h.sim_refunds() == {late_id: 1, unknown.aid: 1}
    assert h.sim_balance(OP_KEY) == operator_before
    assert (await eng.stats(ADMIN)).strays_refunded == (2, Decimal("2.0"))


async def test_a_5xx_purchase_the_server_finishes_late_is_swept_too(h: Harness) -> None:
    """A 502 answer and an empty /history used to be taken as proof: written off at
    once, never looked at again. It is watched now like any unproven write-off."""
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    operator_before = h.sim_balance(OP_KEY)
    h.sim.add_fault("purchase", late=LATE, status=502)
    with pytest.raises(UpstreamUnavailable) as info:
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    assert not isinstance(info.value, PurchasePending)
    [row] = await eng.inspect.repos.activations.list_all()
    assert row.state == "failed" and row.watch_until is not None
    assert await eng.inspect.balance(ALICE) == Decimal("10")
    await h.run_for(eng, 900)
    [late_id] = _late_ids(h)
    assert h.sim_refunds() == {late_id: 1}
    assert h.sim_balance(OP_KEY) == operator_before


async def test_a_newer_purchase_in_doubt_does_not_starve_the_sweep(h: Harness) -> None:
    """Soak finding: while any purchase of the same service was in doubt, every order
    of that service was left alone, and with steady buying the watch ran out before
    the late order was taken. Only orders that purchase could claim wait now."""
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    h.sim.add_fault("purchase", late=125.0)
    with pytest.raises(PurchasePending):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    sent = h.clock.now()
    # Written off at +60 s and swept every 30 s; the late order is created at +125 s
    # but not seen before the sweep at +150 s.
    await h.run_until(eng, sent + 140)
    assert await eng.inspect.repos.strays.all() == []
    # Another Signal purchase is now (and stays) in doubt: e.g. on the wire.
    await eng.inspect.repos.activations.insert_purchasing(
        user_id=ALICE, account_id=1, service_code="Signal", service_name="Signal",
        provider_id=None, price=Decimal("0.6"), request_id="r2", sent_at=h.clock.now(),
    )
    await h.run_for(eng, 600)
    [late_id] = _late_ids(h)
    [stray] = await eng.inspect.repos.strays.all()
    assert (stray.remote_id, stray.state) == (late_id, "refunded")


async def test_a_late_order_taken_by_another_purchase_does_not_hide_that_ones_own(
    h: Harness,
) -> None:
    """Soak finding: two lost purchases of one service; the second one's
    reconciliation took the first one's late order, so its own late order, created
    after the first one's watch, was never looked for. A purchase matched by
    reconciliation is watched too now."""
    eng = await h.engine("operator", give_up_minutes=1)
    for user in (ALICE, BOB):
        await eng.admin_adjust(ADMIN, user, Decimal("10"), "top-up")
    operator_before = h.sim_balance(OP_KEY)
    t0 = h.clock.now()
    h.sim.add_fault("purchase", late=80.0)
    with pytest.raises(PurchasePending):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="a")
    await h.run_until(eng, t0 + 65)  # the first one is written off at t0 + 60
    assert (await eng.inspect.repos.activations.get(1)).state == "failed"  # type: ignore[union-attr]
    h.sim.add_fault("purchase", late=70.0)
    with pytest.raises(PurchasePending):
        await eng.buy(BOB, "Signal", None, Decimal("0.6"), request_id="c")
    await h.run_until(eng, t0 + 900)
    first, second = _late_ids(h)  # created at t0 + 80 and t0 + 135
    owners = {r.remote_id: r for r in await eng.inspect.repos.activations.list_all()}
    strays = {s.remote_id: s for s in await eng.inspect.repos.strays.all()}
    assert first in owners and second in strays  # each one accounted for
    assert strays[second].state == "refunded"
    assert h.sim_refunds()[second] == 1
    assert h.sim_balance(OP_KEY) == operator_before  # the first one expired: refunded
