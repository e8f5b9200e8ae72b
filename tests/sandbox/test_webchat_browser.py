"""The web chat in headless Chromium: date_time entities shown the way Telegram shows
them (the reader's time zone and language, relative and live), the user picker with each
user's language, and colour emoji from the bundled font on a machine without an emoji
font.

Debian's ``/usr/bin/chromium`` driven by ``playwright`` (no browser downloads), skipped
like tests/e2e/test_browser.py when it is missing. A FakeTelegram and the web chat run
in-process; the messages are sent with the real PTB ``Bot``. The page's clock is
Playwright's fake clock, so "in 3 minutes" → "2 minutes ago" needs no real waiting.
"""

from __future__ import annotations

import datetime as dtm
import os
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import telegram
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.sandbox.fake_telegram import FakeTelegram
from bot.sandbox.webchat import make_webchat_app, start_webchat

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "123456:TEST-fake-token_abcdefghijklmnopqrstu"
STEP = 15_000  # ms: bound of each wait (safety net, not an assertion)
ALICE, DMITRI, DARIUSH = 1001, 1006, 1005
CANCEL_AT = 1_780_000_000  # 2026-05-28 20:26:40 UTC
PAGE_NOW = dtm.datetime.fromtimestamp(CANCEL_AT - 180, dtm.UTC)  # 3 minutes before


@pytest.fixture
def chromium() -> Path:
    if os.environ.get("DAISYBOT_SKIP_BROWSER"):
        pytest.skip("DAISYBOT_SKIP_BROWSER is set")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest_asyncio.fixture
async def chat_url(chromium: Path) -> AsyncIterator[str]:
    fake = FakeTelegram(TOKEN)
    await fake.start()
    try:
        fake.user(ALICE, "Alice", language_code="en")
        fake.user(DMITRI, "Dmitri", language_code="ru")
        fake.user(DARIUSH, "Dariush", language_code="fa")
        app = make_webchat_app(
            fake, users=[(ALICE, "Alice"), (DMITRI, "Dmitri"), (DARIUSH, "Dariush")]
        )
        url, close = await start_webchat(app)
        try:
            async with telegram.Bot(TOKEN, base_url=fake.api_base) as bot:
                for uid in (ALICE, DMITRI):
                    await fake.user(uid).send("/start")
                    await bot.send_message(
                        uid,
                        f'⏳ Cancel &amp; refund <tg-time unix="{CANCEL_AT}" format="r">'
                        "from 20:26 UTC</tg-time>",
                        parse_mode="HTML",
                    )
                    await bot.send_message(
                        uid,
                        f'Bought at <b><tg-time unix="{CANCEL_AT}" format="t">20:26 UTC'
                        f'</tg-time></b> on <tg-time unix="{CANCEL_AT}" format="D">28 May '
                        f'2026</tg-time>; as written: <tg-time unix="{CANCEL_AT}">20:26 UTC'
                        "</tg-time>",
                        parse_mode="HTML",
                    )
                    await bot.send_message(
                        uid,
                        f'Next year: <tg-time unix="{CANCEL_AT + 365 * 86400}" format="d">'
                        f'28 May 2027</tg-time>, <tg-time unix="{CANCEL_AT}" format="wdT">'
                        "Thu 28 May 20:26:40 UTC</tg-time>",
                        parse_mode="HTML",
                    )
                    await bot.send_message(uid, "🛒 💰 ✅")
            yield url
        finally:
            await close()
    finally:
        await fake.close()


Opener = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture
async def open_chat(chat_url: str, chromium: Path) -> AsyncIterator[Opener]:
    async with async_playwright() as p:
        browser: Browser = await p.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:

            async def opener(user_id: int, locale: str, timezone: str) -> Page:
                context = await browser.new_context(
                    locale=locale, timezone_id=timezone, viewport={"width": 900, "height": 700}
                )
                page = await context.new_page()
                page.set_default_timeout(STEP)
                await page.clock.install(time=PAGE_NOW)
                await page.goto(f"{chat_url}/?user={user_id}")
                await expect(page.get_by_test_id("tg-time")).to_have_count(6)
                return page

            yield opener
        finally:
            await browser.close()


