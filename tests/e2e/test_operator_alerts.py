"""Operator alerts and the support contact end to end (issue 13, items 3c and 3d):
the low-balance alert (once per crossing, stored across restarts, re-armed above the
threshold, to every admin in their language), the operator's INSUFFICIENT_BALANCE
(an alert for the admins; "temporarily unavailable" for the user, who loses nothing)
and SUPPORT_CONTACT wherever a user is told to ask an admin."""

from __future__ import annotations

from decimal import Decimal

from bot.config import FundingMode
from bot.sandbox.fake_telegram import FakeUser
from tests.e2e.conftest import ADMIN, ALICE, BOB, OP_KEY, WAIT, Harness, HarnessFactory
from tests.texts import pattern, service_button, service_label, text

ADMIN_RU = 1001
CONFIRM = pattern("btn_confirm")
LOW = pattern("admin_alert_low_balance")
LOW_RU = pattern("admin_alert_low_balance", lang="ru")
EMPTY = pattern("admin_alert_operator_empty")


def _alerts(user: FakeUser, key: str, lang: str = "en") -> int:
    rx = pattern(key, lang=lang)
    return sum(1 for m in user.bot_messages() if rx.search(m.text))


async def _start(user: FakeUser) -> None:
    await user.send("/start")
    await user.wait_for(lambda m: True, WAIT)


async def _admins(h: Harness) -> tuple[FakeUser, FakeUser]:
    en = h.user(ADMIN, "Ada")
    ru = h.fake.user(ADMIN_RU, first_name="Boris", language_code="ru")
    await _start(en)
    await _start(ru)
    return en, ru


async def _buy_signal(h: Harness, user: FakeUser, price: str = "$0.60") -> None:
    await user.send("/buy")
    await user.wait_for(text("buy_list_title"), WAIT)
    await user.press(service_button("Signal", price))
    confirm = await user.wait_for(pattern("buy_confirm"), WAIT)
    await user.press(CONFIRM, message_id=confirm.message_id)


