"""Wallet, history, key linking, admin commands and access control."""

from __future__ import annotations

import logging
import re
from decimal import Decimal

import pytest

from bot.config import FundingMode
from bot.services.api import ActivationState
from tests.e2e.conftest import ADMIN, ALICE, BOB, TOKEN, USER_KEY, WAIT, Harness, HarnessFactory

# --------------------------------------------------------------------- operator


async def test_operator_wallet_admin_credit_and_history(make_harness: HarnessFactory) -> None:
    h = await make_harness(FundingMode.OPERATOR)
    admin = h.user(ADMIN, "Admin")
    alice = h.user()

    # Admin credits Alice through the bot; strict parsing with specific messages.
    for bad in ("/credit", "/credit 1"):
        await admin.send(bad)
        usage = await admin.wait_for("Usage: /credit USER_ID AMOUNT [note]", WAIT)
        assert "❌" not in usage.text
    await admin.send("/credit abc 5")
    await admin.wait_for("The user id must be a number", WAIT)
    for bad in ("/credit 1 -5", "/credit 1 1e3", "/credit 1 5.123456", "/credit 1 NaN",
                "/credit 1 1,5", "/credit 1 0.005", "/credit 1 0", "/credit 1 1000000.01",
                "/debit 1 0.001"):
        await admin.send(bad)
        msg = await admin.wait_for("The amount must be a positive number", WAIT)
        assert "at most 2 decimals" in msg.text and "e.g. 5 or 2.50" in msg.text, bad
        assert "Usage: /" in msg.text
    # Alice never started the bot: no wallet is created for her (a typo'd id).
    await admin.send(f"/credit {ALICE} 12.50 bank transfer")
    unknown = await admin.wait_for("Unknown user id", WAIT)
    assert "they must /start the bot first" in unknown.text
    assert not await h.engine.user_exists(ALICE)
    assert (await h.engine.stats(ADMIN)).users == 1  # only the admin

    await alice.send("/start")
    await alice.wait_for("What would you like to do?", WAIT)
    await admin.send(f"/credit {ALICE} 12.50 bank transfer")
    done = await admin.wait_for("Credited", WAIT)
    assert f"Credited $12.50 to {ALICE}. New balance: $12.50." in done.text
    # ... and Alice is told.
    notice = await alice.wait_for("was added to your wallet", WAIT, since=0)
    assert notice.text == "💰 $12.50 was added to your wallet by an admin. Balance: $12.50"
    await admin.send(f"/debit {ALICE} 100")
    await admin.wait_for("Can't debit $100.00", WAIT)
    await admin.send(f"/debit {ALICE} 2.5 correction")
    await admin.wait_for("Debited $2.50", WAIT)
    await admin.send(f"/credit {ALICE} 1000000")  # the upper bound itself is fine
    await admin.wait_for("Credited $1000000.00", WAIT)
    await admin.send(f"/debit {ALICE} 1000000")
    await admin.wait_for("Debited $1000000.00", WAIT)

    # Alice is not an admin.
    await alice.send(f"/credit {ALICE} 1000")
    await alice.wait_for("You are not allowed to do that", WAIT)
    await alice.send("/admin")
    await alice.wait_for("You are not allowed to do that", WAIT)
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")

    # Three orders: one completed, one cancelled, one waiting.
    await h.buy(alice, "Signal · $0.60")
    first = (await h.activations())[0]
    assert first.remote_id is not None
    h.sim.deliver_sms(first.remote_id, "111111")
    await h.advance(15)
    order2 = await h.buy(alice, "Telegram · $1.40")
    await h.advance(180)
    await alice.press("❌ Cancel & refund", message_id=order2.message_id)
    await h.buy(alice, "WhatsApp · $1.85")
    await h.settle()

    await alice.send("/wallet")
    wallet = await alice.wait_for("Wallet", WAIT)
    assert "Balance: $7.55" in wallet.text  # 10 - 0.60 - 1.85
    assert f"Your ID: {ALICE}" in wallet.text and str(ALICE) in wallet.entity_texts("code")
    assert "top-up · bank transfer" in wallet.text and "+$12.50" in wallet.text
    assert "-$2.50 · adjustment · correction" in wallet.text
    # Friendly labels, never internal codes.
    assert "-$0.60 · Signal · purchase" in wallet.text
    assert "+$1.40 · Telegram · refund · you cancelled" in wallet.text
    movements = wallet.text.split("(times in UTC)")[1]
    assert "user_cancel" not in movements and "(" not in movements
    assert "Recent movements (times in UTC)" in wallet.text
    assert "Active numbers: 1" in wallet.text
    assert "Spent this month: $2.45" in wallet.text

    await alice.press("📜 History", message_id=wallet.message_id)
    hist = await alice.wait_for("History", WAIT)
    assert hist.message_id == wallet.message_id
    assert "All · page 1/1 · 3 orders" in hist.text and "Times in UTC." in hist.text
    assert "code 111111" in hist.text and "refunded · cancelled by you" in hist.text
    assert hist.text.rstrip().splitlines()[-3].endswith("· waiting")  # newest first
    await alice.press("Completed")
    completed = await alice.wait_for("History · Completed", WAIT)
    assert completed.text.startswith("📜 History · Completed · page 1/1 · 1 order\n")
    assert "Signal" in completed.text
    assert "• Completed •" in completed.button_labels
    await alice.press("Cancelled")
    cancelled = await alice.wait_for("History · Cancelled", WAIT)
    assert "Telegram" in cancelled.text and "Signal" not in cancelled.text
    await alice.press("Waiting")
    waiting = await alice.wait_for("History · Waiting", WAIT)
    assert "WhatsApp" in waiting.text and "Telegram" not in waiting.text

    # Admin stats: success rate over finished orders only; open ones apart.
    await admin.send("/admin")
    stats = await admin.wait_for("Stats", WAIT)
    assert "Users: 2" in stats.text and "completed: 1" in stats.text
    assert re.search(r"Signal: 1/1 \(100%\)", stats.text), stats.text
    assert "Telegram: 0/1 (0%)" in stats.text  # cancelled: finished, not a success
    assert "WhatsApp: no finished order yet · 1 waiting" in stats.text
    assert "Spent on completed orders: $0.60" in stats.text
    assert "Charged for open orders (refunded if no SMS comes): $1.85" in stats.text


