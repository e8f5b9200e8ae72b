"""UX fixes from the user test: pasted keys, /cancel, moved order messages, locked
cancel button, admin help and stats, credit notices."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from decimal import Decimal

import pytest

from bot.config import FundingMode
from bot.sandbox.fake_telegram import ChatMessage
from bot.telegram.keys.detect import looks_like_key
from bot.telegram.texts import plain
from tests.e2e.conftest import ADMIN, ALICE, BOB, USER_KEY, WAIT, Harness, HarnessFactory
from tests.texts import button, part, pattern, service_button, service_label, text

BOGUS_KEY = "sk_bogus_not_a_real_key_000"
MOVED = text("order_moved")
LOCKED = pattern("btn_cancel_locked", at=re.compile(r"\d\d:\d\d UTC"))
CONFIRM = pattern("btn_confirm")
CONFIRMING = pattern("buy_confirm")  # the confirmation screen
NUMBER = pattern("order_number")  # the order view


def _on(message_id: int, text_pattern: re.Pattern[str]) -> Callable[[ChatMessage], bool]:
    """Predicate: message ``message_id`` now shows ``text_pattern``."""
    return lambda m: m.message_id == message_id and text_pattern.search(m.text) is not None


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
    await alice.wait_for(text("key_prompt"), WAIT)
    await alice.send("/buy")
    need = await alice.wait_for(text("err_key_required"), WAIT)
    await alice.send(USER_KEY)
    linked = await alice.wait_for(pattern("key_linked"), WAIT)
    assert text("key_paste_deleted") in linked.text
    assert pattern("key_linked", balance="$20.00").search(linked.text)
    assert USER_KEY not in linked.text
    assert _deleted(alice, USER_KEY)
    assert await h.engine.key_info(ALICE) is not None
    assert not any(text("unknown_text") in m.text for m in alice.bot_messages())

    # After /help, and after tapping Menu: a bad key is deleted too, nothing changes.
    masked = await h.engine.key_info(ALICE)
    await alice.send("/help")
    await alice.wait_for(pattern("help"), WAIT)
    await alice.send(BOGUS_KEY)
    rejected = await alice.wait_for(text("key_paste_invalid"), WAIT)
    assert text("key_paste_deleted") in rejected.text  # said: the message is deleted
    assert _deleted(alice, BOGUS_KEY)
    await alice.press(button("btn_home"), message_id=need.message_id)
    menu = await alice.wait_for(text("menu_title"), WAIT)
    assert menu.message_id == need.message_id
    other = "demo_other_0123456789ab"
    await alice.send(other)
    await alice.wait_for(lambda m: text("key_paste_invalid") in m.text, WAIT)
    assert _deleted(alice, other)
    assert await h.engine.key_info(ALICE) == masked  # the linked key stays

    # While the service list is shown, a key is not taken as a filter.
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.send(USER_KEY)
    await alice.wait_for(pattern("key_linked"), WAIT)
    assert _deleted(alice, USER_KEY)
    filtered = pattern("buy_list_filtered")
    assert not any(filtered.search(m.text) for m in alice.bot_messages())
    # ...while ordinary text still filters, and is of course not deleted.
    await alice.send("whatsapp")
    await alice.wait_for(pattern("buy_list_filtered", query="whatsapp"), WAIT)
    assert not _deleted(alice, "whatsapp")
    await alice.send("/cancel")
    await alice.wait_for(text("cancelled"), WAIT)
    await alice.send("supercalifragilisticexpialidocious")
    await alice.wait_for(text("unknown_text"), WAIT)
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
    await alice.wait_for(text("unknown_text"), WAIT)
    assert not _deleted(alice, BOGUS_KEY)


async def test_key_sent_with_the_command_is_deleted_and_linked(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9.6: ``/key sk_…`` in one message was ignored and the key stayed in the chat."""
    caplog.set_level(logging.DEBUG)
    h = await make_harness(FundingMode.OWN_KEY)
    alice = h.user()
    await alice.send(f"/key {BOGUS_KEY}")
    rejected = await alice.wait_for(text("key_invalid"), WAIT)
    assert _deleted(alice, f"/key {BOGUS_KEY}")
    assert await h.engine.key_info(ALICE) is None
    await alice.send(f"/key   {USER_KEY} ")
    linked = await alice.wait_for(pattern("key_linked"), WAIT)
    assert linked.message_id > rejected.message_id
    masked = linked.entity_texts("code")[0]
    assert masked == await h.engine.key_info(ALICE)
    assert USER_KEY not in linked.text and len(masked) < len(USER_KEY)
    assert pattern("key_linked", balance="$20.00", email="alice@example.com").search(linked.text)
    assert _deleted(alice, f"/key   {USER_KEY}")
    # Not a key at all: deleted anyway (it may be a mistyped one), and said so.
    await alice.send("/key not a key")
    await alice.wait_for(text("key_malformed"), WAIT)
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
    await alice.wait_for(text("key_operator_mode"), WAIT)
    assert _deleted(alice, f"/key {USER_KEY}")


