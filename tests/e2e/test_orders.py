"""The order message: OTP push, cancel lock, cancel & refund, races, expiry, restart."""

from __future__ import annotations

import re
from decimal import Decimal

from bot.sandbox.fake_telegram import ChatMessage, FakeUser, TimeMention
from bot.services.api import ActivationState
from tests.e2e.conftest import ALICE, BOB, WAIT, Harness, HarnessFactory
from tests.texts import button, lead, pattern, service_button, text

CANCEL = button("btn_cancel_refund")
LOCKED = pattern("btn_cancel_locked", at=re.compile(r"\d\d:\d\d UTC"))
BUY_AGAIN = button("btn_buy_again")
OTP = pattern("otp_message")  # "🔑 Code for …"
NUMBER = pattern("order_number")  # the order view
CONFIRMING = pattern("buy_confirm")  # the confirmation screen
SIGNAL = service_button("Signal", "$0.60")
TELEGRAM = service_button("Telegram", "$1.40")


def is_otp(message: ChatMessage) -> bool:
    return OTP.match(message.text) is not None


def otp_messages(user: FakeUser) -> list[ChatMessage]:
    return [m for m in user.bot_messages() if is_otp(m)]


async def remote_id(h: Harness) -> str:
    [act] = await h.activations()
    assert act.remote_id is not None
    return act.remote_id


async def test_code_is_pushed_as_new_message_and_order_updated(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, SIGNAL)
    h.sim.deliver_sms(await remote_id(h), "847261")
    alice.mark()
    await h.advance(15)  # the next poll round sees the code
    push = await alice.wait_for(is_otp, WAIT)
    assert push.message_id > order.message_id  # a new message: the phone notifies
    assert "847261" in push.entity_texts("code")
    copy = push.button(button("btn_copy_code"))
    assert copy.kind == "copy_text" and copy.copy_text == "847261"
    assert push.has_button(BUY_AGAIN)
    updated = alice.message(order.message_id)
    assert text("order_status", status=text("status_completed")) in updated.text
    assert "847261" in updated.entity_texts("code")
    assert not updated.has_button(CANCEL) and updated.has_button(BUY_AGAIN)
    await h.advance(600)
    assert len(otp_messages(alice)) == 1  # exactly once
    [act] = await h.activations()
    assert act.state == ActivationState.COMPLETED and act.code == "847261"

    # Buy again → a new confirmation message with a fresh quote.
    await alice.press(BUY_AGAIN, message_id=push.message_id)
    again = await alice.wait_for(CONFIRMING, WAIT)
    assert again.message_id > push.message_id
    assert pattern("buy_confirm", price="$0.60").search(again.text)


async def test_cancel_button_appears_at_the_lock_and_refunds(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, TELEGRAM)  # bought at 2026-01-01 00:00:00 UTC
    assert not order.has_button(CANCEL)
    # relative and live in the reader's app ("opens in 3 minutes"), beside the
    # absolute time; the fallbacks are exact as of sending, the clock in UTC
    in_3_00 = text("time_in", left="3:00")
    assert text("order_cancel_locked_live", when=in_3_00, at="00:03 UTC") in order.text
    in_20_00 = text("time_in", left="20:00")
    assert text("status_waiting_live", when=in_20_00, at="00:20 UTC") in order.text
    opens, expires = 1767225780, 1767226800  # 2026-01-01 00:03 / 00:20 UTC
    assert TimeMention(in_3_00, opens, "r") in order.times
    assert TimeMention("00:03 UTC", opens, "t") in order.times
    assert TimeMention(in_20_00, expires, "r") in order.times
    assert order.has_button(LOCKED)  # looks disabled, a press explains why
    await h.advance(179)
    assert not alice.message(order.message_id).has_button(CANCEL)
    assert alice.message(order.message_id).has_button(LOCKED)
    await h.advance(1)
    unlocked = alice.message(order.message_id)
    assert unlocked.has_button(CANCEL), unlocked.describe()
    assert not unlocked.has_button(LOCKED)
    assert (await h.engine.wallet(ALICE)).balance == Decimal("8.60")
    answer = await alice.press(CANCEL, message_id=order.message_id)
    assert answer.text == text("cb_refunded", amount="$1.40")
    done = await alice.wait_for(pattern("status_refunded"), WAIT)
    assert done.message_id == order.message_id
    assert text("status_refunded", amount="$1.40") in done.text
    assert not done.has_button(CANCEL) and done.has_button(BUY_AGAIN)
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")
    [sim_act] = h.sim_activations()
    assert sim_act["refunded"]


