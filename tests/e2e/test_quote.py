"""What Confirm buys: the quoted pool, at fresh prices, never above the confirmed price.

Every test runs in both funding modes (operator: the bot's internal wallet pays via
the operator's key; own key: the user's own DaisySim wallet). The 5-minute catalogue
cache is *not* left to expire: a sell-out or a price rise between the confirmation
screen and the Confirm press must be seen anyway.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from decimal import Decimal

import pytest

from bot.config import FundingMode
from bot.sandbox.fake_telegram import ChatMessage, FakeUser
from bot.services.engine import Engine
from bot.telegram.texts import plain
from tests.e2e.conftest import (
    ADMIN,
    ALICE,
    BOB,
    OP_KEY,
    USER_KEY,
    WAIT,
    Harness,
    HarnessFactory,
)
from tests.texts import button, pattern, service_label, text

MODES = [FundingMode.OPERATOR, FundingMode.OWN_KEY]
CONFIRM = pattern("btn_confirm")
CONFIRMING = pattern("buy_confirm")  # the confirmation screen
NUMBER = pattern("order_number")  # the order view
CHEAPEST = pattern("btn_cheapest")
TELEGRAM_2 = service_label("Telegram 2", "$0.45", multi=True)


def _on(message_id: int, text_pattern: re.Pattern[str]) -> Callable[[ChatMessage], bool]:
    """Predicate: message ``message_id`` now shows ``text_pattern``."""
    return lambda m: m.message_id == message_id and text_pattern.search(m.text) is not None


def pool_offered(message: ChatMessage, pool: str) -> bool:
    """A button of ``pool`` (with numbers or sold out) is on ``message``."""
    pools = [pattern(key, pool=pool) for key in ("btn_pool", "btn_pool_empty")]
    return any(p.search(label) for p in pools for label in message.button_labels)


@pytest.fixture(params=MODES, ids=["operator", "own_key"])
async def hm(request: pytest.FixtureRequest, make_harness: HarnessFactory) -> Harness:
    """A harness in each mode with Alice able to pay: $10 of credit (operator) or
    her linked key (own key, a $20 DaisySim wallet)."""
    mode: FundingMode = request.param
    h = await make_harness(mode)
    if mode is FundingMode.OPERATOR:
        await h.credit(ALICE, "10")
    else:
        await h.engine.link_key(ALICE, USER_KEY)
    return h


def payer(h: Harness) -> str:
    return OP_KEY if h.mode is FundingMode.OPERATOR else USER_KEY


async def alice_balance(h: Harness) -> Decimal | None:
    return (await h.engine.wallet(ALICE)).balance


def charges(h: Harness) -> list[tuple[str, Decimal]]:
    """(activation id, amount) of every charge on the paying DaisySim account."""
    ledger = h.sim.state()["ledger"][payer(h)]
    return [(e["activation_id"], Decimal(str(e["amount"]))) for e in ledger
            if e["kind"] == "charge"]


async def confirmation(
    alice: FakeUser, service: str, pool: str | re.Pattern[str] | None = None
) -> ChatMessage:
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service)
    if pool is not None:
        await alice.wait_for(pattern("buy_pools_title"), WAIT)
        await alice.press(pool)
    return await alice.wait_for(CONFIRMING, WAIT)


async def test_quoted_cheapest_pool_sold_out_buys_nothing_and_shows_fresh_pools(
    hm: Harness,
) -> None:
    """The issue's case: Telegram 2 confirmed at $0.45 (cheapest), that pool sells
    out before Confirm; DaisySim's "cheapest" would now be the $0.60 pool."""
    h, alice = hm, hm.user()
    before = await alice_balance(h)
    confirm = await confirmation(alice, TELEGRAM_2, CHEAPEST)
    assert text("buy_confirm_cheapest_pool_line", pool="2266") in confirm.text
    assert pattern("buy_confirm", price="$0.45").search(confirm.text)
    h.sim.set_stock("sb_tg", "2266", 0)  # sold out; the bot's price cache still has it
    await alice.press(CONFIRM, message_id=confirm.message_id)
    oos = await alice.wait_for(_on(confirm.message_id, pattern("err_out_of_stock_pool")), WAIT)
    assert text("err_out_of_stock_pool", pool="2266", name="Telegram 2") in oos.text
    # The current pools with fresh prices; the sold-out one is not offered.
    assert oos.button_labels[:2] == [
        button("btn_cheapest", price="$0.60"),
        button("btn_pool", pool="3109", price="$0.60", count=980),
    ]
    assert not pool_offered(oos, "2266")
    assert h.sim_activations() == [] and charges(h) == []  # nothing bought, nothing charged
    assert await alice_balance(h) == before
    # Picking the other pool shows its price; confirming that buys it.
    await alice.press(pattern("btn_pool", pool="3109"), message_id=oos.message_id)
    again = await alice.wait_for(_on(confirm.message_id, CONFIRMING), WAIT)
    assert text("buy_confirm_pool_line", pool="3109") in again.text
    assert pattern("buy_confirm", price="$0.60").search(again.text)
    await alice.press(CONFIRM, message_id=again.message_id)
    await alice.wait_for(_on(confirm.message_id, NUMBER), WAIT)
    [bought] = h.sim_activations()
    assert (bought["pool"], bought["price"]) == ("3109", "0.6000")


