"""Wallet, history, key linking, admin commands and access control."""

from __future__ import annotations

import logging
import re
from decimal import Decimal

import pytest

from bot.config import FundingMode
from bot.services.api import ActivationState
from tests.e2e.conftest import ADMIN, ALICE, BOB, TOKEN, USER_KEY, WAIT, Harness, HarnessFactory
from tests.texts import button, part, pattern, plural, service_button, text

SIGNAL = service_button("Signal", "$0.60")


def _ledger(amount: str, what: str) -> re.Pattern[str]:
    """A line of the wallet's recent movements."""
    return pattern("wallet_ledger_line", amount=amount, what=what)


def _service_line(name: str, completed: int, finished: int, rate: int) -> re.Pattern[str]:
    """A line of the admin's success rates (no pool)."""
    return pattern("admin_service_line", name=name, pool="", completed=completed,
                   finished=finished, rate=rate)

# --------------------------------------------------------------------- operator


async def test_operator_wallet_admin_credit_and_history(make_harness: HarnessFactory) -> None:
    h = await make_harness(FundingMode.OPERATOR)
    admin = h.user(ADMIN, "Admin")
    alice = h.user()

    # Admin credits Alice through the bot; strict parsing with specific messages.
    for bad in ("/credit", "/credit 1"):
        await admin.send(bad)
        usage = await admin.wait_for(text("admin_usage_credit"), WAIT)
        assert usage.text == text("admin_usage_credit")  # the usage alone: not an error
    await admin.send("/credit abc 5")
    await admin.wait_for(pattern("admin_bad_user_id", usage=text("admin_usage_credit")), WAIT)
    for bad in ("/credit 1 -5", "/credit 1 1e3", "/credit 1 5.123456", "/credit 1 NaN",
                "/credit 1 1,500", "/credit 1 1,5,0", "/credit 1 0.005", "/credit 1 0",
                "/credit 1 1000000.01",
                "/debit 1 0.001"):
        await admin.send(bad)
        msg = await admin.wait_for(pattern("admin_bad_amount"), WAIT)
        usage_text = text("admin_usage_debit" if bad.startswith("/debit")
                          else "admin_usage_credit")
        assert msg.text == text("admin_bad_amount", usage=usage_text), bad
    # Alice never started the bot: no wallet is created for her (a typo'd id).
    await admin.send(f"/credit {ALICE} 12.50 bank transfer")
    unknown = await admin.wait_for(pattern("admin_unknown_user"), WAIT)
    assert text("admin_unknown_user", user_id=ALICE) in unknown.text
    assert not await h.engine.user_exists(ALICE)
    assert (await h.engine.stats(ADMIN)).users == 1  # only the admin

    await alice.send("/start")
    await alice.wait_for(text("menu_title"), WAIT)
    await admin.send(f"/credit {ALICE} 12.50 bank transfer")
    done = await admin.wait_for(pattern("admin_credited"), WAIT)
    assert text("admin_credited", amount="$12.50", user_id=ALICE, balance="$12.50") in done.text
    # ... and Alice is told.
    notice = await alice.wait_for(pattern("admin_credit_notice"), WAIT, since=0)
    assert notice.text == text("admin_credit_notice", amount="$12.50", balance="$12.50")
    await admin.send(f"/debit {ALICE} 100")
    await admin.wait_for(pattern("admin_debit_too_much", amount="$100.00", user_id=ALICE), WAIT)
    await admin.send(f"/debit {ALICE} 2.5 correction")
    await admin.wait_for(pattern("admin_debited", amount="$2.50"), WAIT)
    await admin.send(f"/debit {ALICE} 0,5")  # a decimal comma, as many languages write it
    await admin.wait_for(pattern("admin_debited", amount="$0.50"), WAIT)
    await admin.send(f"/credit {ALICE} 0,5")
    await admin.wait_for(pattern("admin_credited", amount="$0.50"), WAIT)
    await admin.send(f"/credit {ALICE} 1000000")  # the upper bound itself is fine
    await admin.wait_for(pattern("admin_credited", amount=Decimal("1000000")), WAIT)
    await admin.send(f"/debit {ALICE} 1000000")
    await admin.wait_for(pattern("admin_debited", amount=Decimal("1000000")), WAIT)

    # Alice is not an admin.
    await alice.send(f"/credit {ALICE} 1000")
    await alice.wait_for(text("not_allowed"), WAIT)
    await alice.send("/admin")
    await alice.wait_for(text("not_allowed"), WAIT)
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")

    # Three orders: one completed, one cancelled, one waiting.
    await h.buy(alice, SIGNAL)
    first = (await h.activations())[0]
    assert first.remote_id is not None
    h.sim.deliver_sms(first.remote_id, "111111")
    await h.advance(15)
    order2 = await h.buy(alice, service_button("Telegram", "$1.40"))
    await h.advance(180)
    await alice.press(button("btn_cancel_refund"), message_id=order2.message_id)
    await h.buy(alice, service_button("WhatsApp", "$1.85"))
    await h.settle()

    await alice.send("/wallet")
    wallet = await alice.wait_for(text("wallet_title"), WAIT)
    # 10 - 0.60 - 1.85
    assert text("wallet_operator", balance="$7.55", user_id=ALICE) in wallet.text
    assert str(ALICE) in wallet.entity_texts("code")
    top_up = text("ledger_with_note", what=text("ledger_credit"), note="bank transfer")
    assert _ledger("+$12.50", top_up).search(wallet.text)
    correction = text("ledger_with_note", what=text("ledger_debit"), note="correction")
    assert _ledger("-$2.50", correction).search(wallet.text)
    # Friendly labels, never internal codes.
    bought = text("ledger_with_name", name="Signal", what=text("ledger_charge"))
    assert _ledger("-$0.60", bought).search(wallet.text)
    refunded = text("ledger_with_name", name="Telegram", what=text("ledger_refund_user_cancel"))
    assert _ledger("+$1.40", refunded).search(wallet.text)
    movements = wallet.text.split(text("wallet_ledger_title"))[1]
    assert "user_cancel" not in movements and "(" not in movements
    assert text("wallet_ledger_title") in wallet.text
    assert text("wallet_summary", active=1, spent="$2.45") in wallet.text

    await alice.press(button("btn_history"), message_id=wallet.message_id)
    hist = await alice.wait_for(pattern("history_title"), WAIT)
    assert hist.message_id == wallet.message_id
    all_3 = pattern("history_title", filter=text("hist_all"), page=1, pages=1,
                    total=plural("history_count", 3))
    assert all_3.search(hist.text) and text("history_utc") not in hist.text  # own zones
    assert text("st_completed", code="111111") in hist.text and text("st_refunded") in hist.text
    newest = hist.text.rstrip().splitlines()[-3]  # newest first
    assert pattern("history_line", status=text("st_waiting"), full=True).fullmatch(newest)
    await alice.press(button("hist_completed"))
    completed = await alice.wait_for(
        pattern("history_title", filter=text("hist_completed")), WAIT
    )
    one_completed = text("history_title", filter=text("hist_completed"), page=1, pages=1,
                         total=plural("history_count", 1))
    assert completed.text.startswith(one_completed + "\n")
    assert "Signal" in completed.text
    assert button("hist_selected", label=button("hist_completed")) in completed.button_labels
    await alice.press(button("hist_cancelled"))
    cancelled = await alice.wait_for(
        pattern("history_title", filter=text("hist_cancelled")), WAIT
    )
    assert "Telegram" in cancelled.text and "Signal" not in cancelled.text
    await alice.press(button("hist_waiting"))
    waiting = await alice.wait_for(pattern("history_title", filter=text("hist_waiting")), WAIT)
    assert "WhatsApp" in waiting.text and "Telegram" not in waiting.text

    # Admin stats: success rate over finished orders only; open ones apart.
    await admin.send("/admin")
    stats = await admin.wait_for(pattern("admin_stats"), WAIT)
    assert pattern("admin_stats", users=2).search(stats.text)
    assert text("admin_state_line", state="completed", count=1) in stats.text
    assert _service_line("Signal", 1, 1, 100).search(stats.text), stats.text
    # cancelled: finished, not a success
    assert _service_line("Telegram", 0, 1, 0).search(stats.text)
    assert text("admin_service_line_unfinished", name="WhatsApp", pool="",
                open=part("admin_service_open", count=1)) in stats.text
    spend = pattern("admin_stats", completed_spend="$0.60", open_spend="$1.85")
    assert spend.search(stats.text)