async def test_too_early_cancel_shows_seconds_left(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, SIGNAL)
    [act] = await h.activations()
    await h.advance(60)
    before = alice.message(order.message_id)
    answer = await alice.press_data(f"act:cancel:{act.id}", order.message_id)
    assert answer.show_alert
    assert answer.text is not None
    assert pattern("cb_too_early", at="00:03 UTC", seconds=120).search(answer.text)
    await h.settle()
    after = alice.message(order.message_id)
    status = lead("order_status")  # the order above its status line is unchanged
    assert not after.has_button(CANCEL)
    assert after.text.split(status)[0] == before.text.split(status)[0]
    [act] = await h.activations()
    assert act.state == ActivationState.WAITING


async def test_code_received_race_on_cancel(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, SIGNAL)
    await h.advance(180)
    assert alice.message(order.message_id).has_button(CANCEL)
    # The SMS arrives upstream; no poll has seen it when the user taps Cancel.
    h.sim.deliver_sms(await remote_id(h), "555123")
    answer = await alice.press(CANCEL, message_id=order.message_id)
    assert answer.text == text("cb_code_received")
    done = await alice.wait_for(lambda m: m.message_id == order.message_id and "555123" in m.text,
                                WAIT)
    assert text("order_status", status=text("status_completed")) in done.text
    assert not done.has_button(CANCEL)
    await h.advance(1)
    await alice.wait_for(is_otp, WAIT, since=0)
    await h.advance(120)
    assert len(otp_messages(alice)) == 1
    [act] = await h.activations()
    assert act.state == ActivationState.COMPLETED
    assert (await h.engine.wallet(ALICE)).balance == Decimal("9.40")  # charged, not refunded


async def test_auto_expiry_refunds(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, TELEGRAM)
    alice.mark()
    await h.advance(20 * 60 + 30)
    no_sms = pattern("notify_refunded_expired")
    notice = await alice.wait_for(lambda m: bool(no_sms.search(m.text)), WAIT)
    assert pattern("notify_refunded_expired", amount="$1.40").search(notice.text)
    expired = alice.message(order.message_id)
    assert text("status_refunded_expired", amount="$1.40") in expired.text, expired.describe()
    assert not expired.has_button(CANCEL)
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")
    [act] = await h.activations()
    assert act.state == ActivationState.REFUNDED


async def test_restart_mid_wait_delivers_the_code_once(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, SIGNAL)
    await h.advance(30)
    await h.stop_bot()
    h.sim.deliver_sms(await _remote_id_from_sim(h), "424242")
    await h.start_bot()  # same DB file, simulator and fake Telegram
    await h.advance(15)
    await alice.wait_for(is_otp, WAIT, since=0)
    await h.advance(300)
    await h.restart_bot()
    await h.advance(60)
    pushes = otp_messages(alice)
    assert len(pushes) == 1 and "424242" in pushes[0].text
    assert "424242" in alice.message(order.message_id).text
    # Buttons of messages sent before the restart keep working.
    answer = await alice.press(BUY_AGAIN, message_id=pushes[0].message_id)
    assert answer.text is None
    await alice.wait_for(CONFIRMING, WAIT)


