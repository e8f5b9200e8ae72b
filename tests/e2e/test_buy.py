"""Buying: single provider, sb_* pools (pinned / cheapest), out of stock, errors."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import pytest

from bot.config import FundingMode
from bot.sandbox.sim_state import Service as SimService
from bot.services.api import ActivationState
from bot.telegram.texts import plain
from tests.e2e.conftest import ADMIN, ALICE, OP_KEY, USER_KEY, WAIT, Harness, HarnessFactory


async def test_start_menu_and_commands(h: Harness) -> None:
    alice = h.user()
    await alice.send("/start")
    menu = await alice.wait_for("What would you like to do?", WAIT)
    assert "Hi Alice" in menu.text
    labels = menu.button_labels
    assert "🛒 Buy a number" in labels and "💰 Wallet" in labels and "📜 History" in labels
    assert "🔑 API key" not in labels  # operator mode: no key management
    commands = [c["command"] for c in h.fake.commands_for(ALICE)]
    assert commands[:3] == ["start", "buy", "active"] and "key" not in commands
    await alice.press("❓ Help")
    help_msg = await alice.wait_for("How it works", WAIT)
    assert help_msg.message_id == menu.message_id  # edited in place


async def test_single_provider_buy(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for("Choose a service", WAIT)
    assert "Signal · $0.60" in listing.button_labels
    assert "⬅️ Back" in listing.button_labels
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    assert confirm.message_id == listing.message_id  # edited in place
    assert "Price: $0.60" in confirm.text
    assert "$10.00 → $9.40" in confirm.text
    answer = await alice.press(re.compile("^✅ Confirm"))
    assert answer.text == "Buying…"
    order = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Number:" in m.text, WAIT
    )
    [act] = await h.activations()
    assert act.state == ActivationState.WAITING and act.phone
    assert act.phone in order.entity_texts("code")  # number in monospace
    copy = order.button("📋 Copy number")
    assert copy.kind == "copy_text" and copy.copy_text == act.phone
    assert not order.has_button("❌ Cancel & refund")  # not before the 180 s lock
    assert "waiting for the SMS" in order.text and "Signal" in order.text
    [sim_act] = h.sim_activations()
    assert sim_act["app"] == "Signal" and sim_act["account"] == OP_KEY
    wallet = await h.engine.wallet(ALICE)
    assert wallet.balance == Decimal("9.40")


async def test_sb_pinned_pool_and_cheapest(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.send("whatsapp 3")
    await alice.wait_for("Services matching", WAIT)
    await alice.press("WhatsApp 3 · from $1.083")
    pools = await alice.wait_for("Choose a pool", WAIT)
    labels = pools.button_labels
    assert labels[0] == "⚡ Cheapest available · $1.083"
    assert "Pool 2266 · $1.092 · 4296 left" in labels
    await alice.press(re.compile(r"^Pool 2266 "))
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    assert "Pool: 2266" in confirm.text and "Price: $1.092" in confirm.text
    await alice.press(re.compile("^✅ Confirm"))
    order = await alice.wait_for(lambda m: "Number:" in m.text, WAIT)
    assert "Pool: 2266" in order.text
    assert h.sim_activations()[-1]["pool"] == "2266"

    # Buy again → a NEW confirmation message (fresh quote); then the cheapest pool.
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("🕘 WhatsApp 3 · from $1.083")  # recently bought: first page, first
    await alice.wait_for("Choose a pool", WAIT)
    await alice.press(re.compile("^⚡ Cheapest available"))
    confirm2 = await alice.wait_for("Confirm your purchase", WAIT)
    assert "cheapest available" in confirm2.text and "$1.083" in confirm2.text
    await alice.press(re.compile("^✅ Confirm"))
    await alice.wait_for(lambda m: m.message_id == confirm2.message_id and "Number:" in m.text,
                         WAIT)
    acts = h.sim_activations()
    assert [a["pool"] for a in acts] == ["2266", "3109"]


async def test_recent_first_filter_and_paging(h: Harness) -> None:
    alice = h.user()
    await h.buy(alice, "Telegram · $1.40")
    await alice.send("/buy")
    listing = await alice.wait_for("Choose a service", WAIT)
    assert listing.button_labels[0] == "🕘 Telegram · $1.40"  # recently bought first
    # The 7 demo services fit on one page (8 per page): no pager.
    assert len([b for b in listing.button_labels if "$" in b]) == 7
    assert not listing.has_button("Next ▶️") and "1/2" not in listing.button_labels
    # Typing while the list is shown filters it.
    await alice.send("what")
    filtered = await alice.wait_for("Services matching", WAIT)
    names = [b for b in filtered.button_labels if "$" in b]
    assert names and all("WhatsApp" in b for b in names)
    await alice.send("zzzz")
    empty = await alice.wait_for("No service matches", WAIT)
    # The text says what to tap, and the button is there (it drops the filter).
    assert "All services" in empty.text
    assert empty.button_labels == ["⬅️ All services", "🏠 Menu"]
    await alice.press("⬅️ All services", message_id=empty.message_id)
    everything = await alice.wait_for(
        lambda m: m.message_id == empty.message_id and "Choose a service" in m.text, WAIT
    )
    assert len([b for b in everything.button_labels if "$" in b]) == 7
    await alice.send("/cancel")
    await alice.wait_for("Okay, stopped", WAIT)
    await alice.send("what")  # outside the flow: not a filter any more
    await alice.wait_for("I didn't get that", WAIT)


async def test_out_of_stock_offers_other_pools(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("WhatsApp 3 · from $1.083")
    await alice.wait_for("Choose a pool", WAIT)
    await alice.press(re.compile(r"^Pool 3109 "))
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    h.sim.set_stock("sb_wa", "3109", 0)  # sold out between the quote and the tap
    await alice.press(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    oos = await alice.wait_for("has no numbers right now", WAIT)
    assert "Pool 3109" in oos.text
    assert not any(b.startswith("Pool 3109") for b in oos.button_labels)
    assert oos.has_button(re.compile(r"^Pool 2266 ")) and oos.has_button(re.compile("^⚡"))
    await alice.press(re.compile(r"^Pool 2266 "), message_id=oos.message_id)
    confirm2 = await alice.wait_for(
        lambda m: "Confirm your purchase" in m.text and m.message_id == oos.message_id, WAIT
    )
    await alice.press(re.compile("^✅ Confirm"), message_id=confirm2.message_id)
    await alice.wait_for(lambda m: m.message_id == oos.message_id and "Number:" in m.text, WAIT)
    pools = [a["pool"] for a in h.sim_activations()]
    assert pools == ["2266"]
    acts = await h.activations()
    assert {a.state for a in acts} == {ActivationState.WAITING, ActivationState.FAILED} or [
        a.state for a in acts
    ] == [ActivationState.WAITING]


async def test_double_tap_on_confirm_buys_once(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    first = await alice.press_nowait(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    second = await alice.press_nowait(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    answers = await asyncio.gather(
        h.fake.wait_callback_answer(first, WAIT), h.fake.wait_callback_answer(second, WAIT)
    )
    assert sorted(a.text or "" for a in answers) == sorted(
        ["Buying…", "This purchase is already being made — one tap is enough."]
    )
    await alice.wait_for(lambda m: "Number:" in m.text, WAIT)
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
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Telegram · $1.40")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    await h.engine.admin_adjust(ADMIN, ALICE, Decimal("-1.50"), "correction")
    await alice.press(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    msg = await alice.wait_for("Not enough balance", WAIT)
    assert msg.message_id == confirm.message_id
    assert "Not enough balance: you have $0.50, this costs $1.40" in msg.text
    assert f"your ID is {ALICE}" in msg.text and str(ALICE) in msg.entity_texts("code")
    assert msg.has_button("💰 Wallet") and msg.has_button("⬅️ Pick another service")
    assert not msg.has_button(re.compile("Confirm"))
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
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    msg = await alice.wait_for("Not enough balance", WAIT)
    assert "Not enough balance: you have $0.50, this costs $0.60" in msg.text
    assert "Ask an admin to top up your wallet — your ID is 1" in msg.text
    assert "-$0.10" not in msg.text and "Confirm your purchase" not in msg.text
    assert not msg.has_button(re.compile("Confirm"))
    assert msg.has_button("⬅️ Pick another service") and msg.has_button("💰 Wallet")
    # A forged Confirm for this screen re-checks and still refuses: nothing is bought,
    # and no "Buying…" is said.
    answer = await alice.press_data("buy:ok:Signal:-:abcde", msg.message_id)
    assert answer.text == plain("en", "cb_confirm_again")
    await h.settle()
    again = alice.message(msg.message_id)
    assert "Not enough balance" in again.text and not again.has_button(re.compile("Confirm"))
    assert h.sim_activations() == [] and await h.activations() == []
    # Multi-pool services: Back to the pools too (another pool may be cheaper).
    await alice.press("⬅️ Pick another service", message_id=msg.message_id)
    await alice.wait_for(lambda m: m.message_id == msg.message_id and
                         "Choose a service" in m.text, WAIT)
    await alice.press("WhatsApp 3 · from $1.083", message_id=msg.message_id)
    await alice.wait_for("Choose a pool", WAIT)
    await alice.press(re.compile("^⚡ Cheapest"), message_id=msg.message_id)
    pooled = await alice.wait_for(lambda m: m.message_id == msg.message_id and
                                  "Not enough balance" in m.text, WAIT)
    assert pooled.has_button("⬅️ Back") and pooled.has_button("⬅️ Pick another service")
    # Topped up: the same service now shows a normal confirmation.
    await h.credit(ALICE, "1")
    await alice.press("⬅️ Pick another service", message_id=msg.message_id)
    await alice.wait_for(lambda m: m.message_id == msg.message_id and
                         "Choose a service" in m.text, WAIT)
    await alice.press("Signal · $0.60", message_id=msg.message_id)
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    assert "$1.50 → $0.90" in confirm.text and confirm.has_button("✅ Confirm · $0.60")


async def test_own_key_insufficient_balance_says_top_up_daisysim(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(FundingMode.OWN_KEY)
    h.sim.update_account(USER_KEY, balance=Decimal("0.50"))
    alice = h.user()
    await h.engine.link_key(ALICE, USER_KEY)
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    msg = await alice.wait_for("Not enough balance", WAIT)
    assert "you have $0.50, this costs $0.60" in msg.text
    assert "Top up your DaisySim wallet" in msg.text and "your ID" not in msg.text
    assert not msg.has_button(re.compile("Confirm"))


async def test_service_list_pages_hold_eight(h: Harness) -> None:
    for i in range(3):  # 7 demo services + 3 = 10: two pages of 8
        code = f"Extra{i}"
        h.sim.core.services[code] = SimService(code, f"Zeta {i}", price=Decimal("0.3000"))
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for("Choose a service", WAIT)
    assert len([b for b in listing.button_labels if "$" in b]) == 8
    assert "1/2" in listing.button_labels
    await alice.press("Next ▶️")
    page2 = await alice.wait_for(lambda m: "2/2" in m.button_labels, WAIT)
    assert [b for b in page2.button_labels if "$" in b] == ["Zeta 1 · $0.30", "Zeta 2 · $0.30"]


async def test_conversation_timeout_edits_the_menu(make_harness: HarnessFactory) -> None:
    h = await make_harness(conversation_timeout_seconds=0.3)
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for("Choose a service", WAIT)
    timed_out = await alice.wait_for("This menu timed out", WAIT)
    assert timed_out.message_id == listing.message_id and timed_out.buttons == []


async def test_price_change_between_quote_and_confirm_asks_again(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    h.sim.core.services["Signal"].price = Decimal("0.8000")  # no control API for prices
    await h.advance(301)  # the engine's 5-minute price cache expires
    await alice.press(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    changed = await alice.wait_for("changed to", WAIT)
    assert changed.message_id == confirm.message_id
    assert "Signal" in changed.text and "$0.80" in changed.text
    assert h.sim_activations() == []  # nothing bought at an unconfirmed price
    await alice.press("✅ Confirm · $0.80", message_id=changed.message_id)
    order = await alice.wait_for(lambda m: m.message_id == confirm.message_id and
                                 "Number:" in m.text, WAIT)
    assert "Price: $0.80" in order.text
    [sim_act] = h.sim_activations()
    assert sim_act["price"] == "0.8000"


async def test_service_removed_upstream(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for("Choose a service", WAIT)
    h.sim.remove_service("Telegram")
    await h.advance(301)
    await alice.press("Telegram · $1.40", message_id=listing.message_id)
    gone = await alice.wait_for("not available anymore", WAIT)
    assert gone.has_button("🔁 Try again")
    assert h.sim_activations() == []


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 429, "code": "RATE_LIMITED",
          "message": "Too many purchase attempts. Please wait 43s."}, "try again in 43 s"),
        ({"status": 502, "code": "PROVIDER_ERROR"}, "DaisySim is not responding right now"),
        ({"status": 403, "code": "ACCOUNT_LOCKED", "message": "Account locked."},
         "temporarily locked"),
    ],
)
async def test_upstream_errors_have_their_own_message(
    h: Harness, fault: dict[str, object], expected: str
) -> None:
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    h.sim.add_fault("purchase", **fault)  # type: ignore[arg-type]
    await alice.press(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    msg = await alice.wait_for(expected, WAIT)
    assert msg.message_id == confirm.message_id and msg.buttons
    await h.settle()
    assert (await h.engine.wallet(ALICE)).balance == Decimal("10.00")  # nothing charged
    assert [a for a in h.sim_activations() if not a["refunded"]] == []


async def test_back_buttons_walk_the_flow(h: Harness) -> None:
    alice = h.user()
    await alice.send("/buy")
    listing = await alice.wait_for("Choose a service", WAIT)
    await alice.send("whatsapp 3")
    filtered = await alice.wait_for("Services matching", WAIT)
    await alice.press("WhatsApp 3 · from $1.083", message_id=filtered.message_id)
    await alice.wait_for("Choose a pool", WAIT)
    await alice.press(re.compile("^⚡ Cheapest"))
    await alice.wait_for("Confirm your purchase", WAIT)
    await alice.press("⬅️ Back")
    await alice.wait_for(lambda m: m.message_id == filtered.message_id and "Choose a pool"
                         in m.text, WAIT)
    await alice.press("⬅️ Back")
    # Back to the list keeps the filter typed for this message.
    await alice.wait_for(lambda m: m.message_id == filtered.message_id and "Services matching"
                         in m.text, WAIT)
    await alice.press("⬅️ Back", message_id=filtered.message_id)
    home = await alice.wait_for("What would you like to do?", WAIT)
    assert home.message_id == filtered.message_id
    assert alice.message(listing.message_id).text.startswith("🛒 Choose a service")


async def test_confirm_from_before_a_restart_shows_the_price_again(h: Harness) -> None:
    """A confirmation screen the bot no longer remembers (e.g. shown before a
    deploy) never buys: the current price is shown and confirmed again."""
    alice = h.user()
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    assert "Price: $0.60" in confirm.text
    h.sim.core.services["Signal"].price = Decimal("0.8000")  # upstream price rises
    await h.restart_bot()
    await h.engine.list_services(ALICE)  # (new process: fresh price view)
    await alice.press(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    again = await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and "Price: $0.80" in m.text, WAIT
    )
    assert h.sim_activations() == []  # nothing bought at a price not shown
    await alice.press(re.compile(r"^✅ Confirm · \$0\.80"), message_id=again.message_id)
    await alice.wait_for(lambda m: m.message_id == confirm.message_id and "Number:" in m.text,
                         WAIT)
    [bought] = h.sim_activations()
    assert Decimal(str(bought["price"])) == Decimal("0.8")
    assert (await h.engine.wallet(ALICE)).balance == Decimal("9.20")