async def test_history_pages(h: Harness) -> None:
    alice = h.user()
    await h.credit(ALICE, "10")
    for _ in range(9):
        await h.buy(alice, "Signal · $0.60")
    await alice.send("/history")
    page1 = await alice.wait_for("page 1/2", WAIT)
    assert "9 orders" in page1.text and page1.text.count("Signal") == 8  # 8 per page
    assert "◀️ Prev" not in page1.button_labels
    await alice.press("Next ▶️")
    page2 = await alice.wait_for("page 2/2", WAIT)
    assert page2.message_id == page1.message_id and page2.text.count("Signal") == 1
    assert "Next ▶️" not in page2.button_labels
    await alice.press("◀️ Prev")
    await alice.wait_for("page 1/2", WAIT)


# ---------------------------------------------------------------------- own key


async def test_key_linking_deletes_message_and_never_logs_key(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await make_harness(FundingMode.OWN_KEY)
    alice = h.user()

    await alice.send("/start")
    menu = await alice.wait_for("What would you like to do?", WAIT)
    assert "🔑 API key" in menu.button_labels
    assert "key" in [c["command"] for c in h.fake.commands_for(ALICE)]

    # No key yet: buying points to /key.
    await alice.send("/buy")
    need = await alice.wait_for("link your DaisySim API key first", WAIT)
    assert need.has_button("🔑 Link a key")
    await alice.send("/wallet")
    await alice.wait_for("No DaisySim key linked yet", WAIT)

    await alice.send("/key")
    await alice.wait_for("Send me your DaisySim API key", WAIT)
    await alice.send("sk_bogus_not_a_real_key_000")
    await alice.wait_for("DaisySim rejected that key", WAIT)
    key_msg_id = await _send_and_get_id(alice, USER_KEY)
    linked = await alice.wait_for("Key linked", WAIT)
    masked = linked.entity_texts("code")[0]
    assert USER_KEY not in linked.text and masked != USER_KEY and len(masked) < len(USER_KEY)
    assert "$20.00" in linked.text and "alice@example.com" in linked.text
    deleted = [m for m in alice.chat(include_deleted=True) if m.message_id == key_msg_id]
    assert deleted and deleted[0].deleted
    assert all(USER_KEY not in m.text for m in alice.chat())
    assert any(int(c["message_id"]) == key_msg_id for c in h.fake.calls_to("deleteMessage"))

    await alice.send("/wallet")
    wallet = await alice.wait_for("DaisySim balance", WAIT)
    assert "$20.00" in wallet.text and "alice@example.com" in wallet.text

    # Buying uses Alice's own DaisySim account.
    await h.buy(alice, "Signal · $0.60")
    [sim_act] = h.sim_activations()
    assert sim_act["account"] == USER_KEY
    await alice.send("/wallet")
    await alice.wait_for("$19.40", WAIT)

    # Remove the key (with confirmation).
    await alice.send("/key")
    prompt = await alice.wait_for("Linked key", WAIT)
    await alice.press("🗑 Remove key", message_id=prompt.message_id)
    await alice.wait_for("Remove the linked key", WAIT)
    await alice.press("No, keep it")
    await alice.wait_for("the key stays linked", WAIT)
    await alice.send("/key")
    prompt = await alice.wait_for("Linked key", WAIT)
    await alice.press("🗑 Remove key", message_id=prompt.message_id)
    await alice.wait_for("Remove the linked key", WAIT)
    await alice.press("Yes, remove it")
    await alice.wait_for("Key removed", WAIT)
    assert await h.engine.key_info(ALICE) is None

    await h.stop_bot()
    logged = caplog.text + "\n".join(str(r.msg) + repr(r.args) for r in caplog.records)
    assert caplog.records, "DEBUG logs were captured"
    assert USER_KEY not in logged
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged
    assert "sk_bogus_not_a_real_key_000" not in logged


async def _send_and_get_id(user: object, text: str) -> int:
    from bot.sandbox.fake_telegram import FakeUser

    assert isinstance(user, FakeUser)
    await user.send(text)
    return max(m.message_id for m in user.chat(include_deleted=True) if not m.from_bot)


async def test_key_command_in_operator_mode(h: Harness) -> None:
    alice = h.user()
    await alice.send("/key")
    await alice.wait_for("you don't need a key", WAIT)


# ---------------------------------------------------------------------- access


async def test_allowlist_refuses_others(make_harness: HarnessFactory) -> None:
    h = await make_harness(FundingMode.OPERATOR, allowed_user_ids=[ALICE])
    await h.credit(ALICE, "5")
    alice, bob, admin = h.user(), h.user(BOB, "Bob"), h.user(ADMIN, "Admin")
    await bob.send("/start")
    refusal = await bob.wait_for("This bot is private", WAIT)
    assert str(BOB) in refusal.entity_texts("code") and refusal.buttons == []
    await bob.send("/buy")
    await bob.wait_for(lambda m: m.message_id > refusal.message_id and "private" in m.text, WAIT)
    await alice.send("/start")
    menu = await alice.wait_for("What would you like to do?", WAIT)
    answer = await bob.press_data("menu:buy", refusal.message_id)
    assert answer.show_alert and answer.text and "This bot is private" in answer.text
    await alice.press("🛒 Buy a number", message_id=menu.message_id)
    await alice.wait_for("Choose a service", WAIT)
    await admin.send("/admin")  # admins are always allowed
    await admin.wait_for("Stats", WAIT)
    assert h.sim_activations() == []
    stats = await h.engine.stats(ADMIN)
    assert stats.users == 2  # Bob was never registered


async def test_cancel_outside_flow_and_unknown_input(h: Harness) -> None:
    alice = h.user()
    await alice.send("/cancel")
    await alice.wait_for("There is nothing to cancel", WAIT)
    await alice.send("/nonsense")
    unknown = await alice.wait_for("Unknown command /nonsense", WAIT)
    assert "I didn't get that" not in unknown.text
    assert "/buy – buy a number" in unknown.text and "/help" in unknown.text
    assert "/admin" not in unknown.text  # not an admin
    await alice.send("/foo@some_bot extra args")
    await alice.wait_for(lambda m: m.text.startswith("🤷 Unknown command /foo."), WAIT)
    await alice.send("hello <b>there</b> & co")
    reply = await alice.wait_for(lambda m: "I didn't get that" in m.text and m.buttons != [], WAIT)
    assert "💰 Wallet" in reply.button_labels
    assert (await h.activations()) == []
    assert not [a for a in await h.activations() if a.state == ActivationState.WAITING]


async def test_unexpected_errors_are_logged_and_explained(
    h: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = h.user()

    async def broken(user_id: int) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(h.engine, "wallet", broken)
    await alice.send("/wallet")
    await alice.wait_for("Something went wrong on our side", WAIT)
    errors = [r for r in caplog.records if r.name == "bot.telegram.errors"]
    assert errors and errors[0].exc_info is not None
    assert "database on fire" in caplog.text
    # Buttons too: the callback is answered, then the user is told.
    await alice.send("/start")
    menu = await alice.wait_for("What would you like to do?", WAIT)
    answer = await alice.press("💰 Wallet", message_id=menu.message_id)
    assert answer.text is None
    await alice.wait_for(lambda m: m.message_id > menu.message_id and "went wrong" in m.text,
                         WAIT)
