"""UX fixes from the user test: pasted keys, /cancel, moved order messages, locked
cancel button, admin help and stats, credit notices."""

from __future__ import annotations

import logging
import re
from decimal import Decimal

import pytest

from bot.config import FundingMode
from bot.telegram.handlers.key import looks_like_key
from bot.telegram.texts import plain
from tests.e2e.conftest import ADMIN, ALICE, BOB, USER_KEY, WAIT, Harness, HarnessFactory

BOGUS_KEY = "sk_bogus_not_a_real_key_000"
MOVED = "⬇️ This order continues below."
LOCKED = re.compile(r"^🔒 Cancel from \d\d:\d\d UTC$")


def _deleted(user: object, text: str) -> bool:
    """The user's message ``text`` exists and was deleted by the bot."""
    from bot.sandbox.fake_telegram import FakeUser

    assert isinstance(user, FakeUser)
    mine = [m for m in user.chat(include_deleted=True) if not m.from_bot and m.text == text]
    return bool(mine) and all(m.deleted for m in mine)


# ------------------------------------------------------------ 1. pasted keys


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (USER_KEY, True),
        ("demo_alice_0123456789ab", True),
        ("sk_live_abcdef12", True),
        ("  Ab3dE5gH7jK9mN1pQ3sT5vW7  ", True),  # a 20+ character random token
        ("abcdefghijklmnopqrstuvwxyz", False),  # a long word, no digit
        ("12345678901234567890123", False),  # digits only
        ("whatsapp", False),
        ("sk_short", False),
        ("my key is sk_user_alice_e2e_9f8e7d6c5b4a", False),  # not the whole message
        ("/key", False),
        ("Ab3dE5gH7jK9mN1pQ3sT5v W7", False),
    ],
)
def test_looks_like_key(text: str, expected: bool) -> None:
    assert looks_like_key(text) is expected


