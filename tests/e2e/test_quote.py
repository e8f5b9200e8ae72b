"""What Confirm buys: the quoted pool, at fresh prices, never above the confirmed price.

Every test runs in both funding modes (operator: the bot's internal wallet pays via
the operator's key; own key: the user's own DaisySim wallet). The 5-minute catalogue
cache is *not* left to expire: a sell-out or a price rise between the confirmation
screen and the Confirm press must be seen anyway.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal

import pytest

from bot.config import FundingMode
from bot.sandbox.fake_telegram import ChatMessage, FakeUser
from bot.services.engine import Engine
from bot.telegram.texts import plain
from tests.e2e.conftest import (
    ADMIN,
    ALICE,
    OP_KEY,
    USER_KEY,
    WAIT,
    Harness,
    HarnessFactory,
)

MODES = [FundingMode.OPERATOR, FundingMode.OWN_KEY]
CONFIRM = re.compile("^✅ Confirm")


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
    await alice.wait_for("Choose a service", WAIT)
    await alice.press(service)
    if pool is not None:
        await alice.wait_for("Choose a pool", WAIT)
        await alice.press(pool)
    return await alice.wait_for("Confirm your purchase", WAIT)


async def test_quoted_cheapest_pool_sold_out_buys_nothing_and_shows_fresh_pools(
    hm: Harness,
) -> None:
    """The issue's case: Telegram 2 confirmed at $0.45 (cheapest), that pool sells
    out before Confirm; DaisySim's "cheapest" would now be the $0.60 pool."""
    h, alice = hm, hm.user()
    before = await alice_balance(h)
    confirm = await confirmation(alice, "Telegram 2 · from $0.45", re.compile("^⚡ Cheapest"))
    assert "Pool: 2266 (cheapest available)" in confirm.text and "Price: $0.45" in confirm.text
    h.sim.set_stock("sb_tg", "2266", 0)  # sold out; the bot's price cache still has it
    await alice.press(CONFIRM, message_id=confirm.message_id)
    oos = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "no numbers right now" in m.text, WAIT
    )
    assert "Pool 2266 of Telegram 2 has no numbers right now" in oos.text
    # The current pools with fresh prices; the sold-out one is not offered.
    assert oos.button_labels[:2] == [
        "⚡ Cheapest available · $0.60", "Pool 3109 · $0.60 · 980 left"
    ]
    assert not any(label.startswith("Pool 2266") for label in oos.button_labels)
    assert h.sim_activations() == [] and charges(h) == []  # nothing bought, nothing charged
    assert await alice_balance(h) == before
    # Picking the other pool shows its price; confirming that buys it.
    await alice.press(re.compile("^Pool 3109 "), message_id=oos.message_id)
    again = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Confirm your purchase" in m.text, WAIT
    )
    assert "Pool: 3109" in again.text and "Price: $0.60" in again.text
    await alice.press(CONFIRM, message_id=again.message_id)
    await alice.wait_for(lambda m: m.message_id == confirm.message_id and "Number:" in m.text,
                         WAIT)
    [bought] = h.sim_activations()
    assert (bought["pool"], bought["price"]) == ("3109", "0.6000")


async def test_quoted_pinned_pool_gone_from_fresh_apps_buys_nothing(hm: Harness) -> None:
    h, alice = hm, hm.user()
    confirm = await confirmation(alice, "WhatsApp 3 · from $1.083", re.compile("^Pool 3170 "))
    h.sim.core.services["sb_wa"].pools = [  # the pool disappears upstream
        p for p in h.sim.core.services["sb_wa"].pools if p.provider_id != "3170"
    ]
    await alice.press(CONFIRM, message_id=confirm.message_id)
    oos = await alice.wait_for("Pool 3170 of WhatsApp 3 has no numbers right now", WAIT)
    assert oos.message_id == confirm.message_id
    assert not any(label.startswith("Pool 3170") for label in oos.button_labels)
    assert oos.has_button("Pool 3109 · $1.083 · 4000 left")
    assert h.sim_activations() == [] and charges(h) == []


async def test_price_rise_of_the_quoted_pool_asks_again(hm: Harness) -> None:
    h, alice = hm, hm.user()
    before = await alice_balance(h)
    assert before is not None
    confirm = await confirmation(alice, "Telegram 2 · from $0.45", re.compile("^⚡ Cheapest"))
    h.sim.set_price("sb_tg", "2266", "0.5500")  # within the 5-minute cache
    answer = await alice.press(CONFIRM, message_id=confirm.message_id)
    assert answer.text == plain("en", "cb_buying")  # a purchase was going to be attempted
    changed = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "changed to" in m.text, WAIT
    )
    assert "The price of Telegram 2 changed to $0.55" in changed.text
    assert "Pool: 2266 (cheapest available)" in changed.text
    assert h.sim_activations() == [] and charges(h) == []
    assert await alice_balance(h) == before
    await alice.press("✅ Confirm · $0.55", message_id=changed.message_id)
    order = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Number:" in m.text, WAIT
    )
    assert "Price: $0.55" in order.text
    [bought] = h.sim_activations()
    assert (bought["pool"], bought["price"]) == ("2266", "0.5500")
    assert charges(h) == [(bought["id"], Decimal("-0.5500"))]
    assert await alice_balance(h) == before - Decimal("0.55")


async def test_quoted_pool_rising_above_another_asks_again_for_the_new_cheapest(
    hm: Harness,
) -> None:
    h, alice = hm, hm.user()
    confirm = await confirmation(alice, "Telegram 2 · from $0.45", re.compile("^⚡ Cheapest"))
    h.sim.set_price("sb_tg", "2266", "0.7000")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    changed = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "changed to $0.60" in m.text, WAIT
    )
    assert "Pool: 3109 (cheapest available)" in changed.text
    assert h.sim_activations() == []
    await alice.press("✅ Confirm · $0.60", message_id=changed.message_id)
    await alice.wait_for(lambda m: m.message_id == confirm.message_id and "Number:" in m.text,
                         WAIT)
    [bought] = h.sim_activations()
    assert (bought["pool"], bought["price"]) == ("3109", "0.6000")