async def test_history_pages(h: Harness) -> None:
    alice = h.user()
    await h.credit(ALICE, "10")
    await h.buy(alice, SIGNAL)
    # The other eight straight through the engine: nine purchases through the chat
    # are ~40 messages to one chat, which the bot paces at Telegram's 1/s after a
    # burst (18 s of this test was that wait; the chat flow is the first one's).
    price = next(s.price for s in await h.engine.list_services(ALICE) if s.code == "Signal")
    for n in range(8):
        await h.engine.buy(ALICE, "Signal", None, price, request_id=f"history-{n}")
    await alice.send("/history")
    page1 = await alice.wait_for(pattern("history_title", page=1, pages=2), WAIT)
    nine = pattern("history_title", total=plural("history_count", 9))
    assert nine.search(page1.text) and page1.text.count("Signal") == 8  # 8 per page
    assert button("btn_prev") not in page1.button_labels
    await alice.press(button("btn_next"))
    page2 = await alice.wait_for(pattern("history_title", page=2, pages=2), WAIT)
    assert page2.message_id == page1.message_id and page2.text.count("Signal") == 1
    assert button("btn_next") not in page2.button_labels
    await alice.press(button("btn_prev"))
    await alice.wait_for(pattern("history_title", page=1, pages=2), WAIT)


