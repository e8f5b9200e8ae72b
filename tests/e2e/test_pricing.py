"""Operator prices end to end (issue 13, item 2): per-service markup or fixed price from
PRICE_OVERRIDES and from the admins' /price, applied to every price shown, held and
charged, rounded up to the cent; own-key users pay DaisySim's prices."""

from __future__ import annotations

from decimal import Decimal

from bot.config import FundingMode
from bot.sandbox.fake_telegram import FakeUser
from tests.e2e.conftest import ADMIN, ALICE, OP_KEY, WAIT, Harness, HarnessFactory
from tests.texts import button, pattern, service_label, text

NUMBER = pattern("order_number")
CONFIRM = pattern("btn_confirm")
# Signal costs $0.60 upstream: +12.5 % is $0.675, shown and charged as $0.68.
OVERRIDES = "Signal=+12.5%,WhatsApp=2.00,sb_wa=+10%"


async def _admin(h: Harness) -> FakeUser:
    admin = h.user(ADMIN, "Ada")
    await admin.send("/start")
    await admin.wait_for(text("menu_title"), WAIT)
    return admin


async def _list_labels(h: Harness, user_id: int = ALICE) -> list[str]:
    user = h.user(user_id)
    await user.send("/buy")
    listing = await user.wait_for(text("buy_list_title"), WAIT)
    return listing.button_labels


async def test_settings_overrides_apply_to_list_confirm_hold_charge_and_wallet(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(FundingMode.OPERATOR, price_overrides=OVERRIDES)
    await h.credit(ALICE, "10")
    labels = await _list_labels(h)
    assert service_label("Signal", "$0.68") in labels  # never "$0.675"
    assert service_label("WhatsApp", "$2.00") in labels  # a fixed price
    assert service_label("WhatsApp 3", "$1.20", multi=True) in labels  # 1.083 x 1.1 = 1.1913
    assert service_label("Telegram", "$1.40") in labels  # no rule, no markup: DaisySim's
    alice = h.user()
    await alice.press(service_label("WhatsApp 3", "$1.20", multi=True))
    pools = await alice.wait_for(pattern("buy_pools_title"), WAIT)
    assert button("btn_pool", pool="2266", price="$1.21", count=4296) in pools.button_labels
    await alice.press(pattern("btn_back"))
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.68"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    assert pattern("buy_confirm", price="$0.68").search(confirm.text)
    assert text("buy_confirm_balance_line", balance="$10.00", balance_after="$9.32") in confirm.text
    assert confirm.has_button(button("btn_confirm", price="$0.68"))
    await alice.press(CONFIRM, message_id=confirm.message_id)
    order = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and NUMBER.search(m.text) is not None, WAIT
    )
    assert pattern("order_price", price="$0.68").search(order.text)
    [act] = await h.activations()
    assert act.price == Decimal("0.68")
    wallet = await h.engine.wallet(ALICE)
    assert wallet.balance == Decimal("9.32") and wallet.spent_this_month == Decimal("0.68")
    charges = [e.amount for e in wallet.ledger if e.kind == "charge"]
    assert charges == [Decimal("-0.68")]
    assert h.sim.balance(OP_KEY) == Decimal("500") - Decimal("0.60")  # DaisySim's own price
    await alice.send("/wallet")
    shown = await alice.wait_for(pattern("wallet_operator"), WAIT)
    assert "-$0.68" in shown.text and "$9.32" in shown.text