async def test_date_time_in_the_readers_zone_and_language_and_live(open_chat: Opener) -> None:
    page = await open_chat(ALICE, "en-US", "America/New_York")  # EDT, UTC-4
    times = page.get_by_test_id("tg-time")
    await expect(times.nth(0)).to_have_text("in 3 minutes")
    await expect(times.nth(1)).to_have_text("4:26 PM")  # t: short time, local
    await expect(times.nth(2)).to_have_text("May 28, 2026")  # D: long date
    await expect(times.nth(3)).to_have_text("20:26 UTC")  # no format: the text as is
    await expect(times.nth(4)).to_have_text("5/28/2027")  # d: the year as it is not this one
    await expect(times.nth(5)).to_have_text("Thursday, 5/28, 4:26:40 PM")  # w + d + T
    # the bot's (UTC) fallback text is the tooltip; formatting around it is kept
    await expect(times.nth(0)).to_have_attribute("title", "from 20:26 UTC")
    await expect(times.nth(1)).to_have_attribute("title", "20:26 UTC")
    await expect(page.locator("b > time.tg-time")).to_have_count(1)
    await expect(times.nth(3)).to_have_attribute("title", "20:26 UTC — " + "Thursday, May 28, "
                                                 "2026 at 4:26:40 PM EDT")
    await expect(page.get_by_test_id("message-text").nth(1)).to_contain_text(
        "⏳ Cancel & refund in 3 minutes"
    )

    # relative and live: five minutes later the same message says "2 minutes ago"
    await page.clock.fast_forward("05:00")
    await expect(times.nth(0)).to_have_text("2 minutes ago")
    await page.clock.fast_forward("02:00:00")
    await expect(times.nth(0)).to_have_text("2 hours ago")


async def test_date_time_in_russian_and_moscow_time(open_chat: Opener) -> None:
    page = await open_chat(DMITRI, "ru-RU", "Europe/Moscow")  # UTC+3
    times = page.get_by_test_id("tg-time")
    await expect(times.nth(0)).to_have_text("через 3 минуты")
    await expect(times.nth(1)).to_have_text("23:26")
    await expect(times.nth(2)).to_have_text("28 мая 2026 г.")
    await expect(times.nth(4)).to_have_text("28.05.2027")
    await expect(times.nth(5)).to_have_text("четверг, 28.05, 23:26:40")


async def test_picker_shows_each_users_language(open_chat: Opener) -> None:
    page = await open_chat(ALICE, "en-US", "UTC")
    options = page.locator("#user-picker option")
    await expect(options).to_have_text(
        ["Alice · en · English (1001)", "Dmitri · ru · русский (1006)",
         "Dariush · fa · فارسی (1005)"]
    )
    await expect(options.nth(2)).to_have_attribute("data-lang", "fa")


def _png_rgba(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes): (width, height, rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        f, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b, c = prev[x], prev[x - channels] if x >= channels else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if channels == 3 else bytes(
            v for i, v in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


def colourful_pixels(png: bytes) -> int:
    _, _, rows = _png_rgba(png)
    count = 0
    for row in rows:
        for i in range(0, len(row), 3):
            r, g, b = row[i], row[i + 1], row[i + 2]
            if max(r, g, b) - min(r, g, b) > 80:
                count += 1
    return count


async def test_emoji_render_in_colour_without_a_system_emoji_font(open_chat: Opener) -> None:
    page = await open_chat(ALICE, "en-US", "UTC")
    bubble = page.get_by_test_id("message-text").filter(has_text="🛒 💰 ✅")
    await expect(bubble).to_have_count(1)
    await page.evaluate("document.fonts.ready.then(() => null)")
    assert await page.evaluate("document.fonts.check('16px DaisyEmoji', '🛒')")
    loaded = await page.evaluate(
        "Array.from(document.fonts).filter(f => f.family.includes('DaisyEmoji'))"
        ".map(f => f.status)"
    )
    assert loaded == ["loaded"]
    png = await bubble.screenshot(path=str(ARTIFACTS / "webchat-emoji.png"))
    # three Twemoji glyphs are mostly saturated colour; empty boxes are grey outlines
    assert colourful_pixels(png) > 150