async def _remote_id_from_sim(h: Harness) -> str:
    [sim_act] = h.sim_activations()
    return str(sim_act["id"])


async def test_forged_callbacks_are_answered_politely(h: Harness) -> None:
    alice = h.user()
    bob = h.user(BOB, "Bob")
    await h.credit(BOB, "5")
    order = await h.buy(alice, TELEGRAM)
    [act] = await h.activations()
    await h.advance(200)
    await bob.send("/start")
    menu = await bob.wait_for(text("menu_title"), WAIT)
    before_alice = [m.describe() for m in alice.chat()]
    before_sim = h.sim_activations()

    # Bob forges a cancel / open / refresh of Alice's activation.
    for data in (f"act:cancel:{act.id}", f"act:open:{act.id}", f"act:ref:{act.id}"):
        answer = await bob.press_data(data, menu.message_id)
        assert answer.text == text("err_not_found"), (data, answer)
    # Garbage, unknown prefixes, bad numbers, overlong data.
    for data in ("garbage", "act:cancel:abc", "act:nuke:1", "buy:ok:Signal:-:zz",
                 "hist:all:0", "buy:svc:" + "x" * 60, "menu:" + "a" * 100, "buy:svc:a:b"):
        answer = await bob.press_data(data, menu.message_id)
        assert answer.text == text("cb_stale"), (data, answer)
    await h.settle()
    assert [m.describe() for m in alice.chat()] == before_alice
    assert h.sim_activations() == before_sim
    [still] = await h.activations()
    assert still.state == ActivationState.WAITING
    assert alice.message(order.message_id).has_button(CANCEL)
    assert (await h.engine.wallet(BOB)).balance == Decimal("5.00")


async def test_active_numbers_list_opens_orders(h: Harness) -> None:
    alice = h.user()
    await h.buy(alice, SIGNAL)
    await h.buy(alice, TELEGRAM)
    await alice.send("/active")
    listing = await alice.wait_for(pattern("active_title"), WAIT)
    acts = await h.activations()
    phones = {a.phone for a in acts}
    open_buttons = [b for b in listing.button_labels if any(p and p in b for p in phones)]
    assert len(open_buttons) == 2
    await alice.press(open_buttons[0], message_id=listing.message_id)
    opened = await alice.wait_for(lambda m: NUMBER.search(m.text) is not None and m.message_id >
                                  listing.message_id, WAIT)
    # The reopened message becomes the live one: the unlock edits it.
    await h.advance(180)
    assert alice.message(opened.message_id).has_button(CANCEL)


