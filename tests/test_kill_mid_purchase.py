"""``kill -9`` while a purchase is on the wire (issue 9.8, last bullet).

Regression: the pressed message stayed "⏳ Buying…" for good while, after the
restart, the order arrived as a new message. Now the pressed message's ids are
stored with the purchase (before it is sent), so the reconciliation after the
restart turns that very message into the order (and a short notice says the
purchase went through). The bot runs as a subprocess (``python -m bot run``)
against the in-process fake Bot API and simulator, and is really SIGKILLed.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from bot.sandbox.simulator import Simulator, start_simulator
from tests.bench.harness import BotProcess, TimedFakeTelegram, wait_ready
from tests.texts import pattern, service_button, text

TOKEN = "4242:kill-mid-purchase-token-xyz"
OP_KEY = "sk_killtest_operator_0123456789abcdef"
ADMIN = 1000
ALICE = 1
WAIT = 30.0  # safety net for event-driven waits (seconds)
BUYING = pattern("buy_buying")  # "⏳ Buying a … number…"
NUMBER = pattern("order_number")


async def _until(predicate: object, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_pressed_buying_screen_becomes_the_order_after_a_kill(tmp_path: Path) -> None:
    sim = Simulator(cancel_lock=180.0)
    sim.add_account(OP_KEY, Decimal("100"), email="operator@example.com")
    server = await start_simulator(sim, "127.0.0.1", 0)
    fake = TimedFakeTelegram(TOKEN)
    await fake.start()
    bot = BotProcess.configure(
        tmp_path, telegram_url=fake.url, daisysim_url=server.base_url,
        db_path=tmp_path / "bot.sqlite3", admin_ids=[ADMIN], token=TOKEN, api_key=OP_KEY,
        env={"DAISYSIM_TIMEOUT_SECONDS": "20"},
    )
    try:
        bot.start()
        await wait_ready(fake, bot)
        alice = fake.user(ALICE, first_name="Alice")
        await alice.send("/start")
        await alice.wait_for(text("menu_title"), WAIT)
        admin = fake.user(ADMIN, first_name="Admin")
        await admin.send(f"/credit {ALICE} 10")
        await admin.wait_for(pattern("admin_credited", user_id=ALICE), WAIT)
        await alice.send("/buy")
        await alice.wait_for(text("buy_list_title"), WAIT)
        await alice.press(service_button("Signal", "$0.60"))
        confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
        pressed = confirm.message_id
        # DaisySim sits on the purchase for 2 s, then carries it out anyway.
        sim.add_fault("purchase", latency=2.0)
        alice.mark()
        await alice.press_nowait(pattern("btn_confirm"), message_id=pressed)
        await alice.wait_for(
            lambda m: m.message_id == pressed and BUYING.search(m.text) is not None, WAIT
        )
        await _until(lambda: sim.stats.count(OP_KEY, "purchase") >= 1)
        bot.kill9()  # the request is on the wire
        assert BUYING.search(alice.message(pressed).text)
        await _until(lambda: bool(sim.state()["activations"]))  # bought upstream
        [bought] = sim.state()["activations"]

        bot.start()
        await wait_ready(fake, bot)
        order = await alice.wait_for(
            lambda m: m.message_id == pressed and NUMBER.search(m.text) is not None, WAIT
        )
        assert bought["phone_number"] in order.text and not BUYING.search(order.text)
        notice = await alice.wait_for(
            pattern("notify_purchased", name="Signal", phone=bought["phone_number"]), WAIT
        )
        assert notice.message_id != pressed
        # No second order message: the pressed one is the order.
        orders = [m for m in alice.bot_messages() if NUMBER.search(m.text)]
        assert [m.message_id for m in orders] == [pressed]
        assert sim.invariant_violations() == []
    finally:
        await asyncio.to_thread(bot.stop)  # the fake must answer its last calls
        await fake.close()
        await server.close()
