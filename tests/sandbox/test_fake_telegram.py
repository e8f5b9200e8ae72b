"""The strict fake Telegram Bot API, exercised with the real python-telegram-bot over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import re
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import telegram
from aiohttp import web
from telegram import (
    CopyTextButton,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.clock import VirtualClock
from bot.sandbox.fake_telegram import (
    MARKDOWN_REFUSED,
    FakeTelegram,
    FakeUser,
    find_auto_entities,
    parse_html,
    render_html,
    utf16_len,
)

TOKEN = "123456:TEST-fake-token_abcdefghijklmnopqrstu"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


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
    b = telegram.Bot(TOKEN, base_url=fake.api_base)
    await b.initialize()
    try:
        yield b
    finally:
        await b.shutdown()


@pytest_asyncio.fixture
async def alice(fake: FakeTelegram) -> FakeUser:
    user = fake.user(1001, "Alice", username="alice_w")
    await user.send("hi")  # a user must have started the bot before it can be messaged
    return user


def last_error(fake: FakeTelegram) -> str:
    """The exact description of the newest error reply (PTB rewrites messages)."""
    for call in reversed(fake.calls):
        if call.status != 200:
            return str(call.response["description"])
    raise AssertionError("no error reply recorded")


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB 22 deprecates the int form
        value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def kb(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(list(rows))


def assert_roundtrip_message(data: dict[str, Any], bot: telegram.Bot) -> Message:
    msg = Message.de_json(data, bot)
    assert msg is not None
    assert msg.api_kwargs == {}, f"fields PTB does not know: {msg.api_kwargs}"
    return msg


# --------------------------------------------------------------------------------------
# Parsers (pure functions)
# --------------------------------------------------------------------------------------


def test_html_parser_entities_in_utf16_units() -> None:
    text, ents = parse_html(
        '😀 <b>bold <i>both</i></b> &lt;x&gt; <a href="https://example.com/p">link</a> '
        '<code>c</code> <pre><code class="language-py">x = 1</code></pre> '
        '<span class="tg-spoiler">s</span> <tg-spoiler>t</tg-spoiler> <u>u</u> <s>d</s> '
        "<blockquote>q</blockquote>"
    )
    assert text == "😀 bold both <x> link c x = 1 s t u d q"
    by_type = {e["type"]: e for e in ents}
    assert by_type["bold"] == {"type": "bold", "offset": 3, "length": 9}  # emoji = 2 units
    assert by_type["italic"] == {"type": "italic", "offset": 8, "length": 4}
    assert by_type["text_link"]["url"] == "https://example.com/p"
    assert by_type["pre"] == {"type": "pre", "offset": 24, "length": 5, "language": "py"}
    assert [e["type"] for e in ents].count("spoiler") == 2
    assert {"underline", "strikethrough", "blockquote", "code"} <= set(by_type)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<invalid>x</invalid>", 'Unsupported start tag "invalid" at byte offset 0'),
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        (
            "<b><i>test</b></i>",
            'Unmatched end tag at byte offset 10, expected "</i>", found "</b>"',
        ),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_html_parser_rejects_like_telegram(source: str, error: str) -> None:
    from bot.sandbox.fake_telegram import EntityParseError

    with pytest.raises(EntityParseError) as info:
        parse_html(source)
    assert str(info.value) == error


def test_html_parser_keeps_unknown_entities_and_drops_bad_links() -> None:
    text, ents = parse_html('a &amp b &unknown; &#65;&#x42; <a href="javascript:x">l</a>')
    assert text == "a & b &unknown; AB l"
    assert ents == []


def test_auto_entities_and_render_html() -> None:
    text = "Open https://example.com, /start or ask @support_bot. Mail a.b@ex.com"
    ents = find_auto_entities(text)
    found = {e["type"]: text[e["offset"] : e["offset"] + e["length"]] for e in ents}
    assert found == {
        "url": "https://example.com",
        "bot_command": "/start",
        "mention": "@support_bot",
        "email": "a.b@ex.com",
    }
    plain, parsed = parse_html("<b>a &lt; b</b> 😀 <i>x</i>")
    assert render_html(plain, parsed) == "<b>a &lt; b</b> 😀 <i>x</i>"
    assert utf16_len("😀x") == 3


# --------------------------------------------------------------------------------------
# HTTP basics
# --------------------------------------------------------------------------------------


async def test_get_me_auth_and_routing(fake: FakeTelegram, bot: telegram.Bot) -> None:
    me = await bot.get_me()
    assert me.username == "daisysim_test_bot" and me.is_bot and me.id == 123456
    assert me.api_kwargs == {}
    wrong = telegram.Bot("123456:WRONG-token", base_url=fake.api_base)
    with pytest.raises(InvalidToken):
        await wrong.get_me()
    async with httpx.AsyncClient(base_url=fake.url) as client:
        r = await client.post(f"/bot{TOKEN}/getMe")
        assert r.status_code == 200 and r.json()["ok"] is True
        r = await client.post("/bot123456:WRONG/getMe")
        assert r.status_code == 401
        assert r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        r = await client.post("/botnot-a-token/getMe")
        assert r.status_code == 404 and r.json()["description"] == "Not Found"
        r = await client.post(f"/bot{TOKEN}/noSuchMethod")
        assert r.status_code == 404
        assert r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        # JSON bodies and GET query strings work too; method names are case-insensitive
        r = await client.post(f"/bot{TOKEN}/getme", json={})
        assert r.json()["result"]["username"] == "daisysim_test_bot"
        r = await client.get(f"/bot{TOKEN}/getWebhookInfo")
        assert r.json()["result"]["url"] == ""


async def test_json_body_send_message(fake: FakeTelegram, alice: FakeUser) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as client:
        r = await client.post(
            f"/bot{TOKEN}/sendMessage",
            json={
                "chat_id": alice.id,
                "text": "<b>json</b>",
                "parse_mode": "HTML",
                "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]},
            },
        )
    body = r.json()
    assert body["ok"] is True
    assert body["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 4}]
    assert alice.last().buttons[0][0].callback_data == "a"
    assert fake.calls_to("sendMessage")[0]["chat_id"] == alice.id
    # multipart/form-data (what PTB uses when uploading) and GET query strings work too
    async with httpx.AsyncClient(base_url=fake.url) as client:
        r = await client.post(
            f"/bot{TOKEN}/sendMessage",
            data={"chat_id": str(alice.id), "text": "multi"},
            files={"unused": ("a.txt", b"x")},
        )
        assert r.json()["result"]["text"] == "multi"
        r = await client.get(f"/bot{TOKEN}/sendMessage", params={"chat_id": alice.id, "text": "q"})
        assert r.json()["result"]["text"] == "q"
    assert [m.text for m in alice.bot_messages()] == ["json", "multi", "q"]


# --------------------------------------------------------------------------------------
# sendMessage
# --------------------------------------------------------------------------------------


async def test_send_message_html_roundtrip(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    sent = await bot.send_message(
        alice.id,
        "💰 <b>Balance:</b> <code>$1.50</code>\nSee https://daisysim.example.com/help",
        parse_mode="HTML",
        reply_markup=kb(
            [InlineKeyboardButton("Buy", callback_data="buy:1")],
            [InlineKeyboardButton("Site", url="https://example.com")],
            [InlineKeyboardButton("Copy", copy_text=CopyTextButton("+15550100"))],
        ),
        link_preview_options=telegram.LinkPreviewOptions(is_disabled=True),
    )
    assert sent.text == "💰 Balance: $1.50\nSee https://daisysim.example.com/help"
    assert sent.entities[0] == MessageEntity(MessageEntity.BOLD, 3, 8)
    assert sent.parse_entity(sent.entities[1]) == "$1.50"
    assert sent.parse_entities([MessageEntity.URL])
    assert sent.from_user is not None and sent.from_user.is_bot
    assert isinstance(sent.date, dtm.datetime)
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[2][0].copy_text == CopyTextButton("+15550100")
    raw = fake.calls[-1].response["result"]
    assert isinstance(raw["date"], int)
    assert_roundtrip_message(raw, bot)

    msg = alice.last()
    assert msg.message_id == sent.message_id and msg.from_bot
    assert [b.text for row in msg.buttons for b in row] == ["Buy", "Site", "Copy"]
    assert msg.button("Copy").copy_text == "+15550100"
    assert msg.button("Site").kind == "url"
    assert msg.entity_texts("code") == ["$1.50"]
    assert msg.html.startswith("💰 <b>Balance:</b> <code>$1.50</code>")
    # message ids grow per chat; the user's own "hi" was #1
    assert [m.message_id for m in alice.chat()] == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "description"),
    [
        ({"text": ""}, "Bad Request: message text is empty"),
        ({"text": "   \n "}, "Bad Request: text must be non-empty"),
        ({"text": "<b></b>", "parse_mode": "HTML"}, "Bad Request: text must be non-empty"),
        ({"text": "x" * 4097}, "Bad Request: message is too long"),
        ({"text": "x", "parse_mode": "BBCode"}, "Bad Request: unsupported parse_mode"),
        (
            {"text": "<b>bold", "parse_mode": "HTML"},
            "Bad Request: can't parse entities: Can't find end tag corresponding to start "
            'tag "b"',
        ),
        (
            {"text": "<blink>x</blink>", "parse_mode": "HTML"},
            'Bad Request: can\'t parse entities: Unsupported start tag "blink" at byte offset 0',
        ),
        (
            {"text": "hello", "entities": [MessageEntity("bold", 100, 1)]},
            "Bad Request: entity begins after the end of the text at UTF-16 offset 100",
        ),
        (
            {"text": "hello", "entities": [MessageEntity("bold", 0, 100)]},
            "Bad Request: entity beginning at UTF-16 offset 0 ends after the end of the text at "
            "UTF-16 offset 100",
        ),
    ],
)
async def test_send_message_rejections(
    fake: FakeTelegram,
    bot: telegram.Bot,
    alice: FakeUser,
    kwargs: dict[str, Any],
    description: str,
) -> None:
    with pytest.raises(BadRequest):
        await bot.send_message(alice.id, **kwargs)
    assert last_error(fake) == description
    assert alice.bot_messages() == []


@pytest.mark.parametrize("mode", ["MarkdownV2", "Markdown", "markdownv2"])
async def test_markdown_parse_modes_are_refused(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser, mode: str
) -> None:
    """The real Telegram accepts Markdown/MarkdownV2; this stand-in parses HTML only (the
    bot's one parse mode), so it refuses them with a clear 400 rather than pretending."""
    expected = "Bad Request: " + MARKDOWN_REFUSED.format(mode=mode)
    assert "HTML only" in expected
    with pytest.raises(BadRequest):
        await bot.send_message(alice.id, "*bold*", parse_mode=mode)
    assert last_error(fake) == expected
    assert alice.bot_messages() == []
    sent = await bot.send_message(alice.id, "<b>bold</b>", parse_mode="HTML")
    with pytest.raises(BadRequest):
        await bot.edit_message_text("*edited*", alice.id, sent.message_id, parse_mode=mode)
    assert last_error(fake) == expected
    assert alice.message(sent.message_id).text == "bold"
    assert not alice.message(sent.message_id).edited


async def test_send_message_limits_and_trimming(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    longest = await bot.send_message(alice.id, "y" * 4096)
    assert len(longest.text or "") == 4096
    trimmed = await bot.send_message(alice.id, "\n  <b>hi</b>  \n", parse_mode="HTML")
    assert trimmed.text == "hi"
    assert trimmed.entities == (MessageEntity("bold", 0, 2),)


async def test_chat_errors(fake: FakeTelegram, bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest):
        await bot.send_message(999, "x")
    assert last_error(fake) == "Bad Request: chat not found"
    with pytest.raises(BadRequest):
        await bot.send_message("@somebody", "x")
    assert last_error(fake) == "Bad Request: chat not found"
    newcomer = fake.user(2002, "Bob")
    with pytest.raises(Forbidden):
        await bot.send_message(newcomer.id, "spam")
    assert last_error(fake) == "Forbidden: bot can't initiate conversation with a user"
    await newcomer.send("/start")
    await bot.send_message(newcomer.id, "welcome")
    await newcomer.block()
    with pytest.raises(Forbidden):
        await bot.send_message(newcomer.id, "are you there?")
    assert last_error(fake) == "Forbidden: bot was blocked by the user"
    with pytest.raises(Forbidden):
        await bot.edit_message_text("edit?", newcomer.id, newcomer.last().message_id)
    updates = await bot.get_updates()
    kinds = [u.my_chat_member is not None for u in updates]
    assert kinds[-1] is True
    member = updates[-1].my_chat_member
    assert member is not None and member.new_chat_member.status == "kicked"


# --------------------------------------------------------------------------------------
# Keyboards
# --------------------------------------------------------------------------------------


async def test_callback_data_is_limited_to_64_bytes(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    ok = await bot.send_message(
        alice.id, "ok", reply_markup=kb([InlineKeyboardButton("x", callback_data="d" * 64)])
    )
    assert ok.reply_markup is not None
    for data in ("d" * 65, "é" * 33):  # 65 bytes / 66 bytes (33 characters)
        with pytest.raises(BadRequest):
            await bot.send_message(
                alice.id, "no", reply_markup=kb([InlineKeyboardButton("x", callback_data=data)])
            )
        assert last_error(fake) == "Bad Request: BUTTON_DATA_INVALID"
    assert len(alice.bot_messages()) == 1


@pytest.mark.parametrize(
    ("button", "description"),
    [
        (
            {"text": "btn", "callback_data": ""},
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the "
            "inline keyboard",
        ),
        (
            {"text": "btn"},
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the "
            "inline keyboard",
        ),
        (
            {"callback_data": "x"},
            "Bad Request: can't parse inline keyboard button: Can't find field \"text\"",
        ),
        (
            {"text": "link", "url": "not-a-url"},
            "Bad Request: inline keyboard button URL 'not-a-url' is invalid: Wrong HTTP URL",
        ),
        (
            {"text": "link", "url": "ftp://example.com"},
            "Bad Request: inline keyboard button URL 'ftp://example.com' is invalid: "
            "Unsupported URL protocol",
        ),
        (
            {"text": "copy", "copy_text": {"text": "x" * 257}},
            "Bad Request: BUTTON_COPY_TEXT_INVALID",
        ),
        ({"text": "copy", "copy_text": {"text": ""}}, "Bad Request: BUTTON_COPY_TEXT_INVALID"),
        ({"text": "pay", "pay": True}, "Bad Request: BUTTON_TYPE_INVALID"),
    ],
)
async def test_inline_keyboard_validation(
    fake: FakeTelegram, alice: FakeUser, button: dict[str, Any], description: str
) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as client:
        r = await client.post(
            f"/bot{TOKEN}/sendMessage",
            data={
                "chat_id": str(alice.id),
                "text": "t",
                "reply_markup": json.dumps({"inline_keyboard": [[button]]}),
            },
        )
    assert r.status_code == 400
    assert r.json() == {"ok": False, "error_code": 400, "description": description}


async def test_button_with_two_actions_is_rejected(fake: FakeTelegram, alice: FakeUser) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as client:
        r = await client.post(
            f"/bot{TOKEN}/sendMessage",
            json={
                "chat_id": alice.id,
                "text": "t",
                "reply_markup": {
                    "inline_keyboard": [[{"text": "b", "callback_data": "x", "url": "https://a.b"}]]
                },
            },
        )
    assert r.status_code == 400
    assert "exactly one" in r.json()["description"]


async def test_reply_keyboards(fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser) -> None:
    await bot.send_message(
        alice.id,
        "choose",
        reply_markup=ReplyKeyboardMarkup([["Yes", "No"]], one_time_keyboard=True),
    )
    assert alice.reply_keyboard == [["Yes", "No"]]
    assert alice.last().buttons == []  # reply keyboards are not part of the message
    await alice.send("Yes")
    assert alice.reply_keyboard is None  # one-time keyboard hides after use
    await bot.send_message(alice.id, "again", reply_markup=ReplyKeyboardMarkup([["A"]]))
    await bot.send_message(alice.id, "gone", reply_markup=ReplyKeyboardRemove())
    assert alice.reply_keyboard is None
    msg = await bot.send_message(alice.id, "x")
    with pytest.raises(BadRequest):
        await bot.edit_message_text(
            "y",
            alice.id,
            msg.message_id,
            reply_markup=ReplyKeyboardMarkup([["A"]]),
        )
    assert last_error(fake) == "Bad Request: inline keyboard expected"


# --------------------------------------------------------------------------------------
# editing / deleting
# --------------------------------------------------------------------------------------


async def test_edit_message_text(fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser) -> None:
    markup = kb([InlineKeyboardButton("Refresh", callback_data="r")])
    sent = await bot.send_message(alice.id, "<b>v1</b>", parse_mode="HTML", reply_markup=markup)
    edited = await bot.edit_message_text(
        "<b>v2</b>", alice.id, sent.message_id, parse_mode="HTML", reply_markup=markup
    )
    assert isinstance(edited, Message)
    assert edited.text == "v2" and edited.edit_date is not None
    assert_roundtrip_message(fake.calls[-1].response["result"], bot)
    snap = alice.message(sent.message_id)
    assert snap.text == "v2" and snap.edited and snap.has_button("Refresh")

    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text(
            "<b>v2</b>", alice.id, sent.message_id, parse_mode="HTML", reply_markup=markup
        )
    assert last_error(fake) == NOT_MODIFIED
    # Same text but different formatting is a modification
    await bot.edit_message_text("v2", alice.id, sent.message_id, reply_markup=markup)
    # Editing without reply_markup removes the inline keyboard (as Telegram does)
    await bot.edit_message_text("v2", alice.id, sent.message_id)
    assert alice.message(sent.message_id).buttons == []
    with pytest.raises(BadRequest):
        await bot.edit_message_text("v2", alice.id, sent.message_id)
    assert last_error(fake) == NOT_MODIFIED

    with pytest.raises(BadRequest):
        await bot.edit_message_text("x", alice.id, 9999)
    assert last_error(fake) == "Bad Request: message to edit not found"
    with pytest.raises(BadRequest):
        await bot.edit_message_text("x", alice.id, 1)  # the user's own message
    assert last_error(fake) == "Bad Request: message can't be edited"
    with pytest.raises(BadRequest):
        await bot.edit_message_text("", alice.id, sent.message_id)
    assert last_error(fake) == "Bad Request: message text is empty"


async def test_edit_reply_markup_and_delete(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    sent = await bot.send_message(
        alice.id, "menu", reply_markup=kb([InlineKeyboardButton("A", callback_data="a")])
    )
    new_markup = kb([InlineKeyboardButton("B", callback_data="b")])
    result = await bot.edit_message_reply_markup(alice.id, sent.message_id, reply_markup=new_markup)
    assert isinstance(result, Message) and result.reply_markup == new_markup
    with pytest.raises(BadRequest):
        await bot.edit_message_reply_markup(alice.id, sent.message_id, reply_markup=new_markup)
    assert last_error(fake) == NOT_MODIFIED
    await bot.edit_message_reply_markup(alice.id, sent.message_id)  # removes the keyboard
    assert alice.message(sent.message_id).buttons == []

    assert await bot.delete_message(alice.id, sent.message_id) is True
    assert sent.message_id not in [m.message_id for m in alice.chat()]
    flagged = [m for m in alice.chat(include_deleted=True) if m.message_id == sent.message_id]
    assert flagged[0].deleted
    with pytest.raises(BadRequest):
        await bot.delete_message(alice.id, sent.message_id)
    assert last_error(fake) == "Bad Request: message to delete not found"
    with pytest.raises(BadRequest):
        await bot.edit_message_text("x", alice.id, sent.message_id)
    assert last_error(fake) == "Bad Request: message to edit not found"
    assert fake.calls_to("deleteMessage")[0]["message_id"] == sent.message_id
    kinds = [e.kind for e in fake.events_since(alice.id)]
    assert kinds == ["message", "message", "edited", "edited", "deleted"]


async def test_old_messages_cannot_be_edited_or_deleted(alice: FakeUser) -> None:
    clock = VirtualClock()
    async with FakeTelegram(TOKEN, clock=clock) as server:
        user = server.user(5, "Eve")
        await user.send("/start")
        async with telegram.Bot(TOKEN, base_url=server.api_base) as b:
            sent = await b.send_message(user.id, "old")
            clock.advance(49 * 3600)
            with pytest.raises(BadRequest, match="can't be edited"):
                await b.edit_message_text("new", user.id, sent.message_id)
            with pytest.raises(BadRequest, match="can't be deleted"):
                await b.delete_message(user.id, sent.message_id)


# --------------------------------------------------------------------------------------
# callback queries
# --------------------------------------------------------------------------------------


async def test_answer_callback_query_rules(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    sent = await bot.send_message(
        alice.id, "pick", reply_markup=kb([InlineKeyboardButton("Go", callback_data="go")])
    )
    qid = await alice.press_nowait("Go")
    updates = await bot.get_updates()
    cq = updates[-1].callback_query
    assert cq is not None and cq.id == qid and cq.data == "go"
    assert cq.message is not None and cq.message.message_id == sent.message_id
    assert isinstance(cq.message, Message) and cq.message.text == "pick"
    with pytest.raises(BadRequest):
        await bot.answer_callback_query(qid, text="x" * 201)
    assert last_error(fake) == "Bad Request: MESSAGE_TOO_LONG"
    assert await bot.answer_callback_query(qid, text="Done", show_alert=True) is True
    answer = fake.callback_answer(qid)
    assert answer is not None and answer.text == "Done" and answer.show_alert is True
    with pytest.raises(BadRequest):
        await bot.answer_callback_query(qid)
    assert last_error(fake) == QUERY_TOO_OLD
    with pytest.raises(BadRequest):
        await bot.answer_callback_query("12345")
    assert last_error(fake) == QUERY_TOO_OLD


async def test_callback_query_ttl_uses_the_clock() -> None:
    clock = VirtualClock()
    async with FakeTelegram(TOKEN, clock=clock, callback_query_ttl=15) as server:
        user = server.user(7, "Tim")
        await user.send("/start")
        async with telegram.Bot(TOKEN, base_url=server.api_base) as b:
            await b.send_message(
                user.id, "m", reply_markup=kb([InlineKeyboardButton("x", callback_data="x")])
            )
            qid = await user.press_nowait("x")
            clock.advance(16)
            with pytest.raises(BadRequest, match=r"(?i)query is too old"):
                await b.answer_callback_query(qid)


async def test_press_requires_an_existing_button(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    await bot.send_message(
        alice.id, "menu", reply_markup=kb([InlineKeyboardButton("Site", url="https://e.com")])
    )
    with pytest.raises(AssertionError, match="no button 'Nope'"):
        await alice.press("Nope")
    with pytest.raises(AssertionError, match="url button"):
        await alice.press("Site")


# --------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------


async def test_injected_errors(fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser) -> None:
    inj = fake.inject_error("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(alice.id, "x")
    assert retry_seconds(info.value) == 7
    assert inj.remaining == 0
    assert fake.calls[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert (await bot.send_message(alice.id, "now it works")).text == "now it works"

    fake.inject_error("editMessageText", 500, count=2)
    sent = await bot.send_message(alice.id, "a")
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.edit_message_text("b", alice.id, sent.message_id)
    assert (await bot.edit_message_text("b", alice.id, sent.message_id)).text == "b"  # type: ignore[union-attr]

    fake.inject_error("*", 400, description="Bad Request: something odd")
    with pytest.raises(BadRequest, match="Something odd"):
        await bot.get_me()


async def test_injected_429_storm_on_one_chat_for_a_time_window(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    """``for_seconds``: every call for that chat answers 429 until the window (on the
    fake's clock) has passed, telling the seconds left; other chats are untouched."""
    clock = VirtualClock()
    fake.clock = clock
    bob = fake.user(2, "Bob")
    await bob.send("/start")
    inj = fake.inject_error("*", 429, chat_id=alice.id, for_seconds=7)
    for elapsed, left in ((0.0, 7), (0.5, 7), (3.0, 4)):
        clock.advance(elapsed)
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(alice.id, "x")
        assert retry_seconds(info.value) == left
        assert fake.calls[-1].response["parameters"] == {"retry_after": left}
    assert (await bot.send_message(bob.id, "bob is not flooded")).text == "bob is not flooded"
    clock.advance(3.5)  # the window is over
    over = await bot.send_message(alice.id, "over")
    assert over.text == "over"
    assert not inj.active(clock.now())

    # Per method, with a fixed retry_after: edits still go through.
    fake.inject_error("sendMessage", 429, retry_after=3, for_seconds=10)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(bob.id, "y")
    assert retry_seconds(info.value) == 3
    edited = await bot.edit_message_text("edited", alice.id, over.message_id)
    assert not isinstance(edited, bool) and edited.text == "edited"
    clock.advance(10)
    assert (await bot.send_message(bob.id, "y")).text == "y"


async def test_chat_rate_limit() -> None:
    clock = VirtualClock()
    async with FakeTelegram(TOKEN, clock=clock, chat_rate_limit=(2, 1.0)) as server:
        user = server.user(8, "Rita")
        await user.send("/start")
        async with telegram.Bot(TOKEN, base_url=server.api_base) as b:
            await b.send_message(user.id, "1")
            await b.send_message(user.id, "2")
            with pytest.raises(RetryAfter) as info:
                await b.send_message(user.id, "3")
            assert retry_seconds(info.value) == 1
            clock.advance(1.0)
            await b.send_message(user.id, "3")
    assert [m.text for m in user.bot_messages()] == ["1", "2", "3"]


# --------------------------------------------------------------------------------------
# getUpdates
# --------------------------------------------------------------------------------------


async def test_get_updates_offsets_and_redelivery(fake: FakeTelegram) -> None:
    user = fake.user(42, "Zed")
    first = await user.send("/start")
    second = await user.send("hello @daisysim_test_bot")
    async with telegram.Bot(TOKEN, base_url=fake.api_base) as b1:
        updates = await b1.get_updates()
        assert [u.update_id for u in updates] == [first, second]
        for u in updates:
            raw = next(
                x for x in fake.calls[-1].response["result"] if x["update_id"] == u.update_id
            )
            parsed = Update.de_json(raw, b1)
            assert parsed is not None and parsed.message is not None
            assert parsed.message.api_kwargs == {}
        msg = updates[0].message
        assert msg is not None and msg.text == "/start"
        assert msg.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 6),)
        assert msg.chat.type == "private" and msg.from_user is not None
        # not confirmed: delivered again
        again = await b1.get_updates()
        assert [u.update_id for u in again] == [first, second]
        # confirm the first one only
        rest = await b1.get_updates(offset=first + 1, limit=5)
        assert [u.update_id for u in rest] == [second]
    # a new bot process gets the unconfirmed update again
    async with telegram.Bot(TOKEN, base_url=fake.api_base) as b2:
        redelivered = await b2.get_updates()
        assert [u.update_id for u in redelivered] == [second]
        assert await b2.get_updates(offset=second + 1) == ()
        assert fake.pending_updates == []


async def test_get_updates_long_poll(fake: FakeTelegram, bot: telegram.Bot) -> None:
    user = fake.user(43, "Yan")
    # nothing pending: returns [] once the (small) timeout expires
    assert await bot.get_updates(timeout=1) == ()
    # a long poll is woken up by a new update
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.state.wait_until(lambda: fake.state.poller, 5.0)
    uid = await user.send("ping")
    got = await asyncio.wait_for(poll, 10)
    assert [u.update_id for u in got] == [uid]
    # a second poller terminates the first one with 409 Conflict
    old = asyncio.create_task(bot.get_updates(offset=uid + 1, timeout=30))
    await fake.state.wait_until(lambda: fake.state.poller, 5.0)
    other = telegram.Bot(TOKEN, base_url=fake.api_base)
    async with other:
        new = asyncio.create_task(other.get_updates(offset=uid + 1, timeout=30))
        with pytest.raises(Conflict):
            await asyncio.wait_for(old, 10)
        uid2 = await user.send("pong")
        assert [u.update_id for u in await asyncio.wait_for(new, 10)] == [uid2]
    assert "terminated by other getUpdates request" in last_error(fake)


async def test_webhook_blocks_get_updates(fake: FakeTelegram, bot: telegram.Bot) -> None:
    user = fake.user(44, "Xi")
    await user.send("one")
    assert await bot.set_webhook("https://example.com/hook") is True
    assert (await bot.get_webhook_info()).url == "https://example.com/hook"
    with pytest.raises(Conflict):
        await bot.get_updates()
    assert "webhook is active" in last_error(fake)
    with pytest.raises(BadRequest):
        await bot.set_webhook("http://example.com/hook")
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    assert await bot.get_updates() == ()
    info = await bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 0


async def test_allowed_updates_filter(fake: FakeTelegram, bot: telegram.Bot) -> None:
    user = fake.user(45, "Wu")
    await user.send("/start")
    await bot.send_message(
        user.id, "m", reply_markup=kb([InlineKeyboardButton("x", callback_data="x")])
    )
    await bot.get_updates(offset=-1)  # forget everything but the newest
    await user.press_nowait("x")
    await user.send("text")
    updates = await bot.get_updates(allowed_updates=["message"])
    assert [u.message is not None for u in updates] == [True, True]
    assert updates[-1].message is not None and updates[-1].message.text == "text"


# --------------------------------------------------------------------------------------
# commands, chat actions, misc
# --------------------------------------------------------------------------------------


async def test_my_commands(fake: FakeTelegram, bot: telegram.Bot) -> None:
    user = fake.user(46, "Vi", language_code="ru")
    cmds = [telegram.BotCommand("start", "Start"), telegram.BotCommand("buy_number", "Buy")]
    assert await bot.set_my_commands(cmds) is True
    assert await bot.get_my_commands() == tuple(cmds)
    assert fake.commands_for(user.id)[0] == {"command": "start", "description": "Start"}
    ru = [telegram.BotCommand("start", "Старт")]
    await bot.set_my_commands(ru, language_code="ru")
    assert fake.commands_for(user.id) == [{"command": "start", "description": "Старт"}]
    scoped = [telegram.BotCommand("admin", "Admin panel")]
    await bot.set_my_commands(scoped, scope=telegram.BotCommandScopeChat(user.id))
    assert fake.commands_for(user.id)[0]["command"] == "admin"
    for bad, description in [
        ("Start", "Bad Request: BOT_COMMAND_INVALID"),
        ("bad command", "Bad Request: BOT_COMMAND_INVALID"),
        ("x" * 33, "Bad Request: BOT_COMMAND_INVALID"),
        ("", "Bad Request: command must be non-empty"),
    ]:
        with pytest.raises(BadRequest):
            await bot.set_my_commands([telegram.BotCommand(bad, "d")])
        assert last_error(fake) == description
    with pytest.raises(BadRequest):
        await bot.set_my_commands([telegram.BotCommand("ok", "")])
    assert last_error(fake) == "Bad Request: command description must be non-empty"
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == ()
    assert any(e.kind == "commands" for e in fake.events_since(user.id))


async def test_chat_action_and_get_chat(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    assert await bot.send_chat_action(alice.id, "typing") is True
    with pytest.raises(BadRequest):
        await bot.send_chat_action(alice.id, "dancing")
    assert last_error(fake) == "Bad Request: wrong parameter action in request"
    chat = await bot.get_chat(alice.id)
    assert chat.id == alice.id and chat.type == "private" and chat.username == "alice_w"
    assert chat.api_kwargs == {}
    assert [e.kind for e in fake.events_since(alice.id)][-1] == "chat_action"
    assert await bot.log_out() is True


async def test_wait_for_times_out_with_transcript(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    await bot.send_message(alice.id, "something else")
    with pytest.raises(AssertionError) as info:
        await alice.wait_for("never", timeout=0.2)
    assert "something else" in str(info.value)
    # wait_for looks at messages after the user's last action; since=0 sees everything
    found = await alice.wait_for("something", timeout=1)
    assert found.text == "something else"
    await alice.send("next")
    with pytest.raises(AssertionError):
        await alice.wait_for("something", timeout=0.1)
    assert (await alice.wait_for("something", since=0, timeout=1)).from_bot


# --------------------------------------------------------------------------------------
# The whole loop with a real PTB Application (polling)
# --------------------------------------------------------------------------------------


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    await context.bot.send_message(
        update.effective_chat.id,
        "<b>Welcome!</b> Pick one:",
        parse_mode="HTML",
        reply_markup=kb(
            [
                InlineKeyboardButton("🇺🇸 Buy", callback_data="buy:us"),
                InlineKeyboardButton("Help", callback_data="help"),
            ]
        ),
    )


async def _on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    if query.data == "help":
        await query.answer("Read the FAQ", show_alert=True)
        return
    await query.answer("Buying…")
    await query.edit_message_text(
        f"Pressed <code>{query.data}</code>",
        parse_mode="HTML",
        reply_markup=kb([InlineKeyboardButton("Cancel", callback_data="cancel")]),
    )


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text(f"echo: {update.message.text}")


def _build_app(fake: FakeTelegram) -> Application:
    app = ApplicationBuilder().token(TOKEN).base_url(fake.api_base).build()
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(CallbackQueryHandler(_on_button))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, _echo))
    return app


async def _run(app: Application) -> None:
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=10)


async def _stop(app: Application) -> None:
    assert app.updater is not None
    await app.updater.stop()
    await app.stop()
    await app.shutdown()


async def test_full_loop_with_ptb_application(fake: FakeTelegram) -> None:
    alice = fake.user(777, "Alice")
    app = _build_app(fake)
    await _run(app)
    try:
        await alice.send("/start")
        welcome = await alice.wait_for("Welcome")
        assert welcome.entity_texts("bold") == ["Welcome!"]
        assert welcome.button_labels == ["🇺🇸 Buy", "Help"]

        answer = await alice.press("Help")
        assert answer.text == "Read the FAQ" and answer.show_alert

        answer = await alice.press(re.compile("Buy"))
        assert answer.text == "Buying…" and not answer.show_alert
        edited = await alice.wait_for(lambda m: m.edited and "Pressed" in m.text)
        assert edited.message_id == welcome.message_id
        assert edited.text == "Pressed buy:us" and edited.button_labels == ["Cancel"]

        # forged data on the same message still reaches the bot (which must validate it)
        forged = await alice.press_data("buy:forged", welcome.message_id)
        assert forged.text == "Buying…"

        await alice.send("hello there")
        echo = await alice.wait_for("echo:")
        assert echo.text == "echo: hello there"
        await fake.wait_idle()
        assert fake.pending_updates == []
    finally:
        await _stop(app)
    methods = {r.method for r in fake.requests}
    assert {"getMe", "deleteWebhook", "getUpdates", "sendMessage"} <= methods
    assert {"answerCallbackQuery", "editMessageText"} <= methods


async def test_unconfirmed_updates_survive_a_bot_restart(fake: FakeTelegram) -> None:
    bob = fake.user(778, "Bob")
    await bob.send("/start")  # sent while no bot is running
    app = _build_app(fake)
    await _run(app)
    try:
        await bob.wait_for("Welcome")
    finally:
        await _stop(app)
    await bob.send("while down")
    app2 = _build_app(fake)
    await _run(app2)
    try:
        assert (await bob.wait_for("echo: while down")).from_bot
        # the /start handled by the first process is not handled again
        assert sum("Welcome" in m.text for m in bob.bot_messages()) == 1
    finally:
        await _stop(app2)


# ------------------------------------------------------------ persistence (issue 9.8)


async def test_chats_survive_a_restart_through_export_and_import(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    """The playground keeps the stand-in's chats across restarts: messages (so edits
    still work), message ids, update offsets, "started"; deleted messages are gone."""
    sent = await bot.send_message(alice.id, "<b>order</b>", parse_mode="HTML",
                                  reply_markup=kb([InlineKeyboardButton("Go", callback_data="g")]))
    secret = await bot.send_message(alice.id, "sk_deleted_secret_0123456789")
    await bot.delete_message(alice.id, secret.message_id)
    updates = await bot.get_updates(timeout=0)
    await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)  # confirmed
    await alice.send("pending")  # not yet fetched by the bot
    state = fake.export_state()
    assert "sk_deleted_secret" not in json.dumps(state)

    fresh = FakeTelegram(TOKEN)
    fresh.import_state(json.loads(json.dumps(state)))
    await fresh.start()
    try:
        again = telegram.Bot(TOKEN, base_url=fresh.api_base)
        await again.initialize()
        try:
            user = fresh.user(alice.id)
            assert [m.text for m in user.chat()] == ["hi", "order", "pending"]
            assert user.message(sent.message_id).entity_texts("bold") == ["order"]
            [pending] = await again.get_updates(timeout=0)  # offsets continue
            assert pending.message is not None and pending.message.text == "pending"
            assert pending.update_id > updates[-1].update_id
            edited = await again.edit_message_text("order · done", chat_id=alice.id,
                                                   message_id=sent.message_id)
            assert isinstance(edited, Message) and edited.message_id == sent.message_id
            new = await again.send_message(alice.id, "after the restart")  # chat started
            assert new.message_id > secret.message_id  # ids never reused
            await user.send("next")
            [nxt] = await again.get_updates(offset=pending.update_id + 1, timeout=0)
            assert nxt.update_id == pending.update_id + 1
        finally:
            await again.shutdown()
    finally:
        await fresh.close()
    with pytest.raises(ValueError):
        FakeTelegram(TOKEN).import_state({"version": 99})
    with pytest.raises(ValueError):
        FakeTelegram(TOKEN).import_state({"version": 1, "chats": [{"user": {}}]})


async def test_a_subclass_can_wrap_every_request() -> None:
    """FakeTelegram._handle is the one entry of every Bot API request, so a subclass
    can wrap it (the benchmarks' TimedFakeTelegram stamps each request this way)."""
    seen: list[tuple[str, int]] = []

    class Stamping(FakeTelegram):
        async def _handle(self, request: web.Request) -> web.Response:
            response = await super()._handle(request)
            seen.append((request.match_info["method"], response.status))
            return response

    fake = Stamping(TOKEN)
    await fake.start()
    try:
        async with telegram.Bot(TOKEN, base_url=fake.api_base) as bot:
            await bot.get_me()
            with pytest.raises(BadRequest):
                await bot.send_message(999, "x")
    finally:
        await fake.close()
    assert ("getMe", 200) in seen
    assert ("sendMessage", 400) in seen
    assert len(seen) == len(fake.calls)


async def test_a_subclass_can_wrap_one_bot_api_method() -> None:
    """Each Bot API method is also FakeTelegram._m_<snake_name>, and requests go through
    it: the soak's PushKillFake wraps _m_send_message to kill the bot right after an OTP
    message was stored."""
    sent: list[str] = []

    class Wrapping(FakeTelegram):
        def _m_send_message(self, p: dict[str, Any]) -> Any:
            result = super()._m_send_message(p)  # type: ignore[misc]
            sent.append(result["text"])
            return result

    fake = Wrapping(TOKEN)
    await fake.start()
    try:
        user = fake.user(1001)
        await user.send("/start")
        async with telegram.Bot(TOKEN, base_url=fake.api_base) as bot:
            await bot.send_message(user.id, "<b>hello</b>", parse_mode="HTML")
            updates = await bot.get_updates(timeout=0)  # an async method, also hooked
    finally:
        await fake.close()
    assert sent == ["hello"]
    assert user.last().text == "hello"
    assert [u.message.text for u in updates if u.message] == ["/start"]


# --------------------------------------------------------------------------------------
# date_time entities (<tg-time>, Bot API "date-time entity formatting")
# --------------------------------------------------------------------------------------

CANCEL_AT = 1_780_000_000  # 2026-05-28 20:26:40 UTC


def test_tg_time_becomes_a_date_time_entity_in_utf16_units() -> None:
    text, ents = parse_html(
        f'😀 <b>Cancel from <tg-time unix="{CANCEL_AT}" format="wDT">20:26 UTC</tg-time></b>, '
        f"refund <tg-time unix='{CANCEL_AT}' format='r'>at 20:26 UTC</tg-time>. "
        f'Bought <tg-time unix="{CANCEL_AT - 60}">20:25 UTC</tg-time>'
    )
    assert text == "😀 Cancel from 20:26 UTC, refund at 20:26 UTC. Bought 20:25 UTC"
    times = [e for e in ents if e["type"] == "date_time"]
    assert times == [
        {
            "type": "date_time",
            "offset": 15,  # the emoji is 2 UTF-16 units
            "length": 9,
            "unix_time": CANCEL_AT,
            "date_time_format": "wDT",
        },
        {
            "type": "date_time",
            "offset": 33,
            "length": 12,
            "unix_time": CANCEL_AT,
            "date_time_format": "r",
        },
        # no format: no date_time_format field (the text is shown as is)
        {"type": "date_time", "offset": 54, "length": 9, "unix_time": CANCEL_AT - 60},
    ]
    # bold may contain a date_time; both survive, and render back to the same HTML
    assert {"type": "bold", "offset": 3, "length": 21} in ents
    assert render_html(text, ents).startswith(
        f'😀 <b>Cancel from <tg-time unix="{CANCEL_AT}" format="wDT">20:26 UTC</tg-time></b>'
    )


@pytest.mark.parametrize("fmt", ["", "r", "w", "d", "D", "t", "T", "wd", "wDt", "dT", "wT", "DT"])
def test_tg_time_accepts_every_documented_format(fmt: str) -> None:
    _, ents = parse_html(f'<tg-time unix="0" format="{fmt}">x</tg-time>')
    assert ents[0]["type"] == "date_time" and ents[0].get("date_time_format", "") == fmt


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<tg-time>x</tg-time>", 'Tag "tg-time" must have attribute "unix"'),
        ('<tg-time format="t">x</tg-time>', 'Tag "tg-time" must have attribute "unix"'),
        ('<tg-time unix="">x</tg-time>', 'Tag "tg-time" must have attribute "unix"'),
        ('<tg-time unix="soon">x</tg-time>', 'Tag "tg-time" must have attribute "unix"'),
        ('<tg-time unix="1.5">x</tg-time>', 'Tag "tg-time" must have attribute "unix"'),
        ('<tg-time unix="-5">x</tg-time>', 'Tag "tg-time" must have attribute "unix"'),
        ('<tg-time unix="99999999999">x</tg-time>', 'Tag "tg-time" must have attribute "unix"'),
        ('<tg-time unix="1" format="rt">x</tg-time>', 'Invalid date-time format "rt"'),
        ('<tg-time unix="1" format="R">x</tg-time>', 'Invalid date-time format "R"'),
        ('<tg-time unix="1" format="Dd">x</tg-time>', 'Invalid date-time format "Dd"'),
        ('<tg-time unix="1" format="tw">x</tg-time>', 'Invalid date-time format "tw"'),
        ('<tg-time unix="1" format="f">x</tg-time>', 'Invalid date-time format "f"'),
    ],
)
async def test_send_message_rejects_a_bad_tg_time(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser, source: str, error: str
) -> None:
    with pytest.raises(BadRequest):
        await bot.send_message(alice.id, f"Cancel from {source}", parse_mode="HTML")
    assert last_error(fake).startswith(f"Bad Request: can't parse entities: {error}")
    assert "at byte offset 12" in last_error(fake)
    assert [m.text for m in alice.chat()] == ["hi"]  # nothing was sent


def test_tg_time_nesting_follows_telegram() -> None:
    # code and pre can't contain it (the time is plain text there), it can't contain a
    # link or code, and it may be part of / contain bold, italic, spoiler, blockquote
    text, ents = parse_html(
        '<code><tg-time unix="5">a</tg-time></code> '
        '<pre><tg-time unix="5">b</tg-time></pre> '
        '<tg-time unix="5"><a href="https://example.com">c</a></tg-time> '
        '<tg-time unix="5"><i>d</i></tg-time> '
        '<blockquote><tg-spoiler><tg-time unix="5" format="t">e</tg-time></tg-spoiler>'
        "</blockquote>"
    )
    assert text == "a b c d e"
    kinds = sorted((e["offset"], e["type"]) for e in ents)
    assert kinds == [
        (0, "code"),
        (2, "pre"),
        (4, "date_time"),  # the link inside it was dropped
        (6, "date_time"),
        (6, "italic"),
        (8, "blockquote"),
        (8, "date_time"),
        (8, "spoiler"),
    ]


async def test_date_time_entity_reaches_ptb_and_the_transcript(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    sent = await bot.send_message(
        alice.id,
        f'⏳ Cancel &amp; refund <tg-time unix="{CANCEL_AT}" format="r">from 20:26 UTC</tg-time>'
        " — see https://example.com",
        parse_mode="HTML",
    )
    raw = fake.calls[-1].response["result"]
    msg = assert_roundtrip_message(raw, bot)  # PTB 22.8 knows every field
    (ent,) = msg.parse_entities([MessageEntity.DATE_TIME])
    assert msg.parse_entities([MessageEntity.DATE_TIME])[ent] == "from 20:26 UTC"
    assert ent.unix_time == dtm.datetime.fromtimestamp(CANCEL_AT, dtm.UTC)
    assert ent.date_time_format == "r"
    assert sent.entities == msg.entities

    last = alice.last()
    assert last.times == [("from 20:26 UTC", CANCEL_AT, "r")]
    assert last.times[0].unix_time == CANCEL_AT and last.times[0].format == "r"
    assert last.entity_texts("url") == ["https://example.com"]
    assert f'<tg-time unix="{CANCEL_AT}" format="r">from 20:26 UTC</tg-time>' in last.html

    # edits keep (and re-validate) it too
    await bot.edit_message_text(
        f'Refunded <tg-time unix="{CANCEL_AT + 5}" format="dt">on 28 May 20:26 UTC</tg-time>',
        chat_id=alice.id,
        message_id=sent.message_id,
        parse_mode="HTML",
    )
    assert alice.last().times == [("on 28 May 20:26 UTC", CANCEL_AT + 5, "dt")]
    with pytest.raises(BadRequest):
        await bot.edit_message_text(
            '<tg-time unix="x">now</tg-time>',
            chat_id=alice.id,
            message_id=sent.message_id,
            parse_mode="HTML",
        )
    assert alice.last().times == [("on 28 May 20:26 UTC", CANCEL_AT + 5, "dt")]


async def test_explicit_date_time_entities_are_checked(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    ok = {"type": "date_time", "offset": 5, "length": 5, "unix_time": CANCEL_AT}
    await bot.send_message(alice.id, "From 20:26", entities=[MessageEntity.de_json(ok, bot)])
    assert alice.last().times == [("20:26", CANCEL_AT, "")]
    async with httpx.AsyncClient(base_url=fake.url) as client:
        for bad_entity, error in [
            ({"type": "date_time", "offset": 0, "length": 4}, 'Field "unix_time"'),
            ({**ok, "unix_time": "soon"}, 'Field "unix_time"'),
            ({**ok, "date_time_format": "x"}, 'invalid date-time format "x"'),
        ]:
            resp = await client.post(
                f"/bot{TOKEN}/sendMessage",
                json={"chat_id": alice.id, "text": "From 20:26", "entities": [bad_entity]},
            )
            assert resp.status_code == 400
            assert error in resp.json()["description"]
    assert len(alice.chat()) == 2  # "hi" and the good one