# ---------------------------------------------------------- 2. /cancel, timeout


async def test_cancel_mid_buy_removes_confirm_and_a_late_press_does_not_buy(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(CONFIRMING, WAIT)
    data = confirm.button(CONFIRM).callback_data
    assert data is not None
    await alice.send("/cancel")
    await alice.wait_for(text("cancelled"), WAIT)
    cancelled = alice.message(confirm.message_id)
    assert cancelled.text == text("flow_cancelled") and cancelled.buttons == []

    # The old Confirm (e.g. a press already on its way) shows the price again.
    answer = await alice.press_data(data, confirm.message_id)
    assert answer.text == plain("en", "cb_confirm_again")  # not "Buying…"
    again = await alice.wait_for(_on(confirm.message_id, CONFIRMING), WAIT)
    await h.settle()
    assert h.sim_activations() == [] and await h.activations() == []
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")
    # A deliberate Confirm on the fresh screen buys.
    await alice.press(CONFIRM, message_id=again.message_id)
    await alice.wait_for(_on(confirm.message_id, NUMBER), WAIT)
    assert len(h.sim_activations()) == 1


async def test_cancel_disarms_every_confirmation_of_the_chat(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(CONFIRMING, WAIT)
    data = confirm.button(CONFIRM).callback_data
    assert data is not None
    await alice.send("/buy")  # a second list: the flow's message is now this one
    listing = await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.send("/cancel")
    await alice.wait_for(text("cancelled"), WAIT)
    assert alice.message(listing.message_id).text == text("flow_cancelled")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    await alice.wait_for(_on(confirm.message_id, CONFIRMING), WAIT)
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
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(CONFIRMING, WAIT)
    data = confirm.button(CONFIRM).callback_data
    assert data is not None
    await alice.send("/key")
    prompt = await alice.wait_for(pattern("key_current"), WAIT)
    await alice.send("/cancel")
    await alice.wait_for(text("cancelled"), WAIT)
    for message_id in (confirm.message_id, prompt.message_id):
        done = alice.message(message_id)
        assert done.text == text("flow_cancelled") and done.buttons == []
    await alice.press_data(data, confirm.message_id)
    await alice.wait_for(_on(confirm.message_id, CONFIRMING), WAIT)
    await h.settle()
    assert h.sim_activations() == []


async def test_a_timed_out_confirmation_does_not_buy(make_harness: HarnessFactory) -> None:
    h = await make_harness(conversation_timeout_seconds=1.0)
    await h.credit(ALICE, "10")
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(CONFIRMING, WAIT)
    data = confirm.button(CONFIRM).callback_data
    assert data is not None
    timed_out = await alice.wait_for(text("buy_timeout"), WAIT)
    assert timed_out.message_id == confirm.message_id and timed_out.buttons == []
    answer = await alice.press_data(data, confirm.message_id)
    assert answer.text == plain("en", "cb_confirm_again")  # not "Buying…"
    await alice.wait_for(_on(confirm.message_id, CONFIRMING), WAIT)
    assert h.sim_activations() == []


# ------------------------------------------------------ 4. the order message moves


async def test_reopened_order_retires_the_old_message(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, service_button("Signal", "$0.60"))
    [act] = await h.activations()
    assert act.remote_id is not None

    await alice.send("/active")
    listing = await alice.wait_for(pattern("active_title"), WAIT)
    await alice.press(pattern("btn_open_order", name="Signal"), message_id=listing.message_id)
    first = await alice.wait_for(
        lambda m: m.message_id > listing.message_id and NUMBER.search(m.text) is not None, WAIT
    )
    old = await alice.wait_for(lambda m: m.message_id == order.message_id and m.text == MOVED,
                               WAIT)
    assert old.buttons == []
    assert pattern("active_title").match(alice.message(listing.message_id).text)

    # Opening it again moves it again.
    await alice.press(pattern("btn_open_order", name="Signal"), message_id=listing.message_id)
    second = await alice.wait_for(
        lambda m: m.message_id > first.message_id and NUMBER.search(m.text) is not None, WAIT
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
    assert alice.message(second.message_id).has_button(button("btn_cancel_refund"))
    h.sim.deliver_sms(act.remote_id, "246810")
    await h.advance(15)
    assert "246810" in alice.message(second.message_id).entity_texts("code")
    for retired in (order.message_id, first.message_id):
        assert alice.message(retired).text == MOVED and alice.message(retired).buttons == []


# ------------------------------------------------------------ 17. locked cancel


async def test_locked_cancel_button_explains_and_unlocks(h: Harness) -> None:
    alice = h.user()
    order = await h.buy(alice, service_button("Telegram", "$1.40"))
    locked = order.button(LOCKED)
    assert locked.text == button("btn_cancel_locked", at="00:03 UTC")
    await h.advance(100)
    answer = await alice.press(LOCKED, message_id=order.message_id)
    assert answer.show_alert and answer.text is not None
    assert pattern("cb_too_early", at="00:03 UTC", seconds=80).search(answer.text), answer.text
    in_1_20 = pattern("order_cancel_locked_live", when=text("time_in", left="1:20"))
    refreshed = await alice.wait_for(_on(order.message_id, in_1_20), WAIT)
    assert refreshed.has_button(LOCKED)
    await h.advance(80)
    unlocked = alice.message(order.message_id)
    assert unlocked.has_button(button("btn_cancel_refund")) and not unlocked.has_button(LOCKED)
    assert text("order_cancel_open") in unlocked.text
    assert (await h.activations())[0].state == "waiting"


# ------------------------------------------------------------------ admin


async def test_help_lists_admin_commands_for_admins_only(h: Harness) -> None:
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    await alice.send("/help")
    user_help = await alice.wait_for(pattern("help"), WAIT)
    assert "/admin" not in user_help.text and "/credit" not in user_help.text
    assert "multi-pool" not in user_help.text
    # the whole help, as the catalogue has it (it says some services have pools)
    assert pattern("help", full=True).fullmatch(user_help.text)
    await admin.send("/help")
    admin_help = await admin.wait_for(pattern("help"), WAIT)
    assert text("help_admin_lines") in admin_help.text  # /admin – statistics
    assert text("help_admin_wallet_lines") in admin_help.text  # /credit and /debit
    await admin.send("/nope")
    unknown = await admin.wait_for(pattern("unknown_command", command="/nope"), WAIT)
    assert text("help_admin_wallet_lines") in unknown.text


async def test_credit_notice_to_a_user_who_blocked_the_bot(h: Harness) -> None:
    admin, bob = h.user(ADMIN, "Admin"), h.user(BOB, "Bob")
    await bob.send("/start")
    await bob.wait_for(text("menu_title"), WAIT)
    await bob.block()
    await admin.send(f"/credit {BOB} 5")
    done = await admin.wait_for(pattern("admin_credited", amount="$5.00"), WAIT)
    assert text("admin_credited", amount="$5.00", user_id=BOB, balance="$5.00") in done.text
    await h.settle()
    assert (await h.engine.wallet(BOB)).balance == Decimal("5.00")
    await admin.send(f"/debit {BOB} 1")
    await admin.wait_for(pattern("admin_debited", amount="$1.00", user_id=BOB), WAIT)


async def test_stats_show_cheapest_pool_and_open_orders_apart(h: Harness) -> None:
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    whatsapp_3 = service_button("WhatsApp 3", "$1.083", multi=True)
    await h.buy(alice, whatsapp_3, pattern("btn_cheapest"))
    await h.buy(alice, whatsapp_3, pattern("btn_pool", pool="2266"))
    await h.buy(alice, service_button("Signal", "$0.60"))
    signal = next(a for a in await h.activations() if a.service_name == "Signal")
    assert signal.remote_id is not None
    h.sim.deliver_sms(signal.remote_id, "135790")
    await h.advance(15)
    await admin.send("/admin")
    stats = await admin.wait_for(pattern("admin_stats"), WAIT)
    one_waiting = part("admin_service_open", count=1)
    for pool in (part("admin_pool_cheapest"), "2266"):
        line = text("admin_service_line_unfinished", name="WhatsApp 3",
                    pool=part("admin_pool", pool=pool), open=one_waiting)
        assert line in stats.text
    signal_line = pattern("admin_service_line", name="Signal", pool="", completed=1,
                          finished=1, rate=100)
    assert signal_line.search(stats.text) and "Signal [" not in stats.text
    assert pattern("admin_stats", completed_spend="$0.60", open_spend="$2.175").search(stats.text)