# ---------------------------------------------------------------------- own key


async def test_key_linking_deletes_message_and_never_logs_key(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await make_harness(FundingMode.OWN_KEY)
    alice = h.user()

    await alice.send("/start")
    menu = await alice.wait_for(text("menu_title"), WAIT)
    assert button("btn_key") in menu.button_labels
    assert "key" in [c["command"] for c in h.fake.commands_for(ALICE)]

    # No key yet: buying points to /key.
    await alice.send("/buy")
    need = await alice.wait_for(text("err_key_required"), WAIT)
    assert need.has_button(button("btn_link_key"))
    await alice.send("/wallet")
    await alice.wait_for(text("wallet_no_key"), WAIT)

    await alice.send("/key")
    await alice.wait_for(text("key_prompt"), WAIT)
    await alice.send("sk_bogus_not_a_real_key_000")
    await alice.wait_for(text("key_invalid"), WAIT)
    key_msg_id = await _send_and_get_id(alice, USER_KEY)
    linked = await alice.wait_for(pattern("key_linked"), WAIT)
    masked = linked.entity_texts("code")[0]
    assert USER_KEY not in linked.text and masked != USER_KEY and len(masked) < len(USER_KEY)
    assert pattern("key_linked", balance="$20.00", email="alice@example.com").search(linked.text)
    deleted = [m for m in alice.chat(include_deleted=True) if m.message_id == key_msg_id]
    assert deleted and deleted[0].deleted
    assert all(USER_KEY not in m.text for m in alice.chat())
    assert any(int(c["message_id"]) == key_msg_id for c in h.fake.calls_to("deleteMessage"))

    await alice.send("/wallet")
    wallet = await alice.wait_for(pattern("wallet_own_key"), WAIT)
    assert pattern("wallet_own_key", balance="$20.00", email="alice@example.com").search(
        wallet.text
    )

    # Buying uses Alice's own DaisySim account.
    await h.buy(alice, SIGNAL)
    [sim_act] = h.sim_activations()
    assert sim_act["account"] == USER_KEY
    await alice.send("/wallet")
    await alice.wait_for(pattern("wallet_own_key", balance="$19.40"), WAIT)

    # Remove the key (with confirmation).
    await alice.send("/key")
    prompt = await alice.wait_for(pattern("key_current"), WAIT)
    await alice.press(button("btn_remove_key"), message_id=prompt.message_id)
    await alice.wait_for(pattern("key_remove_confirm"), WAIT)
    await alice.press(button("btn_remove_no"))
    await alice.wait_for(text("key_kept"), WAIT)
    await alice.send("/key")
    prompt = await alice.wait_for(pattern("key_current"), WAIT)
    await alice.press(button("btn_remove_key"), message_id=prompt.message_id)
    await alice.wait_for(pattern("key_remove_confirm"), WAIT)
    await alice.press(button("btn_remove_yes"))
    await alice.wait_for(text("key_removed"), WAIT)
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
    await alice.wait_for(text("key_operator_mode"), WAIT)


# ---------------------------------------------------------------------- access


async def test_allowlist_refuses_others(make_harness: HarnessFactory) -> None:
    h = await make_harness(FundingMode.OPERATOR, allowed_user_ids=[ALICE])
    await h.credit(ALICE, "5")
    alice, bob, admin = h.user(), h.user(BOB, "Bob"), h.user(ADMIN, "Admin")
    await bob.send("/start")
    refusal = await bob.wait_for(text("access_denied", user_id=BOB), WAIT)
    assert str(BOB) in refusal.entity_texts("code") and refusal.buttons == []
    await bob.send("/buy")
    private = text("access_denied", user_id=BOB)
    await bob.wait_for(lambda m: m.message_id > refusal.message_id and private in m.text, WAIT)
    await alice.send("/start")
    menu = await alice.wait_for(text("menu_title"), WAIT)
    answer = await bob.press_data("menu:buy", refusal.message_id)
    assert answer.show_alert and answer.text and private in answer.text
    await alice.press(button("btn_buy"), message_id=menu.message_id)
    await alice.wait_for(text("buy_list_title"), WAIT)
    await admin.send("/admin")  # admins are always allowed
    await admin.wait_for(pattern("admin_stats"), WAIT)
    assert h.sim_activations() == []
    stats = await h.engine.stats(ADMIN)
    assert stats.users == 2  # Bob was never registered


async def test_cancel_outside_flow_and_unknown_input(h: Harness) -> None:
    alice = h.user()
    await alice.send("/cancel")
    await alice.wait_for(text("nothing_to_cancel"), WAIT)
    await alice.send("/nonsense")
    unknown = await alice.wait_for(pattern("unknown_command", command="/nonsense"), WAIT)
    assert text("unknown_text") not in unknown.text
    # the command list (no /key in operator mode, no admin lines)
    assert text("commands", key_line="", admin_lines="") in unknown.text
    assert "/admin" not in unknown.text  # not an admin
    await alice.send("/foo@some_bot extra args")
    foo = pattern("unknown_command", command="/foo")
    await alice.wait_for(lambda m: foo.match(m.text) is not None, WAIT)
    await alice.send("hello <b>there</b> & co")
    didnt = text("unknown_text")
    reply = await alice.wait_for(lambda m: didnt in m.text and m.buttons != [], WAIT)
    assert button("btn_wallet") in reply.button_labels
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
    await alice.wait_for(text("err_generic"), WAIT)
    errors = [r for r in caplog.records if r.name == "bot.telegram.errors"]
    assert errors and errors[0].exc_info is not None
    assert "database on fire" in caplog.text
    # Buttons too: the callback is answered, then the user is told.
    await alice.send("/start")
    menu = await alice.wait_for(text("menu_title"), WAIT)
    answer = await alice.press(button("btn_wallet"), message_id=menu.message_id)
    assert answer.text is None
    went_wrong = text("err_generic")
    await alice.wait_for(
        lambda m: m.message_id > menu.message_id and went_wrong in m.text, WAIT
    )