async def test_quoted_pinned_pool_gone_from_fresh_apps_buys_nothing(hm: Harness) -> None:
    h, alice = hm, hm.user()
    confirm = await confirmation(
        alice, service_label("WhatsApp 3", "$1.083", multi=True), pattern("btn_pool", pool="3170")
    )
    h.sim.core.services["sb_wa"].pools = [  # the pool disappears upstream
        p for p in h.sim.core.services["sb_wa"].pools if p.provider_id != "3170"
    ]
    await alice.press(CONFIRM, message_id=confirm.message_id)
    oos = await alice.wait_for(
        text("err_out_of_stock_pool", pool="3170", name="WhatsApp 3"), WAIT
    )
    assert oos.message_id == confirm.message_id
    assert not pool_offered(oos, "3170")
    assert oos.has_button(button("btn_pool", pool="3109", price="$1.083", count=4000))
    assert h.sim_activations() == [] and charges(h) == []


async def test_price_rise_of_the_quoted_pool_asks_again(hm: Harness) -> None:
    h, alice = hm, hm.user()
    before = await alice_balance(h)
    assert before is not None
    confirm = await confirmation(alice, TELEGRAM_2, CHEAPEST)
    h.sim.set_price("sb_tg", "2266", "0.5500")  # within the 5-minute cache
    answer = await alice.press(CONFIRM, message_id=confirm.message_id)
    assert answer.text == plain("en", "cb_buying")  # a purchase was going to be attempted
    changed = await alice.wait_for(_on(confirm.message_id, pattern("err_price_changed")), WAIT)
    assert pattern("err_price_changed", name="Telegram 2", price="$0.55").search(changed.text)
    assert text("buy_confirm_cheapest_pool_line", pool="2266") in changed.text
    assert h.sim_activations() == [] and charges(h) == []
    assert await alice_balance(h) == before
    await alice.press(button("btn_confirm", price="$0.55"), message_id=changed.message_id)
    order = await alice.wait_for(_on(confirm.message_id, NUMBER), WAIT)
    assert text("order_price", price="$0.55") in order.text
    [bought] = h.sim_activations()
    assert (bought["pool"], bought["price"]) == ("2266", "0.5500")
    assert charges(h) == [(bought["id"], Decimal("-0.5500"))]
    assert await alice_balance(h) == before - Decimal("0.55")