async def test_admin_rule_wins_over_settings_is_stored_and_resets(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(FundingMode.OPERATOR, price_overrides=OVERRIDES)
    await h.credit(ALICE, "10")
    admin = await _admin(h)
    await admin.send("/price signal 0.99")  # codes match case-insensitively
    done = await admin.wait_for(pattern("admin_price_set"), WAIT)
    assert "$0.99" in done.text and "Signal" in done.text
    assert text("admin_price_source_admin") in done.text
    assert service_label("Signal", "$0.99") in await _list_labels(h)
    await admin.send("/prices")
    listing = await admin.wait_for(pattern("admin_prices_title"), WAIT)
    assert "$0.99" in listing.text and "$2.00" in listing.text  # Signal (admin), WhatsApp
    assert text("admin_price_source_settings") in listing.text
    assert "$1.20 – $3.96" in listing.text  # sb_wa +10 %: its cheapest and dearest pool
    await h.restart_bot()  # the admin's rule is in the database
    assert service_label("Signal", "$0.99") in await _list_labels(h)
    alice = h.user()
    await alice.press(service_label("Signal", "$0.99"))
    confirm = await alice.wait_for(pattern("buy_confirm", price="$0.99"), WAIT)
    await alice.press(CONFIRM, message_id=confirm.message_id)
    await alice.wait_for(NUMBER, WAIT)
    assert (await h.engine.wallet(ALICE)).balance == Decimal("9.01")
    await admin.send("/price Signal reset")
    reset = await admin.wait_for(pattern("admin_price_reset"), WAIT)
    assert "+12.5%" in reset.text and "$0.68" in reset.text
    assert service_label("Signal", "$0.68", recent=True) in await _list_labels(h)


async def test_a_confirmed_price_is_never_exceeded_when_an_admin_raises_it(h: Harness) -> None:
    admin = await _admin(h)
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm", price="$0.60"), WAIT)
    await admin.send("/price Signal 1.50")
    await admin.wait_for(pattern("admin_price_set"), WAIT)
    await alice.press(CONFIRM, message_id=confirm.message_id)
    asked = await alice.wait_for(pattern("err_price_changed", price="$1.50"), WAIT)
    assert asked.has_button(button("btn_confirm", price="$1.50"))
    assert await h.activations() == []  # nothing bought at the new price unasked
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10")


async def test_bad_price_commands_are_refused_with_the_reason(h: Harness) -> None:
    admin = await _admin(h)
    await admin.send("/price")
    await admin.wait_for(pattern("admin_usage_price"), WAIT)
    await admin.send("/price Signal 0.755")  # no fractions of a cent
    await admin.wait_for(pattern("admin_price_bad_rule", rule="0.755"), WAIT)
    await admin.send("/price Signal -10%")
    await admin.wait_for(pattern("admin_price_bad_rule", rule="-10%"), WAIT)
    await admin.send("/price Signal 0.10")  # below DaisySim's $0.60
    await admin.wait_for(pattern("admin_price_below_cost", price="$0.10", cost="$0.60"), WAIT)
    await admin.send("/price whats +5%")
    unknown = await admin.wait_for(pattern("admin_price_unknown_service", code="whats"), WAIT)
    assert "WhatsApp" in unknown.text and "sb_wa" in unknown.text  # the close codes
    assert "Signal" not in unknown.text.split("\n", 1)[1]
    assert service_label("Signal", "$0.60") in await _list_labels(h)  # nothing changed
    alice = h.user()
    await alice.send("/price Signal 0.01")
    await alice.wait_for(text("not_allowed"), WAIT)
    await alice.send("/prices")
    await alice.wait_for(text("not_allowed"), WAIT)
    assert service_label("Signal", "$0.60") in await _list_labels(h)


async def test_a_fixed_price_never_sells_below_a_risen_upstream_price(h: Harness) -> None:
    admin = await _admin(h)
    await admin.send("/price Signal 0.75")
    await admin.wait_for(pattern("admin_price_set"), WAIT)
    assert service_label("Signal", "$0.75") in await _list_labels(h)
    h.sim.set_price("Signal", None, "0.8130")
    h.clock.advance(301.0)  # past the 5-minute price cache
    assert service_label("Signal", "$0.82") in await _list_labels(h)  # cost, up to the cent


async def test_own_key_users_pay_daisysim_prices(make_harness: HarnessFactory) -> None:
    h = await make_harness(FundingMode.OWN_KEY, price_overrides=OVERRIDES, markup_percent="10")
    admin = await _admin(h)
    await admin.send("/price Signal 0.99")
    await admin.wait_for(text("admin_prices_operator_only"), WAIT)
    await h.engine.link_key(ALICE, "sk_user_alice_e2e_9f8e7d6c5b4a39281706")
    services = {s.code: s for s in await h.engine.list_services(ALICE)}
    assert services["Signal"].price == Decimal("0.6000")
    assert services["WhatsApp"].price == Decimal("1.8500")
