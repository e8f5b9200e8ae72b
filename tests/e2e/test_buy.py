"""Buying: single provider, sb_* pools (pinned / cheapest), out of stock, errors."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bot.config import FundingMode
from bot.sandbox.sim_state import Service as SimService
from bot.services.api import ActivationState
from bot.telegram.texts import plain
from tests.e2e.conftest import ADMIN, ALICE, OP_KEY, USER_KEY, WAIT, Harness, HarnessFactory
from tests.texts import button, pattern, service_button, service_label, text

NUMBER = pattern("order_number")  # the order view: "Number: …"
CONFIRM = pattern("btn_confirm")  # "✅ Confirm · {price}"


async def test_start_menu_and_commands(h: Harness) -> None:
    alice = h.user()
    await alice.send("/start")
    menu = await alice.wait_for(text("menu_title"), WAIT)
    assert text("welcome", name="Alice") in menu.text
    labels = menu.button_labels
    assert button("btn_buy") in labels and button("btn_wallet") in labels
    assert button("btn_history") in labels
    assert button("btn_key") not in labels  # operator mode: no key management
    commands = [c["command"] for c in h.fake.commands_for(ALICE)]
    assert commands[:3] == ["start", "buy", "active"] and "key" not in commands
    await alice.press(button("btn_help"))
    help_msg = await alice.wait_for(pattern("help"), WAIT)
    assert help_msg.message_id == menu.message_id  # edited in place


async def test_single_provider_buy(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for(text("buy_list_title"), WAIT)
    assert service_label("Signal", "$0.60") in listing.button_labels
    assert button("btn_back") in listing.button_labels
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    assert confirm.message_id == listing.message_id  # edited in place
    assert pattern("buy_confirm", price="$0.60").search(confirm.text)
    assert text("buy_confirm_balance_line", balance="$10.00", balance_after="$9.40") in confirm.text
    answer = await alice.press(CONFIRM)
    assert answer.text == text("cb_buying")
    order = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and NUMBER.search(m.text) is not None, WAIT
    )
    [act] = await h.activations()
    assert act.state == ActivationState.WAITING and act.phone
    assert act.phone in order.entity_texts("code")  # number in monospace
    copy = order.button(button("btn_copy_number"))
    assert copy.kind == "copy_text" and copy.copy_text == act.phone
    assert not order.has_button(button("btn_cancel_refund"))  # not before the 180 s lock
    assert pattern("status_waiting_live").search(order.text) and "Signal" in order.text
    [sim_act] = h.sim_activations()
    assert sim_act["app"] == "Signal" and sim_act["account"] == OP_KEY
    wallet = await h.engine.wallet(ALICE)
    assert wallet.balance == Decimal("9.40")


async def test_sb_pinned_pool_and_cheapest(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.send("whatsapp 3")
    await alice.wait_for(pattern("buy_list_filtered", query="whatsapp 3"), WAIT)
    await alice.press(service_label("WhatsApp 3", "$1.083", multi=True))
    pools = await alice.wait_for(pattern("buy_pools_title"), WAIT)
    labels = pools.button_labels
    assert labels[0] == button("btn_cheapest", price="$1.083")
    assert button("btn_pool", pool="2266", price="$1.092", count=4296) in labels
    await alice.press(pattern("btn_pool", pool="2266"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    assert text("buy_confirm_pool_line", pool="2266") in confirm.text
    assert pattern("buy_confirm", price="$1.092").search(confirm.text)
    await alice.press(CONFIRM)
    order = await alice.wait_for(NUMBER, WAIT)
    assert text("order_pool", pool="2266") in order.text
    assert h.sim_activations()[-1]["pool"] == "2266"

    # Buy again → a NEW confirmation message (fresh quote); then the cheapest pool.
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    # recently bought: first page, first
    await alice.press(service_label("WhatsApp 3", "$1.083", multi=True, recent=True))
    await alice.wait_for(pattern("buy_pools_title"), WAIT)
    await alice.press(pattern("btn_cheapest"))
    confirm2 = await alice.wait_for(pattern("buy_confirm"), WAIT)
    assert pattern("buy_confirm_cheapest_pool_line").search(confirm2.text)
    assert pattern("buy_confirm", price="$1.083").search(confirm2.text)
    await alice.press(CONFIRM)
    await alice.wait_for(
        lambda m: m.message_id == confirm2.message_id and NUMBER.search(m.text) is not None, WAIT
    )
    acts = h.sim_activations()
    assert [a["pool"] for a in acts] == ["2266", "3109"]


async def test_recent_first_filter_and_paging(h: Harness) -> None:
    alice = h.user()
    await h.buy(alice, service_button("Telegram", "$1.40"))
    await alice.send("/buy")
    listing = await alice.wait_for(text("buy_list_title"), WAIT)
    # recently bought first
    assert listing.button_labels[0] == service_label("Telegram", "$1.40", recent=True)
    # The 7 demo services fit on one page (8 per page): no pager.
    assert len([b for b in listing.button_labels if "$" in b]) == 7
    assert not listing.has_button(button("btn_next"))
    assert button("btn_page", page=1, pages=2) not in listing.button_labels
    # Typing while the list is shown filters it.
    await alice.send("what")
    filtered = await alice.wait_for(pattern("buy_list_filtered", query="what"), WAIT)
    names = [b for b in filtered.button_labels if "$" in b]
    assert names and all("WhatsApp" in b for b in names)
    await alice.send("zzzz")
    empty = await alice.wait_for(pattern("buy_list_empty", query="zzzz"), WAIT)
    # The text says what to tap (the button's words), and the button is there (it drops
    # the filter).
    assert button("btn_all_services").split(" ", 1)[1] in empty.text
    assert empty.button_labels == [button("btn_all_services"), button("btn_home")]
    await alice.press(button("btn_all_services"), message_id=empty.message_id)
    everything = await alice.wait_for(
        lambda m: m.message_id == empty.message_id and text("buy_list_title") in m.text, WAIT
    )
    assert len([b for b in everything.button_labels if "$" in b]) == 7
    await alice.send("/cancel")
    await alice.wait_for(text("cancelled"), WAIT)
    await alice.send("what")  # outside the flow: not a filter any more
    await alice.wait_for(text("unknown_text"), WAIT)


async def test_out_of_stock_offers_other_pools(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("WhatsApp 3", "$1.083", multi=True))
    await alice.wait_for(pattern("buy_pools_title"), WAIT)
    await alice.press(pattern("btn_pool", pool="3109"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    h.sim.set_stock("sb_wa", "3109", 0)  # sold out between the quote and the tap
    await alice.press(CONFIRM, message_id=confirm.message_id)
    oos = await alice.wait_for(pattern("err_out_of_stock_pool", pool="3109"), WAIT)
    pool_3109 = [pattern(k, pool="3109") for k in ("btn_pool", "btn_pool_empty")]
    assert not any(p.search(b) for p in pool_3109 for b in oos.button_labels)
    assert oos.has_button(pattern("btn_pool", pool="2266"))
    assert oos.has_button(pattern("btn_cheapest"))
    await alice.press(pattern("btn_pool", pool="2266"), message_id=oos.message_id)
    confirm_again = pattern("buy_confirm")
    confirm2 = await alice.wait_for(
        lambda m: confirm_again.search(m.text) is not None and m.message_id == oos.message_id,
        WAIT,
    )
    await alice.press(CONFIRM, message_id=confirm2.message_id)
    await alice.wait_for(
        lambda m: m.message_id == oos.message_id and NUMBER.search(m.text) is not None, WAIT
    )
    pools = [a["pool"] for a in h.sim_activations()]
    assert pools == ["2266"]
    acts = await h.activations()
    assert {a.state for a in acts} == {ActivationState.WAITING, ActivationState.FAILED} or [
        a.state for a in acts
    ] == [ActivationState.WAITING]


async def test_double_tap_on_confirm_buys_once(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    first = await alice.press_nowait(CONFIRM, message_id=confirm.message_id)
    second = await alice.press_nowait(CONFIRM, message_id=confirm.message_id)
    answers = await asyncio.gather(
        h.fake.wait_callback_answer(first, WAIT), h.fake.wait_callback_answer(second, WAIT)
    )
    assert sorted(a.text or "" for a in answers) == sorted(
        [text("cb_buying"), text("cb_already_buying")]
    )
    await alice.wait_for(NUMBER, WAIT)
    await h.settle()
    assert len(h.sim_activations()) == 1
    assert len(await h.activations()) == 1


async def test_insufficient_funds_shows_balance_and_price(make_harness: HarnessFactory) -> None:
    """The balance drops between the confirmation screen and the tap (an admin
    debit): the purchase is refused with the price, the balance and the user's ID."""
    h = await make_harness()
    await h.credit(ALICE, "2.00")
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Telegram", "$1.40"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    await h.engine.admin_adjust(ADMIN, ALICE, Decimal("-1.50"), "correction")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    msg = await alice.wait_for(pattern("err_insufficient"), WAIT)
    assert msg.message_id == confirm.message_id
    assert pattern("err_insufficient", balance="$0.50", price="$1.40").search(msg.text)
    assert text("err_insufficient_operator_id", user_id=ALICE) in msg.text
    assert str(ALICE) in msg.entity_texts("code")
    assert msg.has_button(button("btn_wallet")) and msg.has_button(button("btn_pick_another"))
    assert not msg.has_button(CONFIRM)
    assert h.sim_activations() == []
    assert (await h.engine.wallet(ALICE)).balance == Decimal("0.50")


