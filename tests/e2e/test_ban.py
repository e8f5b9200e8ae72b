"""``/ban`` and ``/unban`` end to end: a banned user is refused everywhere (every
message, command and button), their open numbers still finish (the code is
delivered, the expiry refunded), admins cannot be banned, and the ban survives a
restart."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.sandbox.fake_telegram import ChatMessage, FakeUser
from bot.services.api import ActivationState
from tests.e2e.conftest import ADMIN, ALICE, BOB, WAIT, Harness
from tests.texts import button, pattern, service_button, text

SIGNAL = service_button("Signal", "$0.60")
TELEGRAM = service_button("Telegram", "$1.40")
OTP = pattern("otp_message")
BANNED = text("banned_notice")


def is_otp(message: ChatMessage) -> bool:
    return OTP.match(message.text) is not None


async def admin_says(h: Harness, command: str, key: str, **values: Any) -> ChatMessage:
    admin = h.user(ADMIN, "Admin")
    admin.mark()
    await admin.send(command)
    return await admin.wait_for(pattern(key, **values), WAIT)


async def refused(h: Harness, user: FakeUser, command: str) -> None:
    """``command`` gets the one refusal text, nothing else (a minute after the last)."""
    await h.advance(61)
    user.mark()
    await user.send(command)
    reply = await user.wait_for(lambda m: BANNED in m.text, WAIT)
    await h.settle()
    assert [m.message_id for m in user.bot_messages() if m.message_id >= reply.message_id] == [
        reply.message_id
    ]
    assert not reply.buttons


async def test_a_banned_user_is_refused_everywhere_and_open_numbers_still_finish(
    h: Harness,
) -> None:
    alice = h.user()
    coded = await h.buy(alice, SIGNAL)
    expiring = await h.buy(alice, TELEGRAM)
    assert (await h.engine.wallet(ALICE)).balance == Decimal("8.00")

    done = await admin_says(h, f"/ban {ALICE} spam and chargebacks", "ban_done", user_id=ALICE)
    assert text("ban_reason_line", reason="spam and chargebacks") in done.text

    # every command and message
    for command in ("/start", "/buy", "/wallet", "/history", "/active", "hello", "/key"):
        await refused(h, alice, command)
    # and a button: answered with the same text as an alert, nothing runs
    answer = await alice.press(button("btn_refresh"), message_id=coded.message_id)
    assert answer.show_alert and BANNED in (answer.text or "")
    # a burst of messages gets the text once
    alice.mark()
    for _ in range(3):
        await alice.send("/start")
    await h.settle()
    assert sum(1 for m in alice.bot_messages() if BANNED in m.text) == len(
        ["/start", "/buy", "/wallet", "/history", "/active", "hello", "/key"]
    )

    # The open numbers finish: the code is delivered ...
    acts = {a.id: a for a in await h.activations()}
    signal = next(a for a in acts.values() if a.service_name == "Signal")
    assert signal.remote_id is not None
    h.sim.deliver_sms(signal.remote_id, "847261")
    alice.mark()
    await h.advance(15)
    push = await alice.wait_for(is_otp, WAIT)
    assert "847261" in push.entity_texts("code")
    # ... and the other one expires and is refunded
    alice.mark()
    await h.advance(20 * 60)
    await alice.wait_for(pattern("notify_refunded_expired", amount="$1.40"), WAIT)
    states = {a.service_name: a.state for a in await h.activations()}
    assert states == {"Signal": ActivationState.COMPLETED, "Telegram": ActivationState.REFUNDED}
    assert (await h.engine.wallet(ALICE)).balance == Decimal("9.40")
    assert text("status_refunded_expired", amount="$1.40") in alice.message(
        expiring.message_id).text

    # the ban survives a restart
    await h.restart_bot()
    await refused(h, alice, "/start")

    # unban: Alice is served again
    await admin_says(h, f"/unban {ALICE}", "unban_done", user_id=ALICE)
    alice.mark()
    await alice.send("/start")
    await alice.wait_for(pattern("welcome"), WAIT)
    await admin_says(h, f"/unban {ALICE}", "unban_not_banned", user_id=ALICE)


async def test_ban_usage_errors_admins_and_other_users(h: Harness) -> None:
    bob = h.user(BOB, "Bob")
    await bob.send("/start")
    await bob.wait_for(pattern("welcome"), WAIT)
    await admin_says(h, "/ban", "ban_usage_screen", usage=text("ban_usage"))
    await admin_says(h, "/unban", "ban_usage_screen", usage=text("unban_usage"))
    await admin_says(h, "/ban bob", "admin_bad_user_id", usage=text("ban_usage"))
    await admin_says(h, "/ban 987654321", "admin_unknown_user", user_id=987654321)
    await admin_says(h, f"/ban {ADMIN}", "ban_admin", user_id=ADMIN)  # not even oneself
    await admin_says(h, f"/ban {BOB}", "ban_done", user_id=BOB, reason="")
    await admin_says(h, f"/ban {BOB} again", "ban_already", user_id=BOB)
    # a user who is not an admin may not ban
    alice = h.user()
    await alice.send(f"/ban {BOB}")
    await alice.wait_for(pattern("not_allowed"), WAIT)
    await alice.send(f"/unban {BOB}")
    await alice.wait_for(pattern("not_allowed"), WAIT)
    assert await h.engine.banned_users() == {BOB}