async def test_low_balance_alert_once_per_crossing_to_every_admin_in_their_language(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(
        FundingMode.OPERATOR, admin_ids=[ADMIN, ADMIN_RU], low_balance_alert_usd="100",
        low_balance_check_seconds=300,
    )
    en, ru = await _admins(h)
    await h.advance(300)
    assert _alerts(en, "admin_alert_low_balance") == 0  # $500: fine
    h.sim.update_account(OP_KEY, balance="99.50")
    await h.advance(300)  # the periodic check
    got = await en.wait_for(LOW, WAIT, since=0)
    assert pattern("admin_alert_low_balance", balance="$99.50", threshold="$100.00").search(
        got.text
    )
    await ru.wait_for(LOW_RU, WAIT, since=0)  # in Russian for the Russian admin
    await h.advance(900)
    await h.restart_bot()  # the crossing is stored: no second alert after a restart
    await h.advance(600)
    assert _alerts(en, "admin_alert_low_balance") == 1
    assert _alerts(ru, "admin_alert_low_balance", "ru") == 1
    h.sim.update_account(OP_KEY, balance="150")
    await h.advance(300)  # back above: re-armed (no message)
    assert _alerts(en, "admin_alert_low_balance") == 1
    # A purchase's balance_after crosses it again: alerted at once, no check needed.
    h.sim.update_account(OP_KEY, balance="100.40")
    await h.credit(ALICE, "10")
    alice = h.user()
    await _buy_signal(h, alice)
    await alice.wait_for(pattern("order_number"), WAIT)
    second = await en.wait_for(
        lambda m: pattern("admin_alert_low_balance", balance="$99.80").search(m.text) is not None,
        WAIT, since=0,
    )
    assert second is not None
    await ru.wait_for(pattern("admin_alert_low_balance", lang="ru", balance=Decimal("99.80")),
                      WAIT, since=0)
    assert _alerts(en, "admin_alert_low_balance") == 2


async def test_operator_insufficient_balance_alerts_admins_and_the_user_loses_nothing(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(FundingMode.OPERATOR, support_contact="@daisy_support")
    await h.credit(ALICE, "10")
    admin = h.user(ADMIN, "Ada")
    await _start(admin)
    h.sim.update_account(OP_KEY, balance="0.10")
    alice = h.user()
    await _buy_signal(h, alice)
    shown = await alice.wait_for(pattern("err_service_unavailable"), WAIT)
    assert text("support_line", contact="@daisy_support") in shown.text
    assert not pattern("err_insufficient").search(shown.text)  # not "your balance"
    await admin.wait_for(EMPTY, WAIT, since=0)
    wallet = await h.engine.wallet(ALICE)
    assert wallet.balance == Decimal("10")  # the hold was released
    assert not [e for e in wallet.ledger if e.kind == "charge"]
    assert await h.activations() == []  # nothing bought, no order to show
    # A second failure during the same outage: the admins were told already.
    await _buy_signal(h, alice)
    await alice.wait_for(pattern("err_service_unavailable"), WAIT)
    await h.settle()
    assert _alerts(admin, "admin_alert_operator_empty") == 1
    # Topped up: the next purchase goes through and re-arms the alert.
    h.sim.update_account(OP_KEY, balance="500")
    await _buy_signal(h, alice)
    await alice.wait_for(pattern("order_number"), WAIT)
    h.sim.update_account(OP_KEY, balance="0")
    await _buy_signal(h, alice)
    await alice.wait_for(pattern("err_service_unavailable"), WAIT)
    await h.settle()
    assert _alerts(admin, "admin_alert_operator_empty") == 2
    assert (await h.engine.wallet(ALICE)).balance == Decimal("9.40")  # one number bought


async def test_an_alert_for_an_admin_who_blocked_the_bot_is_not_retried_forever(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(FundingMode.OPERATOR, admin_ids=[ADMIN, ADMIN_RU])
    en, ru = await _admins(h)
    await ru.block()
    await h.credit(ALICE, "10")
    h.sim.update_account(OP_KEY, balance="0")
    await _buy_signal(h, h.user())
    await en.wait_for(EMPTY, WAIT, since=0)
    await h.settle()
    assert await h.engine.pending_alerts() == []


async def test_support_contact_where_users_are_told_to_ask_an_admin(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(
        FundingMode.OPERATOR, support_contact="https://t.me/daisy_support",
        allowed_user_ids=[ALICE, ADMIN],
    )
    support = text("support_line", contact="https://t.me/daisy_support")
    alice = h.user()
    await alice.send("/wallet")
    empty = await alice.wait_for(pattern("wallet_operator_empty"), WAIT)
    assert support in empty.text
    await _buy_signal_refused(alice)
    short = await alice.wait_for(pattern("err_insufficient"), WAIT)
    assert pattern("err_insufficient_operator_id", user_id=ALICE).search(short.text)
    assert support in short.text
    bob = h.user(BOB, "Bob")
    await bob.send("/start")
    denied = await bob.wait_for(pattern("access_denied"), WAIT)
    assert support in denied.text


async def _buy_signal_refused(user: FakeUser) -> None:
    await user.send("/buy")
    await user.wait_for(text("buy_list_title"), WAIT)
    await user.press(service_label("Signal", "$0.60"))


async def test_without_support_contact_the_texts_stand_alone(h: Harness) -> None:
    bob = h.user(BOB, "Bob")
    await bob.send("/wallet")
    empty = await bob.wait_for(pattern("wallet_operator_empty"), WAIT)
    assert text("support_line", contact="@x").split(":")[0] not in empty.text


async def test_an_alert_telegram_failed_to_take_is_sent_after_a_restart(h: Harness) -> None:
    admin = h.user(ADMIN, "Ada")
    await _start(admin)
    h.fake.inject_error("sendMessage", 500, chat_id=ADMIN, count=1)
    h.sim.update_account(OP_KEY, balance="0")
    alice = h.user()
    await _buy_signal(h, alice)
    await alice.wait_for(pattern("err_service_unavailable"), WAIT)
    await h.settle()
    assert _alerts(admin, "admin_alert_operator_empty") == 0
    [waiting] = await h.engine.pending_alerts()
    assert waiting.kind == "operator_empty" and waiting.admin_id == ADMIN
    await h.restart_bot()
    await admin.wait_for(EMPTY, WAIT, since=0)
    await h.settle()
    assert _alerts(admin, "admin_alert_operator_empty") == 1
    assert await h.engine.pending_alerts() == []
