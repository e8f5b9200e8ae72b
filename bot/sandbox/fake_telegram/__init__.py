"""A strict, in-process fake of the Telegram Bot API (HTTP, aiohttp).

The real bot talks to it exactly as it talks to ``api.telegram.org``::

    fake = FakeTelegram("123456:TEST")
    await fake.start()
    bot = telegram.Bot(fake.token, base_url=fake.api_base)

Requests arrive as ``POST /bot<TOKEN>/<method>`` (form fields, multipart, JSON body, or a
GET query string).  Replies are ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "..."}`` with the same HTTP status.

The server is deliberately *strict*: it rejects what Telegram rejects, with Telegram's own
descriptions where they are known (HTML entity parsing is a port of the rules of
Telegram's parser, callback_data is limited to 64 bytes, identical edits are "not
modified", a callback query can be answered once, ...), so that a bot that passes its
tests here does not fail in production on a formatting or keyboard mistake.

It keeps only what the bot uses, plus strictness. The bot sends ``parse_mode=HTML``
only, so HTML is the one parse mode parsed here: "MarkdownV2" and "Markdown", which the
real Telegram accepts, get a clear 400 saying this stand-in supports HTML only (the fake
refuses rather than pretends).

Tests drive users through :class:`FakeUser`::

    alice = fake.user(1001, "Alice")
    await alice.send("/start")
    menu = await alice.wait_for("Welcome")          # a bot message sent/edited after /start
    answer = await alice.press("🇺🇸 Buy")            # waits for answerCallbackQuery
    assert answer.text is None or "…" in answer.text
    edited = await alice.wait_for(lambda m: m.edited and m.message_id == menu.message_id)
    assert fake.calls_to("deleteMessage") == []

Everything the bot did is in :attr:`FakeTelegram.requests` (``(method, params)``) and
:attr:`FakeTelegram.calls` (with status and reply); every change of
a chat is in a per-chat event log with a global, monotonically increasing sequence number
(:meth:`FakeTelegram.events_since`), which the browser chat page streams over a websocket.
Waiting is event-driven (an :class:`asyncio.Event` is fired on every request and every
change); timeouts are safety nets only.

Webhooks: ``setWebhook`` stores the URL and ``secret_token`` (``getUpdates`` then answers
409, as Telegram does). When the webhook's host is this machine (127.0.0.1, localhost,
::1) the fake *delivers* updates to it like Telegram: one at a time, in order, as a JSON
POST with the ``X-Telegram-Bot-Api-Secret-Token`` header; an update stays pending until
the webhook answers 2xx and failures are retried (``getWebhookInfo`` shows the last
error; :attr:`FakeTelegram.webhook_deliveries` lists every attempt). So the same
:class:`FakeUser` API drives a bot in webhook mode. Other hosts are never contacted:
their updates just stay pending. The one deviation from Telegram: plain ``http://``
is accepted for those loopback hosts (tests have no TLS).

Telegram Stars: ``sendInvoice`` / ``createInvoiceLink`` (XTR, one price, empty
provider_token), ``answerPreCheckoutQuery`` (once, within 10 s of the fake's clock),
``refundStarPayment`` and ``getStarTransactions``. A user pays with
``await alice.pay(invoice_message_id)``: the bot gets a ``pre_checkout_query``, and on
``ok`` a ``successful_payment`` message; :meth:`FakeTelegram.redeliver` sends a payment
update twice.

Layout (one module per concern): ``server`` (HTTP, routing, request parsing),
``state`` (chats, messages, the updates queue, events), ``methods/`` (the Bot API
methods by group), ``html`` / ``entities`` / ``markup`` (text and keyboard rules),
``stars`` (the payments ledger), ``users`` (:class:`FakeUser`), ``faults`` (injected
failures), ``persistence`` (export / import of the chats), ``webhook`` (delivery),
``fake`` (the facade).
"""

from bot.sandbox.fake_telegram.entities import MARKDOWN_REFUSED, find_auto_entities, render_html
from bot.sandbox.fake_telegram.errors import EntityParseError, TelegramApiError
from bot.sandbox.fake_telegram.fake import FakeTelegram
from bot.sandbox.fake_telegram.faults import InjectedError
from bot.sandbox.fake_telegram.html import parse_html
from bot.sandbox.fake_telegram.snapshots import (
    Button,
    CallbackAnswer,
    ChatEvent,
    ChatMessage,
    RecordedCall,
    RecordedRequest,
    TimeMention,
    WebhookDelivery,
    format_transcript,
)
from bot.sandbox.fake_telegram.stars import Charge, InvoiceInfo, PaymentResult, PreCheckout
from bot.sandbox.fake_telegram.urls import check_url, utf16_len
from bot.sandbox.fake_telegram.users import FakeUser

__all__ = [
    "MARKDOWN_REFUSED",
    "Button",
    "CallbackAnswer",
    "Charge",
    "ChatEvent",
    "ChatMessage",
    "EntityParseError",
    "FakeTelegram",
    "FakeUser",
    "InjectedError",
    "InvoiceInfo",
    "PaymentResult",
    "PreCheckout",
    "RecordedCall",
    "RecordedRequest",
    "TelegramApiError",
    "TimeMention",
    "WebhookDelivery",
    "check_url",
    "find_auto_entities",
    "format_transcript",
    "parse_html",
    "render_html",
    "utf16_len",
]
