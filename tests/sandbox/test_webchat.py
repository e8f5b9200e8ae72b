"""The browser chat page's HTTP/websocket API (no browser here) and its static files."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio
import telegram
from aiohttp.test_utils import TestClient, TestServer
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot.sandbox.fake_telegram import FakeTelegram
from bot.sandbox.webchat import STATIC_DIR, make_webchat_app, start_webchat

TOKEN = "424242:WEBCHAT-test-token"
ALICE, BOB = 501, 502


class FakePanel:
    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def panel(self) -> dict[str, Any]:
        return {
            "wallet": "$12.50",
            "balance": Decimal("12.50"),
            "numbers": [
                {
                    "activation_id": "A1",
                    "service": "Google",
                    "phone": "+1 555 0100",
                    "status": "waiting",
                    "code": None,
                }
            ],
            "notes": ["Demo: cancel lock is 30 s"],
        }

    async def deliver_sms(self, activation_id: str) -> str:
        if activation_id != "A1":
            raise KeyError(activation_id)
        self.delivered.append(activation_id)
        return f"SMS delivered to {activation_id}"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(TOKEN)
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
async def panel() -> FakePanel:
    return FakePanel()


@pytest_asyncio.fixture
async def client(fake: FakeTelegram, panel: FakePanel) -> AsyncIterator[TestClient]:
    app = make_webchat_app(fake, side_panel=panel, users=[(ALICE, "Alice"), (BOB, "Bob")])
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_page_and_static_files(client: TestClient) -> None:
    r = await client.get("/")
    assert r.status == 200
    html = await r.text()
    for marker in ('id="composer"', 'id="send"', 'id="panel"', "/static/app.js"):
        assert marker in html
    assert "http://" not in html and "https://" not in html  # no CDN
    for name in ("app.js", "style.css"):
        r = await client.get(f"/static/{name}")
        assert r.status == 200
        assert len(await r.read()) > 1000


async def test_users_endpoint(client: TestClient) -> None:
    r = await client.get("/api/users")
    data = await r.json()
    assert data["ok"] is True and data["panel"] is True
    assert [u["id"] for u in data["users"]] == [ALICE, BOB]
    assert data["bot"]["username"] == "daisysim_test_bot"


async def test_send_reaches_the_bot(
    client: TestClient,
    bot: telegram.Bot,
) -> None:
    r = await client.post("/api/send", json={"user_id": ALICE, "text": "/start"})
    body = await r.json()
    assert r.status == 200 and body["ok"] is True
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [body["update_id"]]
    msg = updates[0].message
    assert msg is not None and msg.text == "/start" and msg.chat.id == ALICE
    assert msg.entities[0].type == "bot_command"

    assert (await client.post("/api/send", json={"user_id": 999, "text": "x"})).status == 404
    assert (await client.post("/api/send", json={"user_id": ALICE, "text": "  "})).status == 400
    assert (await client.post("/api/send", data=b"not json")).status == 400


async def test_transcript(
    client: TestClient,
    fake: FakeTelegram,
    bot: telegram.Bot,
) -> None:
    await client.post("/api/send", json={"user_id": BOB, "text": "hello"})
    await bot.set_my_commands([telegram.BotCommand("start", "Start the bot")])
    await bot.send_message(
        BOB,
        "<b>Menu</b>",
        parse_mode="HTML",
        reply_markup=ReplyKeyboardMarkup([["Balance", "Help"]]),
    )
    r = await client.get("/api/transcript", params={"user_id": str(BOB)})
    data = await r.json()
    assert [m["text"] for m in data["messages"]] == ["hello", "Menu"]
    assert data["messages"][1]["entities"] == [{"type": "bold", "offset": 0, "length": 4}]
    assert data["messages"][1]["from_bot"] is True
    assert data["commands"] == [{"command": "start", "description": "Start the bot"}]
    assert [[b["text"] for b in row] for row in data["reply_keyboard"]["keyboard"]] == [
        ["Balance", "Help"]
    ]
    assert data["seq"] == fake.seq
    # Alice's chat is separate
    r = await client.get("/api/transcript", params={"user_id": str(ALICE)})
    assert (await r.json())["messages"] == []


async def test_press_validates_and_reaches_the_bot(
    client: TestClient,
    fake: FakeTelegram,
    bot: telegram.Bot,
) -> None:
    await client.post("/api/send", json={"user_id": ALICE, "text": "/start"})
    sent = await bot.send_message(
        ALICE,
        "Pick",
        reply_markup=InlineKeyboardMarkup(
            [
                [InlineKeyboardButton("Buy", callback_data="buy:1")],
                [InlineKeyboardButton("Site", url="https://example.com")],
            ]
        ),
    )
    await bot.get_updates(offset=-1)
    base = {"user_id": ALICE, "message_id": sent.message_id}
    r = await client.post("/api/press", json={**base, "data": "forged"})
    assert r.status == 400 and "no such button" in (await r.json())["error"]
    r = await client.post("/api/press", json={**base, "message_id": 999, "data": "buy:1"})
    assert r.status == 404
    r = await client.post("/api/press", json={**base, "user_id": BOB, "data": "buy:1"})
    assert r.status == 404  # the message is in Alice's chat, not Bob's
    r = await client.post("/api/press", json={**base, "data": "buy:1"})
    body = await r.json()
    assert r.status == 200 and body["ok"] is True
    updates = await bot.get_updates(offset=-1)
    cq = updates[-1].callback_query
    assert cq is not None and cq.id == body["query_id"] and cq.data == "buy:1"
    assert cq.from_user.id == ALICE
    await bot.answer_callback_query(cq.id, text="Bought")
    answer = fake.callback_answer(body["query_id"])
    assert answer is not None and answer.text == "Bought"


async def test_websocket_pushes_changes_live(
    client: TestClient,
    fake: FakeTelegram,
    bot: telegram.Bot,
) -> None:
    await client.post("/api/send", json={"user_id": ALICE, "text": "/start"})
    transcript = await (await client.get("/api/transcript", params={"user_id": ALICE})).json()
    ws = await client.ws_connect(f"/api/ws?user_id={ALICE}&since={transcript['seq']}")
    try:
        hello = await ws.receive_json(timeout=10)
        assert hello["kind"] == "hello"

        async def next_event(kind: str) -> dict[str, Any]:
            while True:
                ev = await ws.receive_json(timeout=10)
                if ev["kind"] == kind:
                    return ev

        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])
        sent = await bot.send_message(ALICE, "v1", reply_markup=markup)
        ev = await next_event("message")
        assert ev["message"]["text"] == "v1" and ev["message"]["from_bot"] is True
        assert ev["message"]["buttons"][0][0]["callback_data"] == "go"

        await bot.edit_message_text("<i>v2</i>", ALICE, sent.message_id, parse_mode="HTML")
        ev = await next_event("edited")
        assert ev["message_id"] == sent.message_id
        assert ev["message"]["text"] == "v2" and ev["message"]["edited"] is True
        assert ev["message"]["entities"] == [{"type": "italic", "offset": 0, "length": 2}]
        assert ev["message"]["buttons"] == []

        await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=markup)
        await next_event("edited")
        r = await client.post(
            "/api/press", json={"user_id": ALICE, "message_id": sent.message_id, "data": "go"}
        )
        query_id = (await r.json())["query_id"]
        await bot.answer_callback_query(query_id, text="Careful!", show_alert=True)
        ev = await next_event("callback_answer")
        assert ev["query_id"] == query_id and ev["text"] == "Careful!" and ev["show_alert"]

        await bot.set_my_commands([telegram.BotCommand("help", "Help")])
        ev = await next_event("commands")
        assert ev["commands"] == [{"command": "help", "description": "Help"}]

        await bot.delete_message(ALICE, sent.message_id)
        ev = await next_event("deleted")
        assert ev["message_id"] == sent.message_id
    finally:
        await ws.close()
    # events for other chats never leak into this socket
    assert all(e.chat_id in (ALICE, None) for e in fake.events_since(ALICE))


async def test_websocket_replays_missed_events(
    client: TestClient,
    bot: telegram.Bot,
) -> None:
    await client.post("/api/send", json={"user_id": BOB, "text": "/start"})
    await bot.send_message(BOB, "one")
    await bot.send_message(BOB, "two")
    ws = await client.ws_connect(f"/api/ws?user_id={BOB}&since=0")
    try:
        seen: list[str] = []
        while len(seen) < 3:
            ev = await ws.receive_json(timeout=10)
            if ev["kind"] == "message":
                seen.append(ev["message"]["text"])
        assert seen == ["/start", "one", "two"]
    finally:
        await ws.close()


async def test_side_panel(
    client: TestClient,
    panel: FakePanel,
) -> None:
    data = await (await client.get("/api/panel")).json()
    assert data["enabled"] is True
    assert data["panel"]["wallet"] == "$12.50"
    assert data["panel"]["balance"] == "12.50"  # Decimals are shown as strings
    assert data["panel"]["numbers"][0]["status"] == "waiting"
    r = await client.post("/api/panel/sms", json={"activation_id": "A1"})
    assert (await r.json()) == {"ok": True, "result": "SMS delivered to A1"}
    assert panel.delivered == ["A1"]
    r = await client.post("/api/panel/sms", json={"activation_id": "nope"})
    assert r.status == 400 and "KeyError" in (await r.json())["error"]
    assert (await client.post("/api/panel/sms", json={})).status == 400


async def test_without_side_panel_and_start_helper(fake: FakeTelegram) -> None:
    app = make_webchat_app(fake, users=[(ALICE, "Alice")])
    url, closer = await start_webchat(app)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        async with httpx.AsyncClient(base_url=url) as http:
            data = (await http.get("/api/panel")).json()
            assert data == {"ok": True, "enabled": False, "panel": {}}
            assert (
                await http.post("/api/panel/sms", json={"activation_id": "1"})
            ).status_code == 404
            assert (await http.get("/api/users")).json()["panel"] is False
    finally:
        await closer()
    with pytest.raises(ValueError):
        make_webchat_app(fake, users=[])


async def test_shutdown_closes_open_websockets(fake: FakeTelegram) -> None:
    app = make_webchat_app(fake, users=[(ALICE, "Alice")])
    url, closer = await start_webchat(app)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url.replace("http", "ws") + f"/api/ws?user_id={ALICE}")
        assert (await ws.receive_json(timeout=10))["kind"] == "hello"
        await asyncio.wait_for(closer(), 10)
        msg = await ws.receive(timeout=10)
        assert msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        )


# -- static assets --------------------------------------------------------------------


async def test_static_files_are_served_with_their_content_types(client: TestClient) -> None:
    expected = {
        "/": ("text/html",),
        "/static/app.js": ("application/javascript", "text/javascript"),
        "/static/style.css": ("text/css",),
    }
    for path, types in expected.items():
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type in types, (path, r.content_type)
        body = await r.read()
        name = "index.html" if path == "/" else path.rsplit("/", 1)[1]
        assert body == (STATIC_DIR / name).read_bytes()  # served verbatim, no templating
    assert (await client.get("/")).headers["Cache-Control"] == "no-store"
    assert (await client.get("/static/nope.js")).status == 404
    # nothing outside the static folder (webchat.py sits right next to it)
    for path in ("/static/../webchat.py", "/static/%2e%2e/webchat.py"):
        r = await client.get(path)
        assert r.status in (403, 404), path
        assert b"make_webchat_app" not in await r.read()


def test_page_keeps_the_hooks_and_declares_its_encoding() -> None:
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    # the files are UTF-8 (arrows, ellipses) and are served without a charset parameter:
    # the page must declare it so the script and the stylesheet inherit it
    assert '<meta charset="utf-8">' in html.lower()
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == []  # no duplicate ids
    # hooks tests/e2e/test_browser.py and other scripts rely on
    page_hooks = (
        "bot-name bot-status banner banner-close banner-show messages new-messages composer "
        "send commands panel panel-toggle panel-wallet panel-numbers user-picker toast alert"
    )
    for testid in page_hooks.split():
        assert f'data-testid="{testid}"' in html, testid
    for testid in ("message", "kb-button", "deliver-sms", "banner-line", "command"):
        assert f'"data-testid": "{testid}"' in script, testid
    for hook in ('id="composer"', 'id="send"', 'id="panel"', 'id="composer-area"'):
        assert hook in html
    # the message list sits in the chat column before the composer area it must not cover
    assert html.index('id="messages"') < html.index('id="commands"') < html.index('id="composer"')
    # inline buttons are never disabled: a stuck press must not lock the chat
    assert not re.search(r"kb-btn[^;]*disabled", script)


def _css_rules(css: str) -> dict[str, str]:
    """Top-level ``selector { body }`` rules (media queries skipped), selector -> body."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    css = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)
    rules: dict[str, str] = {}
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        for sel in selector.split(","):
            rules[sel.strip()] = rules.get(sel.strip(), "") + body
    return rules