async def test_confirm_screen_refuses_a_price_above_the_balance(
    make_harness: HarnessFactory,
) -> None:
    """Never "Balance: $0.50 → -$0.10 after purchase" with a Confirm button."""
    h = await make_harness()
    await h.credit(ALICE, "0.50")
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    msg = await alice.wait_for(pattern("err_insufficient"), WAIT)
    assert pattern("err_insufficient", balance="$0.50", price="$0.60").search(msg.text)
    assert text("err_insufficient_operator_id", user_id=1) in msg.text
    assert "-$0.10" not in msg.text and not pattern("buy_confirm").search(msg.text)
    assert not msg.has_button(CONFIRM)
    assert msg.has_button(button("btn_pick_another")) and msg.has_button(button("btn_wallet"))
    # A forged Confirm for this screen re-checks and still refuses: nothing is bought,
    # and no "Buying…" is said.
    answer = await alice.press_data("buy:ok:Signal:-:abcde", msg.message_id)
    assert answer.text == plain("en", "cb_confirm_again")
    await h.settle()
    again = alice.message(msg.message_id)
    assert pattern("err_insufficient").search(again.text) and not again.has_button(CONFIRM)
    assert h.sim_activations() == [] and await h.activations() == []
    # Multi-pool services: Back to the pools too (another pool may be cheaper).
    await alice.press(button("btn_pick_another"), message_id=msg.message_id)
    await alice.wait_for(lambda m: m.message_id == msg.message_id and
                         text("buy_list_title") in m.text, WAIT)
    await alice.press(service_label("WhatsApp 3", "$1.083", multi=True), message_id=msg.message_id)
    await alice.wait_for(pattern("buy_pools_title"), WAIT)
    await alice.press(pattern("btn_cheapest"), message_id=msg.message_id)
    short = pattern("err_insufficient")
    pooled = await alice.wait_for(lambda m: m.message_id == msg.message_id and
                                  short.search(m.text) is not None, WAIT)
    assert pooled.has_button(button("btn_back")) and pooled.has_button(button("btn_pick_another"))
    # Topped up: the same service now shows a normal confirmation.
    await h.credit(ALICE, "1")
    await alice.press(button("btn_pick_another"), message_id=msg.message_id)
    await alice.wait_for(lambda m: m.message_id == msg.message_id and
                         text("buy_list_title") in m.text, WAIT)
    await alice.press(service_label("Signal", "$0.60"), message_id=msg.message_id)
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    assert text("buy_confirm_balance_line", balance="$1.50", balance_after="$0.90") in confirm.text
    assert confirm.has_button(button("btn_confirm", price="$0.60"))