async def test_quoted_pool_rising_above_another_asks_again_for_the_new_cheapest(
    hm: Harness,
) -> None:
    h, alice = hm, hm.user()
    confirm = await confirmation(alice, TELEGRAM_2, CHEAPEST)
    h.sim.set_price("sb_tg", "2266", "0.7000")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    changed = await alice.wait_for(
        _on(confirm.message_id, pattern("err_price_changed", price="$0.60")), WAIT
    )
    assert text("buy_confirm_cheapest_pool_line", pool="3109") in changed.text
    assert h.sim_activations() == []
    await alice.press(button("btn_confirm", price="$0.60"), message_id=changed.message_id)
    await alice.wait_for(_on(confirm.message_id, NUMBER), WAIT)
    [bought] = h.sim_activations()
    assert (bought["pool"], bought["price"]) == ("3109", "0.6000")


async def test_single_provider_price_rise_asks_again_without_waiting_for_the_cache(
    hm: Harness,
) -> None:
    h, alice = hm, hm.user()
    confirm = await confirmation(alice, service_label("Signal", "$0.60"))
    h.sim.set_price("Signal", None, "0.8000")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    changed = await alice.wait_for(
        _on(confirm.message_id, pattern("err_price_changed", price="$0.80")), WAIT
    )
    assert changed.has_button(button("btn_confirm", price="$0.80"))
    assert h.sim_activations() == [] and charges(h) == []


async def test_cheapest_buys_the_quoted_pool_even_if_another_became_cheaper(
    hm: Harness,
) -> None:
    """The confirmation named a pool (2266 at $0.45): that pool is what is bought
    — DaisySim is told which — not whatever its own "cheapest" is at that moment."""
    h, alice = hm, hm.user()
    before = await alice_balance(h)
    assert before is not None
    confirm = await confirmation(alice, TELEGRAM_2, CHEAPEST)
    h.sim.set_price("sb_tg", "3109", "0.4000")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    order = await alice.wait_for(_on(confirm.message_id, NUMBER), WAIT)
    assert text("order_price", price="$0.45") in order.text
    [bought] = h.sim_activations()
    assert (bought["pool"], bought["price"]) == ("2266", "0.4500")
    assert charges(h) == [(bought["id"], Decimal("-0.4500"))]
    assert await alice_balance(h) == before - Decimal("0.45")