async def test_single_provider_price_rise_asks_again_without_waiting_for_the_cache(
    hm: Harness,
) -> None:
    h, alice = hm, hm.user()
    confirm = await confirmation(alice, "Signal · $0.60")
    h.sim.set_price("Signal", None, "0.8000")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    changed = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "changed to $0.80" in m.text, WAIT
    )
    assert changed.has_button("✅ Confirm · $0.80")
    assert h.sim_activations() == [] and charges(h) == []


async def test_cheapest_buys_the_quoted_pool_even_if_another_became_cheaper(
    hm: Harness,
) -> None:
    """The confirmation named a pool (2266 at $0.45): that pool is what is bought
    — DaisySim is told which — not whatever its own "cheapest" is at that moment."""
    h, alice = hm, hm.user()
    before = await alice_balance(h)
    assert before is not None
    confirm = await confirmation(alice, "Telegram 2 · from $0.45", re.compile("^⚡ Cheapest"))
    h.sim.set_price("sb_tg", "3109", "0.4000")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    order = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Number:" in m.text, WAIT
    )
    assert "Price: $0.45" in order.text
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
    confirm = await confirmation(alice, "Signal · $0.60")
    h.sim.set_price("Signal", None, "0.7500", listed="0.6000")
    await alice.press(CONFIRM, message_id=confirm.message_id)
    order = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Number:" in m.text, WAIT
    )
    [bought] = h.sim_activations()
    assert bought["price"] == "0.7500"  # what DaisySim charged its account
    [act] = await h.activations()
    engine = h.engine
    assert isinstance(engine, Engine)
    row = await engine.repos.activations.get(act.id)
    assert row is not None and row.cost == Decimal("0.7500")  # recorded: DaisySim's charge
    if h.mode is FundingMode.OPERATOR:
        assert "Price: $0.60" in order.text and act.price == Decimal("0.6000")
        assert await alice_balance(h) == before - Decimal("0.60")
        assert "upstream charged more than quoted (0.7500 for 0.6000)" in caplog.text
    else:
        assert act.price == Decimal("0.7500")  # the truth, as DaisySim charged it
        assert await alice_balance(h) == before - Decimal("0.75")
        assert "DaisySim charged 0.7500, above the confirmed 0.6000" in caplog.text


async def test_forged_or_stale_confirm_says_nothing_about_buying(hm: Harness) -> None:
    h, alice = hm, hm.user()
    await alice.send("/buy")
    listing = await alice.wait_for("Choose a service", WAIT)
    # Callback data the bot never showed, on the service list message.
    answer = await alice.press_data("buy:ok:sb_tg:-:zzzzz", listing.message_id)
    assert answer.text == plain("en", "cb_confirm_again")
    assert answer.text != plain("en", "cb_buying")
    shown = await alice.wait_for(
        lambda m: m.message_id == listing.message_id and "Confirm your purchase" in m.text, WAIT
    )
    assert "Telegram 2" in shown.text and "Price: $0.45" in shown.text
    assert h.sim_activations() == []
    # A remembered screen's nonce with another service: not that screen either.
    data = shown.button(CONFIRM).callback_data
    assert data is not None
    nonce = data.rsplit(":", 1)[1]
    answer = await alice.press_data(f"buy:ok:WhatsApp:-:{nonce}", listing.message_id)
    assert answer.text == plain("en", "cb_confirm_again")
    whatsapp = await alice.wait_for(
        lambda m: m.message_id == listing.message_id and "Price: $1.85" in m.text, WAIT
    )
    assert h.sim_activations() == []
    # The screen now shown is real: its Confirm buys, and says so.
    answer = await alice.press(CONFIRM, message_id=whatsapp.message_id)
    assert answer.text == plain("en", "cb_buying")
    await alice.wait_for(lambda m: m.message_id == listing.message_id and "Number:" in m.text,
                         WAIT)
    [bought] = h.sim_activations()
    assert bought["app"] == "WhatsApp"


async def test_buy_with_a_search_word_opens_the_filtered_list(hm: Harness) -> None:
    alice = hm.user()
    await alice.send("/buy whatsapp")
    found = await alice.wait_for("Services matching", WAIT)
    assert "Services matching “whatsapp”" in found.text
    assert [b for b in found.button_labels if b != "⬅️ Back"] == [
        "WhatsApp · $1.85", "WhatsApp 2 · $0.74", "WhatsApp 3 · from $1.083"
    ]
    await alice.send("/buy   Tele  ")
    tele = await alice.wait_for("Services matching “Tele”", WAIT)
    assert tele.button_labels[:2] == ["Telegram · $1.40", "Telegram 2 · from $0.45"]
    await alice.send("/buy zzz")
    none = await alice.wait_for("No service matches “zzz”", WAIT)
    assert none.has_button("⬅️ All services")
    await alice.press("⬅️ All services", message_id=none.message_id)
    await alice.wait_for(lambda m: m.message_id == none.message_id and
                         "Choose a service" in m.text, WAIT)
    # The filtered list is a normal list: its service opens the confirmation.
    await alice.press("WhatsApp 2 · $0.74", message_id=found.message_id)
    await alice.wait_for(lambda m: m.message_id == found.message_id and
                         "Confirm your purchase" in m.text, WAIT)


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
    refused = await alice.wait_for("not allowed", WAIT)
    assert refused.text == plain("en", "not_allowed")