async def test_a_key_pasted_outside_the_prompt_is_deleted_and_linked(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await make_harness(FundingMode.OWN_KEY)
    alice = h.user()

    # /key, then /buy ("link your key first"), then the key: deleted, linked.
    await alice.send("/key")
    await alice.wait_for("Send me your DaisySim API key", WAIT)
    await alice.send("/buy")
    need = await alice.wait_for("link your DaisySim API key first", WAIT)
    await alice.send(USER_KEY)
    linked = await alice.wait_for("Key linked", WAIT)
    assert "That looks like a DaisySim API key — I deleted your message" in linked.text
    assert "$20.00" in linked.text and USER_KEY not in linked.text
    assert _deleted(alice, USER_KEY)
    assert await h.engine.key_info(ALICE) is not None
    assert not any("I didn't get that" in m.text for m in alice.bot_messages())

    # After /help, and after tapping Menu: a bad key is deleted too, nothing changes.
    masked = await h.engine.key_info(ALICE)
    await alice.send("/help")
    await alice.wait_for("How it works", WAIT)
    await alice.send(BOGUS_KEY)
    rejected = await alice.wait_for("DaisySim rejected that key", WAIT)
    assert "nothing was linked" in rejected.text and "I deleted your message" in rejected.text
    assert _deleted(alice, BOGUS_KEY)
    await alice.press("🏠 Menu", message_id=need.message_id)
    menu = await alice.wait_for("What would you like to do?", WAIT)
    assert menu.message_id == need.message_id
    other = "demo_other_0123456789ab"
    await alice.send(other)
    await alice.wait_for(lambda m: "DaisySim rejected that key" in m.text, WAIT)
    assert _deleted(alice, other)
    assert await h.engine.key_info(ALICE) == masked  # the linked key stays

    # While the service list is shown, a key is not taken as a filter.
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.send(USER_KEY)
    await alice.wait_for("Key linked", WAIT)
    assert _deleted(alice, USER_KEY)
    assert not any("Services matching" in m.text for m in alice.bot_messages())
    # ...while ordinary text still filters, and is of course not deleted.
    await alice.send("whatsapp")
    await alice.wait_for("Services matching", WAIT)
    assert not _deleted(alice, "whatsapp")
    await alice.send("/cancel")
    await alice.wait_for("Okay, stopped", WAIT)
    await alice.send("supercalifragilisticexpialidocious")
    await alice.wait_for("I didn't get that", WAIT)
    assert not _deleted(alice, "supercalifragilisticexpialidocious")

    assert all(USER_KEY not in m.text and BOGUS_KEY not in m.text for m in alice.chat())
    await h.stop_bot()
    logged = caplog.text + "\n".join(str(r.msg) + repr(r.args) for r in caplog.records)
    assert caplog.records
    for secret in (USER_KEY, BOGUS_KEY, other):
        assert secret not in logged


async def test_a_pasted_key_in_operator_mode_is_left_alone(h: Harness) -> None:
    alice = h.user()
    await alice.send(BOGUS_KEY)
    await alice.wait_for("I didn't get that", WAIT)
    assert not _deleted(alice, BOGUS_KEY)


async def test_key_sent_with_the_command_is_deleted_and_linked(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9.6: ``/key sk_…`` in one message was ignored and the key stayed in the chat."""
    caplog.set_level(logging.DEBUG)
    h = await make_harness(FundingMode.OWN_KEY)
    alice = h.user()
    await alice.send(f"/key {BOGUS_KEY}")
    rejected = await alice.wait_for("DaisySim rejected that key", WAIT)
    assert _deleted(alice, f"/key {BOGUS_KEY}")
    assert await h.engine.key_info(ALICE) is None
    await alice.send(f"/key   {USER_KEY} ")
    linked = await alice.wait_for("Key linked", WAIT)
    assert linked.message_id > rejected.message_id
    masked = linked.entity_texts("code")[0]
    assert masked == await h.engine.key_info(ALICE)
    assert USER_KEY not in linked.text and len(masked) < len(USER_KEY)
    assert "$20.00" in linked.text and "alice@example.com" in linked.text
    assert _deleted(alice, f"/key   {USER_KEY}")
    # Not a key at all: deleted anyway (it may be a mistyped one), and said so.
    await alice.send("/key not a key")
    await alice.wait_for("doesn't look like an API key", WAIT)
    assert _deleted(alice, "/key not a key")
    assert await h.engine.key_info(ALICE) == masked
    # No request the bot made, no message left in the chat and no log line has the key.
    assert all(USER_KEY not in repr(call.params) for call in h.fake.calls)
    assert all(USER_KEY not in m.text for m in alice.chat())
    await h.stop_bot()
    logged = caplog.text + "\n".join(str(r.msg) + repr(r.args) for r in caplog.records)
    assert caplog.records and USER_KEY not in logged and BOGUS_KEY not in logged


async def test_key_with_the_command_in_operator_mode_is_deleted(h: Harness) -> None:
    alice = h.user()
    await alice.send(f"/key {USER_KEY}")
    await alice.wait_for("you don't need a key", WAIT)
    assert _deleted(alice, f"/key {USER_KEY}")


# ---------------------------------------------------------- 2. /cancel, timeout


async def test_cancel_mid_buy_removes_confirm_and_a_late_press_does_not_buy(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    data = confirm.button(re.compile("^✅ Confirm")).callback_data
    assert data is not None
    await alice.send("/cancel")
    await alice.wait_for("Okay, stopped", WAIT)
    cancelled = alice.message(confirm.message_id)
    assert cancelled.text == "✖️ Cancelled." and cancelled.buttons == []

    # The old Confirm (e.g. a press already on its way) shows the price again.
    answer = await alice.press_data(data, confirm.message_id)
    assert answer.text == plain("en", "cb_confirm_again")  # not "Buying…"
    again = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Confirm your purchase" in m.text, WAIT
    )
    await h.settle()
    assert h.sim_activations() == [] and await h.activations() == []
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")
    # A deliberate Confirm on the fresh screen buys.
    await alice.press(re.compile("^✅ Confirm"), message_id=again.message_id)
    await alice.wait_for(lambda m: m.message_id == confirm.message_id and "Number:" in m.text,
                         WAIT)
    assert len(h.sim_activations()) == 1


async def test_cancel_disarms_every_confirmation_of_the_chat(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    data = confirm.button(re.compile("^✅ Confirm")).callback_data
    assert data is not None
    await alice.send("/buy")  # a second list: the flow's message is now this one
    listing = await alice.wait_for("Choose a service", WAIT)
    await alice.send("/cancel")
    await alice.wait_for("Okay, stopped", WAIT)
    assert alice.message(listing.message_id).text == "✖️ Cancelled."
    await alice.press(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Confirm your purchase" in m.text, WAIT
    )
    await h.settle()
    assert h.sim_activations() == []


async def test_cancel_in_the_key_flow_also_disarms_a_buy_confirmation(
    make_harness: HarnessFactory,
) -> None:
    """/buy → confirm → /key (its own flow, which sees the /cancel) → /cancel."""
    h = await make_harness(FundingMode.OWN_KEY)
    await h.engine.link_key(ALICE, USER_KEY)
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    data = confirm.button(re.compile("^✅ Confirm")).callback_data
    assert data is not None
    await alice.send("/key")
    prompt = await alice.wait_for("Linked key", WAIT)
    await alice.send("/cancel")
    await alice.wait_for("Okay, stopped", WAIT)
    for message_id in (confirm.message_id, prompt.message_id):
        done = alice.message(message_id)
        assert done.text == "✖️ Cancelled." and done.buttons == []
    await alice.press_data(data, confirm.message_id)
    await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Confirm your purchase" in m.text, WAIT
    )
    await h.settle()
    assert h.sim_activations() == []


async def test_a_timed_out_confirmation_does_not_buy(make_harness: HarnessFactory) -> None:
    h = await make_harness(conversation_timeout_seconds=1.0)
    await h.credit(ALICE, "10")
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    data = confirm.button(re.compile("^✅ Confirm")).callback_data
    assert data is not None
    timed_out = await alice.wait_for("This menu timed out", WAIT)
    assert timed_out.message_id == confirm.message_id and timed_out.buttons == []
    answer = await alice.press_data(data, confirm.message_id)
    assert answer.text == plain("en", "cb_confirm_again")  # not "Buying…"
    await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Confirm your purchase" in m.text, WAIT
    )
    assert h.sim_activations() == []


# ------------------------------------------------------ 4. the order message moves


async def test_reopened_order_retires_the_old_message(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, "Signal · $0.60")
    [act] = await h.activations()
    assert act.remote_id is not None

    await alice.send("/active")
    listing = await alice.wait_for("Active numbers", WAIT)
    await alice.press(re.compile(r"^Signal · "), message_id=listing.message_id)
    first = await alice.wait_for(
        lambda m: m.message_id > listing.message_id and "Number:" in m.text, WAIT
    )
    old = await alice.wait_for(lambda m: m.message_id == order.message_id and m.text == MOVED,
                               WAIT)
    assert old.buttons == []
    assert alice.message(listing.message_id).text.startswith("📱 Active numbers")

    # Opening it again moves it again.
    await alice.press(re.compile(r"^Signal · "), message_id=listing.message_id)
    second = await alice.wait_for(
        lambda m: m.message_id > first.message_id and "Number:" in m.text, WAIT
    )
    await alice.wait_for(lambda m: m.message_id == first.message_id and m.text == MOVED, WAIT)
    assert (await h.engine.get_activation(ALICE, act.id)).message_id == second.message_id

    # Opening it from its own live message refreshes in place: no new message.
    count = len(alice.bot_messages())
    await alice.press_data(f"act:open:{act.id}", second.message_id)
    await h.settle()
    assert len(alice.bot_messages()) == count

    # Every later event edits the live message only.
    await h.advance(180)
    assert alice.message(second.message_id).has_button("❌ Cancel & refund")
    h.sim.deliver_sms(act.remote_id, "246810")
    await h.advance(15)
    assert "246810" in alice.message(second.message_id).entity_texts("code")
    for retired in (order.message_id, first.message_id):
        assert alice.message(retired).text == MOVED and alice.message(retired).buttons == []


# ------------------------------------------------------------ 17. locked cancel


async def test_locked_cancel_button_explains_and_unlocks(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, "Telegram · $1.40")
    button = order.button(LOCKED)
    assert button.text == "🔒 Cancel from 00:03 UTC"
    await h.advance(100)
    answer = await alice.press(LOCKED, message_id=order.message_id)
    assert answer.show_alert and answer.text is not None
    assert re.search(r"You can cancel from 00:03 UTC \(80 s from now", answer.text), answer.text
    refreshed = await alice.wait_for(
        lambda m: m.message_id == order.message_id and "(in 1:20 as of 00:01:40 UTC)" in m.text,
        WAIT,
    )
    assert refreshed.has_button(LOCKED)
    await h.advance(80)
    unlocked = alice.message(order.message_id)
    assert unlocked.has_button("❌ Cancel & refund") and not unlocked.has_button(LOCKED)
    assert "No SMS yet? You can cancel" in unlocked.text
    assert (await h.activations())[0].state == "waiting"


# ------------------------------------------------------------------ admin


async def test_help_lists_admin_commands_for_admins_only(h: Harness) -> None:
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    await alice.send("/help")
    user_help = await alice.wait_for("How it works", WAIT)
    assert "/admin" not in user_help.text and "/credit" not in user_help.text
    assert "multi-pool" not in user_help.text
    assert "some services let you pick a supplier pool" in user_help.text
    await admin.send("/help")
    admin_help = await admin.wait_for("How it works", WAIT)
    assert "/admin – statistics" in admin_help.text
    assert "/credit USER_ID AMOUNT [note]" in admin_help.text
    assert "/debit USER_ID AMOUNT [note]" in admin_help.text
    await admin.send("/nope")
    unknown = await admin.wait_for("Unknown command /nope", WAIT)
    assert "/credit USER_ID AMOUNT" in unknown.text


async def test_credit_notice_to_a_user_who_blocked_the_bot(h: Harness) -> None:
    admin, bob = h.user(ADMIN, "Admin"), h.user(BOB, "Bob")
    await bob.send("/start")
    await bob.wait_for("What would you like to do?", WAIT)
    await bob.block()
    await admin.send(f"/credit {BOB} 5")
    done = await admin.wait_for("Credited $5.00", WAIT)
    assert f"to {BOB}. New balance: $5.00." in done.text
    await h.settle()
    assert (await h.engine.wallet(BOB)).balance == Decimal("5.00")
    await admin.send(f"/debit {BOB} 1")
    await admin.wait_for("Debited $1.00", WAIT)


async def test_stats_show_cheapest_pool_and_open_orders_apart(h: Harness) -> None:
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    await h.buy(alice, "WhatsApp 3 · from $1.083", re.compile("^⚡ Cheapest"))
    await h.buy(alice, "WhatsApp 3 · from $1.083", re.compile(r"^Pool 2266 "))
    await h.buy(alice, "Signal · $0.60")
    signal = next(a for a in await h.activations() if a.service_name == "Signal")
    assert signal.remote_id is not None
    h.sim.deliver_sms(signal.remote_id, "135790")
    await h.advance(15)
    await admin.send("/admin")
    stats = await admin.wait_for("Stats", WAIT)
    assert "WhatsApp 3 [cheapest]: no finished order yet · 1 waiting" in stats.text
    assert "WhatsApp 3 [2266]: no finished order yet · 1 waiting" in stats.text
    assert "Signal: 1/1 (100%)" in stats.text and "Signal [" not in stats.text
    assert "Spent on completed orders: $0.60" in stats.text
    assert "Charged for open orders (refunded if no SMS comes): $2.175" in stats.text