async def test_own_key_insufficient_balance_says_top_up_daisysim(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(FundingMode.OWN_KEY)
    h.sim.update_account(USER_KEY, balance=Decimal("0.50"))
    alice = h.user()
    await h.engine.link_key(ALICE, USER_KEY)
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    msg = await alice.wait_for(pattern("err_insufficient"), WAIT)
    assert pattern("err_insufficient", balance="$0.50", price="$0.60").search(msg.text)
    assert text("err_insufficient_own_key") in msg.text
    assert not pattern("err_insufficient_operator_id").search(msg.text)
    assert not msg.has_button(CONFIRM)


async def test_service_list_pages_hold_eight(h: Harness) -> None:
    for i in range(3):  # 7 demo services + 3 = 10: two pages of 8
        code = f"Extra{i}"
        h.sim.core.services[code] = SimService(code, f"Zeta {i}", price=Decimal("0.3000"))
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for(text("buy_list_title"), WAIT)
    assert len([b for b in listing.button_labels if "$" in b]) == 8
    assert button("btn_page", page=1, pages=2) in listing.button_labels
    await alice.press(button("btn_next"))
    page2 = await alice.wait_for(
        lambda m: button("btn_page", page=2, pages=2) in m.button_labels, WAIT
    )
    assert [b for b in page2.button_labels if "$" in b] == [
        service_label("Zeta 1", "$0.30"), service_label("Zeta 2", "$0.30")
    ]


async def test_conversation_timeout_edits_the_menu(make_harness: HarnessFactory) -> None:
    h = await make_harness(conversation_timeout_seconds=0.3)
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for(text("buy_list_title"), WAIT)
    timed_out = await alice.wait_for(text("buy_timeout"), WAIT)
    assert timed_out.message_id == listing.message_id and timed_out.buttons == []


async def test_price_change_between_quote_and_confirm_asks_again(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    h.sim.core.services["Signal"].price = Decimal("0.8000")  # no control API for prices
    await h.advance(301)  # the engine's 5-minute price cache expires
    await alice.press(CONFIRM, message_id=confirm.message_id)
    changed = await alice.wait_for(pattern("err_price_changed"), WAIT)
    assert changed.message_id == confirm.message_id
    assert pattern("err_price_changed", name="Signal", price="$0.80").search(changed.text)
    assert h.sim_activations() == []  # nothing bought at an unconfirmed price
    await alice.press(button("btn_confirm", price="$0.80"), message_id=changed.message_id)
    order = await alice.wait_for(lambda m: m.message_id == confirm.message_id and
                                 NUMBER.search(m.text) is not None, WAIT)
    assert text("order_price", price="$0.80") in order.text
    [sim_act] = h.sim_activations()
    assert sim_act["price"] == "0.8000"


async def test_service_removed_upstream(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for(text("buy_list_title"), WAIT)
    h.sim.remove_service("Telegram")
    await h.advance(301)
    await alice.press(service_label("Telegram", "$1.40"), message_id=listing.message_id)
    gone = await alice.wait_for(text("err_service_gone"), WAIT)
    assert gone.has_button(button("btn_try_again"))
    assert h.sim_activations() == []


@pytest.mark.parametrize(
    ("fault", "expected", "values"),
    [
        ({"status": 429, "code": "RATE_LIMITED",
          "message": "Too many purchase attempts. Please wait 43s."}, "err_rate_limited",
         {"seconds": 43}),
        ({"status": 502, "code": "PROVIDER_ERROR"}, "err_upstream", {}),
        ({"status": 403, "code": "ACCOUNT_LOCKED", "message": "Account locked."},
         "err_account_locked", {}),
    ],
)
async def test_upstream_errors_have_their_own_message(
    h: Harness, fault: dict[str, object], expected: str, values: dict[str, int]
) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    h.sim.add_fault("purchase", **fault)  # type: ignore[arg-type]
    await alice.press(CONFIRM, message_id=confirm.message_id)
    msg = await alice.wait_for(text(expected, **{k: str(v) for k, v in values.items()}), WAIT)
    assert msg.message_id == confirm.message_id and msg.buttons
    await h.settle()
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")  # nothing charged
    assert [a for a in h.sim_activations() if not a["refunded"]] == []


async def test_back_buttons_walk_the_flow(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.send("whatsapp 3")
    matching = pattern("buy_list_filtered", query="whatsapp 3")
    filtered = await alice.wait_for(matching, WAIT)
    await alice.press(
        service_label("WhatsApp 3", "$1.083", multi=True), message_id=filtered.message_id
    )
    pools = pattern("buy_pools_title")
    await alice.wait_for(pools, WAIT)
    await alice.press(pattern("btn_cheapest"))
    await alice.wait_for(pattern("buy_confirm"), WAIT)
    await alice.press(button("btn_back"))
    await alice.wait_for(lambda m: m.message_id == filtered.message_id
                         and pools.search(m.text) is not None, WAIT)
    await alice.press(button("btn_back"))
    # Back to the list keeps the filter typed for this message.
    await alice.wait_for(lambda m: m.message_id == filtered.message_id
                         and matching.search(m.text) is not None, WAIT)
    await alice.press(button("btn_back"), message_id=filtered.message_id)
    home = await alice.wait_for(text("menu_title"), WAIT)
    assert home.message_id == filtered.message_id
    assert alice.message(listing.message_id).text.startswith(text("buy_list_title"))


async def test_confirm_from_before_a_restart_buys_once_at_the_price_shown(h: Harness) -> None:
    """The quote is stored with an id: a Confirm pressed after a restart (e.g. a
    deploy) buys what the screen showed, once."""
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm", price="$0.60"), WAIT)
    data = confirm.button(CONFIRM).callback_data
    assert data is not None
    await h.restart_bot()
    answer = await alice.press(CONFIRM, message_id=confirm.message_id)
    assert answer.text == plain("en", "cb_buying")
    await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and NUMBER.search(m.text) is not None, WAIT
    )
    await h.restart_bot()
    # The same Confirm again (a stale press after a second restart): never a second buy.
    answer = await alice.press_data(data, confirm.message_id)
    assert answer.text == plain("en", "cb_already_buying")
    await h.settle()
    [bought] = h.sim_activations()
    assert Decimal(str(bought["price"])) == Decimal("0.6")
    assert (await h.engine.wallet(ALICE)).balance == Decimal("9.40")


async def test_confirm_from_before_a_restart_never_pays_a_higher_price(h: Harness) -> None:
    """The price rose while the bot was down: the Confirm from before the restart
    buys nothing and shows the new price to be confirmed."""
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    assert pattern("buy_confirm", price="$0.60").search(confirm.text)
    h.sim.core.services["Signal"].price = Decimal("0.8000")  # upstream price rises
    await h.restart_bot()
    await alice.press(CONFIRM, message_id=confirm.message_id)
    at_080 = pattern("err_price_changed", price="$0.80")
    again = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and at_080.search(m.text) is not None, WAIT
    )
    assert h.sim_activations() == []  # nothing bought at a price not shown
    await alice.press(button("btn_confirm", price="$0.80"), message_id=again.message_id)
    await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and NUMBER.search(m.text) is not None, WAIT
    )
    [bought] = h.sim_activations()
    assert Decimal(str(bought["price"])) == Decimal("0.8")
    assert (await h.engine.wallet(ALICE)).balance == Decimal("9.20")
