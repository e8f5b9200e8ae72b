"""The web chat's side of Telegram Stars payments: an invoice card with a Pay button
that stands in for Telegram's payment sheet (``POST /api/pay``), and the outcome
(paid / declined with the bot's error_message / expired) pushed to the page; plus the
page in headless Chromium (skipped without Debian's chromium, like
test_webchat_browser.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import telegram
from aiohttp.test_utils import TestClient, TestServer
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice

from bot.clock import VirtualClock
from bot.sandbox.fake_telegram import FakeTelegram
from bot.sandbox.webchat import STATIC_DIR, make_webchat_app, start_webchat

TOKEN = "424242:WEBCHAT-pay-token"
ALICE, BOB = 501, 502
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip


@pytest_asyncio.fixture
async def clock() -> VirtualClock:
    return VirtualClock()


@pytest_asyncio.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(TOKEN, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(TOKEN, base_url=fake.api_base) as b:
        yield b


@pytest_asyncio.fixture
async def client(fake: FakeTelegram) -> AsyncIterator[TestClient]:
    app = make_webchat_app(fake, users=[(ALICE, "Alice"), (BOB, "Bob")])
    async with TestClient(TestServer(app)) as c:
        await fake.user(ALICE).send("/start")
        await fake.user(BOB).send("/start")
        yield c


class Cashier:
    """A minimal bot: answers every pre_checkout_query (declines payloads starting with
    "bad:" with an error message, ignores "slow:" ones)."""

    def __init__(self, bot: telegram.Bot) -> None:
        self.bot = bot
        self.offset = 0
        self.payments: list[telegram.SuccessfulPayment] = []

    async def run(self) -> None:
        while True:
            updates = await self.bot.get_updates(offset=self.offset, timeout=1)
            for u in updates:
                self.offset = u.update_id + 1
                q = u.pre_checkout_query
                if q is not None and q.invoice_payload.startswith("bad:"):
                    await q.answer(ok=False, error_message="This top-up has expired")
                elif q is not None and not q.invoice_payload.startswith("slow:"):
                    await q.answer(ok=True)
                if u.message is not None and u.message.successful_payment is not None:
                    self.payments.append(u.message.successful_payment)


@pytest_asyncio.fixture
async def cashier(bot: telegram.Bot) -> AsyncIterator[Cashier]:
    c = Cashier(bot)
    task = asyncio.create_task(c.run())
    try:
        yield c
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, telegram.error.TelegramError):
            await task


async def invoice(bot: telegram.Bot, payload: str = "topup:1", **kw: Any) -> telegram.Message:
    return await bot.send_invoice(
        ALICE, "Top up $5", "Adds $5.00 to your wallet", payload, "XTR",
        [LabeledPrice("$5.00", 250)], **kw,
    )  # fmt: skip


async def payment_events(
    fake: FakeTelegram, since: int, count: int = 1, user: int = ALICE
) -> list[dict[str, Any]]:
    for _ in range(300):
        events = [e.to_json() for e in fake.events_since(user, since) if e.kind == "payment"]
        if len(events) >= count:
            return events
        await asyncio.sleep(0.02)
    raise AssertionError("no payment event")


async def test_transcript_carries_the_invoice(
    client: TestClient, fake: FakeTelegram, bot: telegram.Bot
) -> None:
    msg = await invoice(bot)
    data = await (await client.get("/api/transcript", params={"user_id": ALICE})).json()
    card = next(m for m in data["messages"] if m["message_id"] == msg.message_id)
    assert card["invoice"] == {
        "title": "Top up $5",
        "description": "Adds $5.00 to your wallet",
        "start_parameter": "",
        "currency": "XTR",
        "total_amount": 250,
    }
    assert card["invoice_paid"] is False and card["from_bot"] is True


async def test_pay_endpoint_paid(
    client: TestClient, fake: FakeTelegram, bot: telegram.Bot, cashier: Cashier
) -> None:
    msg = await invoice(bot)
    since = fake.seq
    resp = await client.post("/api/pay", json={"user_id": ALICE, "message_id": msg.message_id})
    assert resp.status == 200
    query_id = (await resp.json())["query_id"]
    events = await payment_events(fake, since)
    assert events[0]["status"] == "paid" and events[0]["query_id"] == query_id
    assert events[0]["message_id"] == msg.message_id and events[0]["total_amount"] == 250
    assert fake.pre_checkout(query_id).status == "paid"
    data = await (await client.get("/api/transcript", params={"user_id": ALICE})).json()
    card = next(m for m in data["messages"] if m["message_id"] == msg.message_id)
    assert card["invoice_paid"] is True
    service = data["messages"][-1]
    assert service["successful_payment"]["telegram_payment_charge_id"] == events[0]["charge_id"]
    # paid once
    resp = await client.post("/api/pay", json={"user_id": ALICE, "message_id": msg.message_id})
    assert resp.status == 409
    assert (await resp.json())["error"] == "that invoice is paid already"
    for _ in range(100):
        if cashier.payments:
            break
        await asyncio.sleep(0.02)
    assert [p.telegram_payment_charge_id for p in cashier.payments] == [events[0]["charge_id"]]


async def test_pay_endpoint_declined_shows_the_bots_message(
    client: TestClient, fake: FakeTelegram, bot: telegram.Bot, cashier: Cashier
) -> None:
    msg = await invoice(bot, payload="bad:1")
    since = fake.seq
    resp = await client.post("/api/pay", json={"user_id": ALICE, "message_id": msg.message_id})
    assert resp.status == 200
    events = await payment_events(fake, since)
    assert (events[0]["status"], events[0]["error_message"]) == (
        "declined",
        "This top-up has expired",
    )
    assert fake.charges == {}


async def test_pay_endpoint_expires_after_10_seconds_of_the_fakes_clock(
    client: TestClient, fake: FakeTelegram, bot: telegram.Bot, clock: VirtualClock
) -> None:
    msg = await invoice(bot, payload="slow:1")  # no bot answers at all
    since = fake.seq
    resp = await client.post("/api/pay", json={"user_id": ALICE, "message_id": msg.message_id})
    query_id = (await resp.json())["query_id"]
    # a second press while the first waits for the bot
    resp = await client.post("/api/pay", json={"user_id": ALICE, "message_id": msg.message_id})
    assert resp.status == 409
    await asyncio.sleep(0.05)
    clock.advance(10.5)
    events = await payment_events(fake, since)
    assert events[0]["status"] == "expired" and events[0]["query_id"] == query_id
    assert fake.charges == {}


async def test_pay_endpoint_validates(
    client: TestClient, fake: FakeTelegram, bot: telegram.Bot
) -> None:
    msg = await invoice(bot)
    text = await bot.send_message(ALICE, "not an invoice")
    cases = [
        ({"user_id": 999, "message_id": msg.message_id}, 404),
        ({"user_id": ALICE}, 400),
        ({"user_id": ALICE, "message_id": 9999}, 404),
        ({"user_id": ALICE, "message_id": text.message_id}, 400),
        ({"user_id": BOB, "message_id": msg.message_id}, 404),  # not in Bob's chat
    ]
    for body, status in cases:
        resp = await client.post("/api/pay", json=body)
        assert resp.status == status, body
    resp = await client.post(
        "/api/pay", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert not fake.state.stars.queries


def test_page_renders_invoices_and_the_pay_button() -> None:
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    for hook in ('"invoice"', '"invoice-title"', '"invoice-price"', '"invoice-status"',
                 '"pay-button"', '"service-message"', '"/api/pay"'):  # fmt: skip
        assert hook in script
    assert "innerHTML" not in script


# --------------------------------------------------------------------------------------
# In the browser
# --------------------------------------------------------------------------------------


@pytest.mark.browser
async def test_invoice_card_and_pay_in_the_browser(
    fake: FakeTelegram, bot: telegram.Bot, cashier: Cashier, clock: VirtualClock
) -> None:
    if os.environ.get("DAISYBOT_SKIP_BROWSER"):
        pytest.skip("DAISYBOT_SKIP_BROWSER is set")
    if not CHROMIUM.exists():  # noqa: ASYNC240 (one stat, before anything runs)
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)")
    from playwright.async_api import async_playwright, expect

    await fake.user(ALICE, "Alice").send("/start")
    app = make_webchat_app(fake, users=[(ALICE, "Alice")])
    url, close = await start_webchat(app)
    own_button = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Pay ⭐250", pay=True)],
            [InlineKeyboardButton("Cancel", callback_data="topup:cancel")],
        ]
    )
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 900, "height": 900})
                page.set_default_timeout(15_000)
                await page.goto(f"{url}/?user={ALICE}")
                await invoice(bot, payload="topup:1")
                card = page.get_by_test_id("invoice").last
                await expect(card.get_by_test_id("invoice-title")).to_have_text("Top up $5")
                await expect(card.get_by_test_id("invoice-price")).to_have_text("⭐ 250")
                await expect(card).to_contain_text("Adds $5.00 to your wallet")
                pay = page.get_by_test_id("pay-button").last
                await expect(pay).to_have_text("Pay ⭐ 250")
                await pay.click()
                await expect(card.get_by_test_id("invoice-status")).to_have_text("✅ Paid")
                await expect(page.get_by_test_id("service-message").last).to_have_text(
                    "You paid ⭐ 250"
                )
                await expect(page.get_by_test_id("pay-button").last).to_be_disabled()

                # the bot declines: its error_message is shown
                await invoice(bot, payload="bad:2", reply_markup=own_button)
                await expect(page.get_by_test_id("invoice")).to_have_count(2)
                pay = page.get_by_test_id("pay-button").last
                await expect(pay).to_have_text("Pay ⭐250")  # the bot's own Pay button
                await pay.click()
                await expect(page.get_by_test_id("alert-text")).to_have_text(
                    "This top-up has expired"
                )
                await expect(
                    page.get_by_test_id("invoice").last.get_by_test_id("invoice-status")
                ).to_have_text("❌ Payment declined: This top-up has expired")
                await page.get_by_test_id("alert-ok").click()

                # nobody answers: after 10 s (the fake's clock) the payment fails
                await invoice(bot, payload="slow:3")
                await expect(page.get_by_test_id("invoice")).to_have_count(3)
                await page.get_by_test_id("pay-button").last.click()
                status = page.get_by_test_id("invoice").last.get_by_test_id("invoice-status")
                await expect(status).to_have_attribute("data-status", "pending")
                clock.advance(11)
                await expect(status).to_have_attribute("data-status", "expired")
                await expect(page.get_by_test_id("alert-text")).to_contain_text("10 seconds")
                await page.get_by_test_id("alert-ok").click()
                assert len(fake.charges) == 1
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "webchat-invoices.png"))
            finally:
                await browser.close()
    finally:
        await close()