def test_layout_only_the_message_list_shrinks() -> None:
    rules = _css_rules((STATIC_DIR / "style.css").read_text(encoding="utf-8"))

    def decl(selector: str, prop: str) -> str | None:
        found = re.findall(rf"(?:^|;|\s){re.escape(prop)}\s*:\s*([^;]+)", rules.get(selector, ""))
        return found[-1].strip() if found else None

    # a flex column whose scroller may shrink below its content (min-height: 0) ...
    assert decl(".chat", "flex-direction") == "column"
    assert decl(".messages-wrap", "min-height") == "0"
    assert decl(".messages", "min-height") == "0"
    assert decl(".messages", "overflow-y") == "auto"
    # ... while the header, the notes and the composer area (shortcuts + input) never do
    for selector in (".topbar", ".banner", ".composer-area", ".composer-area > *"):
        assert decl(selector, "flex") == "none", selector
    assert decl(".app", "overflow") == "hidden"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_app_js_has_no_syntax_errors() -> None:
    result = subprocess.run(
        ["node", "--check", str(STATIC_DIR / "app.js")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_page_has_every_element_the_script_uses() -> None:
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    ids = set(re.findall(r'getElementById\("([^"]+)"\)', script))
    assert {"composer", "send", "panel", "messages"} <= ids
    missing = [i for i in ids if f'id="{i}"' not in html]
    assert missing == []
    # stable hooks for a headless-browser test
    assert 'data-testid="kb-button"' in script or '"data-testid": "kb-button"' in script
    assert '"data-message-id"' in script
    # text is never injected as HTML
    assert "innerHTML" not in script and "outerHTML" not in script
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


async def test_transcript_and_users_carry_what_the_page_renders(
    client: TestClient, fake: FakeTelegram, bot: telegram.Bot
) -> None:
    # app.js reads date_time entities (unix_time, date_time_format) and language_code
    # straight from these payloads: the field names are the contract
    await client.post("/api/send", json={"user_id": ALICE, "text": "/start"})
    await bot.send_message(
        ALICE,
        'Cancel <b><tg-time unix="1780000000" format="r">from 20:26 UTC</tg-time></b>',
        parse_mode="HTML",
    )
    data = await (await client.get("/api/transcript", params={"user_id": ALICE})).json()
    assert data["messages"][-1]["text"] == "Cancel from 20:26 UTC"
    assert {
        "type": "date_time",
        "offset": 7,
        "length": 14,
        "unix_time": 1780000000,
        "date_time_format": "r",
    } in data["messages"][-1]["entities"]
    users = (await (await client.get("/api/users")).json())["users"]
    assert [u["language_code"] for u in users] == [
        fake.user(ALICE).language_code,
        fake.user(BOB).language_code,
    ] == ["en", "en"]


async def test_the_emoji_font_is_served_with_its_licence(client: TestClient) -> None:
    font = STATIC_DIR / "fonts" / "twemoji.woff2"
    assert font.read_bytes()[:4] == b"wOF2" and font.stat().st_size < 2_000_000
    assert "SIL OPEN FONT LICENSE" in (STATIC_DIR / "fonts" / "LICENSE-twemoji.md").read_text()
    r = await client.get("/static/fonts/twemoji.woff2")
    assert r.status == 200 and await r.read() == font.read_bytes()
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    assert 'src: url("fonts/twemoji.woff2") format("woff2")' in css
    assert css.count('"DaisyEmoji"') >= 2  # declared, and used in the font stacks
