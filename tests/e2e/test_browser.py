"""The playground page in headless Chromium: what a newcomer does, click by click.

Debian's ``/usr/bin/chromium`` driven by the ``playwright`` package (never
``playwright install``: no browser downloads). The playground runs in-process on
an ephemeral port with its default options (operator mode, as the README's
first command starts it) and the system clock (the browser lives in real time), so the
cancel lock is 5 real seconds here and the simulator's 15-s "Waiting" cache is
shortened; every wait is bounded and event-driven (no timing assertions).

Leaves a screenshot in ``test-artifacts/playground.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Locator, Page, async_playwright, expect

from bot.sandbox import sim_state
from bot.sandbox.playground import Playground, PlaygroundOptions, start_playground
from bot.services.api import ActivationState
from tests.texts import button as label
from tests.texts import lead, pattern, text

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
STEP = 15_000  # ms: bound of each wait for the page (safety net, not an assertion)
ALICE = 1001


@pytest.fixture
def chromium() -> Path:
    if os.environ.get("DAISYBOT_SKIP_BROWSER"):
        pytest.skip("DAISYBOT_SKIP_BROWSER is set")
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed (/usr/bin/chromium); `python -m tests` "
            "apt-installs it when run as root"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "playground.png").unlink(missing_ok=True)  # this run's screenshot only
    return CHROMIUM


def assert_png(path: Path) -> None:
    assert path.is_file(), f"no screenshot at {path}"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


@pytest_asyncio.fixture
async def pg(
    chromium: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Playground]:
    monkeypatch.setattr(sim_state, "WAITING_CACHE_SECONDS", 0.5)
    playground = await start_playground(
        PlaygroundOptions(
            port=0,
            data_dir=tmp_path / "playground-data",
            cancel_lock=5.0,
            auto_sms=None,  # the test delivers the code through the panel
            poll_interval=1.0,
        )
    )
    try:
        yield playground
    finally:
        await playground.close()


async def test_newcomer_flow_in_chromium(chromium: Path, pg: Playground) -> None:
    png = ARTIFACTS / "playground.png"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(STEP)
            await run_flow(page, pg)
        finally:
            await browser.close()

    assert_png(png)


async def run_flow(page: Page, pg: Playground) -> None:
    messages = page.get_by_test_id("message")

    def bot_text(pattern: str) -> Locator:
        return messages.filter(has_text=re.compile(pattern))

    def button(label: str) -> Locator:
        return page.get_by_test_id("kb-button").filter(has_text=re.compile(label)).last

    def exact(shown: str) -> str:
        return "^" + re.escape(shown) + "$"

    # the page's regexes run in JavaScript: escaped text and unnamed groups only
    number = re.escape(lead("order_number")) + r"\s*\+1"
    code_for = re.escape(lead("otp_message"))

    async def say(message: str) -> None:
        await page.locator("#composer").fill(message)
        await page.locator("#send").click()

    await page.goto(pg.url + "/")
    await expect(page.get_by_test_id("bot-name")).to_contain_text("DaisyBot")
    # The demo timings are said on screen; the panel shows the demo credit.
    await expect(page.get_by_test_id("banner")).to_contain_text("opens 5 s after purchase")
    await expect(page.get_by_test_id("panel-wallet")).to_contain_text("Alice: $10.00")

    # What the README promises a newcomer (default options): /start → Buy → WhatsApp
    # → Confirm → the number appears.
    await say("/start")
    await expect(bot_text(re.escape(text("menu_title")))).to_have_count(1)
    await button(re.escape(label("btn_buy"))).click()
    await button(exact(label("btn_service", name="WhatsApp", price="$1.85"))).click()
    await expect(bot_text(re.escape(lead("buy_confirm")))).to_have_count(1)
    await button("^" + re.escape(lead("btn_confirm"))).click()
    await expect(bot_text(number)).to_have_count(1)

    # The panel lists the number; "Deliver SMS now" → the code is pushed into the chat.
    deliver = page.get_by_test_id("deliver-sms")
    await expect(deliver).to_have_count(1)
    await deliver.click()
    await expect(bot_text(code_for)).to_have_count(1)
    [first] = (await pg.app.bot_data.engine.history(ALICE)).items
    assert first.state is ActivationState.COMPLETED and first.code
    await expect(bot_text(code_for).last).to_contain_text(first.code)

    # A second number gets no SMS: "Cancel & refund" appears after the (5 s) lock.
    await say("/buy")
    await button(exact(label("btn_service", name="Signal", price="$0.60"))).click()
    await button("^" + re.escape(lead("btn_confirm"))).click()
    await expect(bot_text(number)).to_have_count(2)
    cancel = button(re.escape(label("btn_cancel_refund")))
    await expect(cancel).to_be_visible(timeout=30_000)
    await cancel.click()
    await expect(bot_text(pattern("status_refunded", named=False).pattern).last).to_be_visible()
    await expect(page.get_by_test_id("panel-wallet")).to_contain_text("Alice: $8.15")
    second = (await pg.app.bot_data.engine.history(ALICE)).items[0]
    assert second.id != first.id and second.state is ActivationState.REFUNDED

    await page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