async def test_upstream_charging_above_the_quote_is_capped_or_logged(
    hm: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """DaisySim's own price view lags (its /apps still says $0.60) and /purchase
    charges $0.75. Operator mode: the user pays the $0.60 confirmed (the hold caps
    it), the operator's loss is logged. Own key: DaisySim debits the user's own
    wallet — the bot cannot stop that, but it asked for the pool at the price it
    saw, and it records and logs what happened."""
    caplog.set_level(logging.WARNING, logger="bot.services")
    h, alice = hm, hm.user()
    before = await alice_balance(h)
    assert before is not None
    confirm = await confirmation(alice, service_label("Signal", "$0.60"))
    h.sim.set_price("Signal", None, "0.7500", listed="0.6000")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    order = await alice.wait_for(_on(confirm.message_id, NUMBER), WAIT)
    [bought] = h.sim_activations()
    assert bought["price"] == "0.7500"  # what DaisySim charged its account
    [act] = await h.activations()
    engine = h.engine
    assert isinstance(engine, Engine)
    row = await engine.inspect.activation_row(act.id)
    assert row is not None and row.cost == Decimal("0.7500")  # recorded: DaisySim's charge
    if h.mode is FundingMode.OPERATOR:
        assert text("order_price", price="$0.60") in order.text
        assert act.price == Decimal("0.6000")
        assert await alice_balance(h) == before - Decimal("0.60")
        assert "upstream charged more than quoted (0.7500 for 0.6000)" in caplog.text
    else:
        assert act.price == Decimal("0.7500")  # the truth, as DaisySim charged it
        assert await alice_balance(h) == before - Decimal("0.75")
        assert "DaisySim charged 0.7500, above the confirmed 0.6000" in caplog.text


async def test_forged_or_stale_confirm_says_nothing_about_buying(hm: Harness) -> None:
    h, alice = hm, hm.user()
    await alice.send("/buy")
    listing = await alice.wait_for(text("buy_list_title"), WAIT)
    # Callback data the bot never showed, on the service list message.
    answer = await alice.press_data("buy:ok:sb_tg:-:zzzzz", listing.message_id)
    assert answer.text == plain("en", "cb_confirm_again")
    assert answer.text != plain("en", "cb_buying")
    shown = await alice.wait_for(_on(listing.message_id, CONFIRMING), WAIT)
    assert pattern("buy_confirm", name="Telegram 2", price="$0.45").search(shown.text)
    assert h.sim_activations() == []
    # A quote id that was never shown, and (operator mode) someone else's quote:
    # not Alice's to buy, and nothing is said about buying.
    forged = ["buy:q:999999"]
    if h.mode == FundingMode.OPERATOR:
        bobs = await h.engine.quote(BOB, "WhatsApp", None)
        forged.append(f"buy:q:{bobs.id}")
    for data in forged:
        answer = await alice.press_data(data, listing.message_id)
        assert answer.text == plain("en", "cb_stale"), data
    assert h.sim_activations() == []
    # A legacy Confirm (an older version's button) for another service shows its price.
    answer = await alice.press_data("buy:ok:WhatsApp:-:abcde", listing.message_id)
    assert answer.text == plain("en", "cb_confirm_again")
    whatsapp = await alice.wait_for(
        _on(listing.message_id, pattern("buy_confirm", price="$1.85")), WAIT
    )
    assert h.sim_activations() == []
    # The screen now shown is real: its Confirm buys, and says so.
    answer = await alice.press(CONFIRM, message_id=whatsapp.message_id)
    assert answer.text == plain("en", "cb_buying")
    await alice.wait_for(_on(listing.message_id, NUMBER), WAIT)
    [bought] = h.sim_activations()
    assert bought["app"] == "WhatsApp"


async def test_buy_with_a_search_word_opens_the_filtered_list(hm: Harness) -> None:
    alice = hm.user()
    await alice.send("/buy whatsapp")
    found = await alice.wait_for(pattern("buy_list_filtered"), WAIT)
    assert pattern("buy_list_filtered", query="whatsapp").search(found.text)
    assert [b for b in found.button_labels if b != button("btn_back")] == [
        service_label("WhatsApp", "$1.85"),
        service_label("WhatsApp 2", "$0.74"),
        service_label("WhatsApp 3", "$1.083", multi=True),
    ]
    await alice.send("/buy   Tele  ")
    tele = await alice.wait_for(pattern("buy_list_filtered", query="Tele"), WAIT)
    assert tele.button_labels[:2] == [service_label("Telegram", "$1.40"), TELEGRAM_2]
    await alice.send("/buy zzz")
    none = await alice.wait_for(pattern("buy_list_empty", query="zzz"), WAIT)
    assert none.has_button(button("btn_all_services"))
    await alice.press(button("btn_all_services"), message_id=none.message_id)
    await alice.wait_for(lambda m: m.message_id == none.message_id and
                         text("buy_list_title") in m.text, WAIT)
    # The filtered list is a normal list: its service opens the confirmation.
    await alice.press(service_label("WhatsApp 2", "$0.74"), message_id=found.message_id)
    await alice.wait_for(_on(found.message_id, CONFIRMING), WAIT)


async def test_credit_by_an_admin_in_own_key_mode_is_explained(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(FundingMode.OWN_KEY)
    admin, alice = h.user(ADMIN, "Admin"), h.user()
    for command in (f"/credit {ALICE} 5", "/debit 1 2", "/credit"):
        await admin.send(command)
        reply = await admin.wait_for(lambda m: True, WAIT)
        assert reply.text == plain("en", "admin_operator_only"), command
    await alice.send(f"/credit {ALICE} 5")
    refused = await alice.wait_for(text("not_allowed"), WAIT)
    assert refused.text == plain("en", "not_allowed")