async def test_blocked_user_events_are_acknowledged(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    await h.credit(ALICE, "5")
    alice = h.user()
    await h.buy(alice, SIGNAL)
    await alice.block()
    h.sim.deliver_sms(await remote_id(h), "999000")
    await h.advance(20)
    [act] = await h.activations()
    assert act.state == ActivationState.COMPLETED
    await alice.unblock()
    await h.advance(600)
    assert otp_messages(alice) == []  # acknowledged, never redelivered


async def test_transient_telegram_error_redelivers_the_code_once(h: Harness) -> None:
    alice = h.user()
    await h.buy(alice, SIGNAL)
    h.fake.inject_error("sendMessage", 500, count=1)
    h.sim.deliver_sms(await remote_id(h), "777888")
    await h.advance(2)  # a spare poll finds the code within a second; its retry is 5 s off
    assert otp_messages(alice) == []  # the push failed: the engine keeps the event
    await h.advance(60)
    await alice.wait_for(is_otp, WAIT, since=0)
    await h.advance(600)
    assert len(otp_messages(alice)) == 1


async def test_flood_control_is_retried_by_the_rate_limiter(h: Harness) -> None:
    alice = h.user()
    h.fake.inject_error("sendMessage", 429, retry_after=1, count=1)
    await alice.send("/start")
    await h.settle()  # the 429 came; the chat waits out retry_after on the bot's clock
    assert not alice.bot_messages()
    await h.advance(1)
    await alice.wait_for(text("menu_title"), WAIT)
    statuses = [c.status for c in h.fake.calls if c.method == "sendMessage"]
    assert statuses[:2] == [429, 200]


async def test_unanswered_code_push_is_not_sent_twice(h: Harness) -> None:
    """The code message goes out but the answer is lost (connection cut): the
    order message, which shows the code too, is updated and the push is not
    repeated."""
    alice = h.user()
    order = await h.buy(alice, SIGNAL)
    h.fake.drop_response("sendMessage", count=1)
    h.sim.deliver_sms(await remote_id(h), "424242")
    await h.advance(15)
    await h.advance(600)
    assert len(otp_messages(alice)) == 1  # delivered by Telegram once, never re-sent
    assert "424242" in alice.message(order.message_id).text


async def test_interrupted_code_event_updates_the_order_but_never_pushes_again(
    h: Harness,
) -> None:
    """After a crash mid-push the engine redelivers the event flagged
    ``interrupted``: the renderer only refreshes the order message."""
    from bot.services.api import Event, EventKind
    from bot.telegram.events import EventRenderer

    alice = h.user()
    order = await h.buy(alice, SIGNAL)
    h.sim.deliver_sms(await remote_id(h), "313131")
    await h.advance(15)
    await alice.wait_for(is_otp, WAIT, since=0)
    [act] = await h.activations()
    assert h.app is not None
    sent_before = len(h.fake.calls_to("sendMessage"))
    redelivered = Event(id=10_000, kind=EventKind.CODE_RECEIVED, activation=act,
                        created_at=h.clock.now(), interrupted=True)
    await EventRenderer(h.app)(redelivered)
    assert len(h.fake.calls_to("sendMessage")) == sent_before  # no second push
    assert len(otp_messages(alice)) == 1
    assert "313131" in alice.message(order.message_id).text  # the order shows the code


async def test_an_off_minute_purchase_states_only_true_times(h: Harness) -> None:
    """Issue 9.7 end to end: bought at 00:00:11.3, the button opens at 00:03:11.3.
    The order, its button, the toast, the refresh and the wallet say so exactly
    (before the fix: "available at 00:04 UTC", almost a minute late)."""
    alice = h.user()
    h.clock.set(h.clock.now() + 11.3)
    order = await h.buy(alice, TELEGRAM)
    assert text(
        "order_cancel_locked_live", when=text("time_in", left="3:01"), at="00:03:12 UTC"
    ) in order.text
    assert text(
        "status_waiting_live", when=text("time_in", left="20:00"), at="00:20:11 UTC"
    ) in order.text
    locked = button("btn_cancel_locked", at="00:03:12 UTC")
    assert order.has_button(locked)
    await h.advance(150)  # 00:02:41.3
    answer = await alice.press(locked, message_id=order.message_id)
    assert answer.text is not None and answer.show_alert
    assert pattern("cb_too_early", at="00:03:12 UTC", seconds=31).search(answer.text), answer.text
    in_0_31 = text(
        "order_cancel_locked_live", when=text("time_in", left="0:31"), at="00:03:12 UTC"
    )
    await alice.wait_for(
        lambda m: m.message_id == order.message_id and in_0_31 in m.text,
        WAIT,
    )
    await h.advance(29.9)  # 00:03:11.2: not yet
    assert not alice.message(order.message_id).has_button(CANCEL)
    await h.advance(0.1)  # 00:03:11.3: open — before 00:03:12, so "from 00:03:12" held
    assert alice.message(order.message_id).has_button(CANCEL)
    await alice.send("/wallet")
    wallet = await alice.wait_for(text("wallet_title"), WAIT)
    line = pattern("wallet_ledger_line", date="2026-01-01 00:00:11 UTC", amount="-$1.40")
    assert line.search(wallet.text), wallet.text
