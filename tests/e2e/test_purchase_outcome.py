"""A purchase whose outcome is unknown, end to end through the PTB app (issue 10.2).

Regression: with DaisySim silent on /purchase the user was told "📡 DaisySim is not
responding right now. Nothing was charged." while the hold stood (and the number
had in fact been bought), and no word followed. Now the pressed screen says that
it is checking (money held, not spent) and the outcome is pushed once known: the
number (the pressed message becomes the order, plus a notice), or "not bought,
the hold is released". A late order DaisySim finishes after that is cancelled for
the refund, or shows in /admin as a loss (issue 9.1).
"""

from __future__ import annotations

from decimal import Decimal

from bot.sandbox.fake_telegram import FakeUser
from tests.e2e.conftest import ADMIN, ALICE, OP_KEY, WAIT, Harness
from tests.texts import pattern, service_label, text

# "checking whether the purchase went through — your money is held, not spent", as the
# error screen or as the order view (pressed screen) says it
PENDING = (text("err_purchase_pending"), text("order_pending"))
# the regression said "📡 DaisySim is not responding right now. Nothing was charged."
NOTHING_CHARGED = (text("err_upstream"), text("notify_failed_nothing"))
CONFIRM = pattern("btn_confirm")


def pending(message_text: str) -> bool:
    return any(p in message_text for p in PENDING)


def says_nothing_charged(message_text: str) -> bool:
    return any(p in message_text for p in NOTHING_CHARGED)


async def _confirm_signal(h: Harness) -> tuple[FakeUser, int]:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    return alice, confirm.message_id


async def test_unknown_outcome_says_so_and_the_number_follows(h: Harness) -> None:
    alice, pressed = await _confirm_signal(h)
    h.sim.add_fault("purchase", drop=True)  # bought upstream, the answer is lost
    h.sim.add_fault("history", status=502, count=1000)  # and /history is down
    await alice.press(CONFIRM, message_id=pressed)
    screen = await alice.wait_for(
        lambda m: m.message_id == pressed and pending(m.text), WAIT
    )
    assert not says_nothing_charged(screen.text)
    assert (await h.engine.wallet(ALICE)).balance == Decimal("9.40")  # held
    [bought] = h.sim_activations()

    h.sim.clear_faults()  # /history answers again: the purchase is reconciled
    alice.mark()
    await h.advance(10)
    order = alice.message(pressed)
    assert pattern("order_number", phone=bought["phone_number"]).search(order.text)
    assert not pending(order.text)
    notice = await alice.wait_for(pattern("notify_purchased"), WAIT)
    assert pattern("notify_purchased", phone=bought["phone_number"]).search(notice.text)
    assert notice.message_id != pressed
    [act] = await h.activations()
    assert act.remote_id == bought["id"] and act.message_id == pressed
    h.sim.deliver_sms(bought["id"], "777111")
    await h.advance(20)
    assert "777111" in alice.message(pressed).text


async def test_unknown_outcome_not_bought_then_the_late_order_is_refunded(h: Harness) -> None:
    alice, pressed = await _confirm_signal(h)
    operator_before = h.sim.balance(OP_KEY)
    h.sim.add_fault("purchase", late=150.0)  # no answer; DaisySim buys 150 s later
    await alice.press(CONFIRM, message_id=pressed)
    await alice.wait_for(lambda m: m.message_id == pressed and pending(m.text), WAIT)
    alice.mark()
    await h.advance(90)  # past the reconciliation window: written off
    notice = await alice.wait_for(pattern("notify_not_bought"), WAIT)
    assert text("notify_not_bought", name="Signal") in notice.text  # the hold is released
    assert not says_nothing_charged(notice.text)
    assert text("status_not_bought") in alice.message(pressed).text
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")  # released

    await h.advance(600)  # the late order appears, is found and cancelled
    [late] = h.sim_activations()
    assert late["refunded"] and h.sim.balance(OP_KEY) == operator_before
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")
    admin = h.user(ADMIN, "Admin")
    await admin.send("/admin")
    stats = await admin.wait_for(pattern("admin_strays"), WAIT)
    assert pattern("admin_strays", refunded_count=1, refunded="$0.60", lost_count=0).search(
        stats.text
    )


async def test_late_order_whose_code_came_first_shows_as_a_loss_in_admin(h: Harness) -> None:
    alice, pressed = await _confirm_signal(h)
    h.sim.add_fault("purchase", late=150.0)
    await alice.press(CONFIRM, message_id=pressed)
    await alice.wait_for(lambda m: pending(m.text), WAIT)
    await h.advance(170)
    [late] = h.sim_activations()
    h.sim.deliver_sms(late["id"], "123123")  # before the cancel lock opens
    await h.advance(600)
    assert not h.sim_activations()[0]["refunded"]
    admin = h.user(ADMIN, "Admin")
    await admin.send("/admin")
    stats = await admin.wait_for(pattern("admin_strays"), WAIT)
    assert pattern("admin_strays", lost_count=1, lost="$0.60").search(stats.text)
    assert "123123" not in "".join(m.text for m in alice.chat())
