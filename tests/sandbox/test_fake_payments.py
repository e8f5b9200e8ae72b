"""Telegram Stars payments in the fake Bot API, over HTTP: sendInvoice /
createInvoiceLink checks, the pre-checkout query (one answer, 10 s on the fake's clock),
successful_payment, refundStarPayment errors, getStarTransactions, redelivery and
persistence of payment updates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice, Message, Update
from telegram.error import BadRequest, Forbidden

from bot.clock import VirtualClock
from bot.sandbox.fake_telegram import FakeTelegram, FakeUser

TOKEN = "123456:TEST-fake-token_abcdefghijklmnopqrstu"
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
START = 1_767_225_600.0


@pytest_asyncio.fixture
async def clock() -> VirtualClock:
    return VirtualClock(START)


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
    b = telegram.Bot(TOKEN, base_url=fake.api_base)
    await b.initialize()
    try:
        yield b
    finally:
        await b.shutdown()


@pytest_asyncio.fixture
async def http(fake: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{fake.api_base}{TOKEN}/") as client:
        yield client


@pytest_asyncio.fixture
async def alice(fake: FakeTelegram) -> FakeUser:
    user = fake.user(1001, "Alice", username="alice_w")
    await user.send("/start")
    return user


async def call(http: httpx.AsyncClient, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """A raw Bot API call with form fields (what Telegram gets from most clients)."""
    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    resp = await http.post(method, data=form)
    body = resp.json()
    assert body["ok"] == (resp.status_code == 200)
    return resp.status_code, body


def invoice_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "chat_id": 1001,
        "title": "Top up $5",
        "description": "Adds $5.00 to your DaisyBot wallet",
        "payload": "topup:42",
        "currency": "XTR",
        "prices": [{"label": "$5.00", "amount": 250}],
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


async def drain(fake: FakeTelegram, http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Fetch and confirm every pending update (as a bot's getUpdates loop does)."""
    _, body = await call(http, "getUpdates", timeout=0)
    updates: list[dict[str, Any]] = body["result"]
    if updates:
        await call(http, "getUpdates", offset=updates[-1]["update_id"] + 1, timeout=0)
    return updates


async def send_invoice(http: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    status, body = await call(http, "sendInvoice", **invoice_params(**overrides))
    assert status == 200, body
    result: dict[str, Any] = body["result"]
    return result


async def answer_next_pre_checkout(
    fake: FakeTelegram, http: httpx.AsyncClient, *, ok: bool = True, error: str | None = None
) -> dict[str, Any]:
    """Act as the bot: wait for the pre_checkout_query update and answer it."""
    for _ in range(200):
        updates = await drain(fake, http)
        queries = [u["pre_checkout_query"] for u in updates if "pre_checkout_query" in u]
        if queries:
            params: dict[str, Any] = {"pre_checkout_query_id": queries[0]["id"], "ok": ok}
            if error is not None:
                params["error_message"] = error
            status, body = await call(http, "answerPreCheckoutQuery", **params)
            assert status == 200, body
            return queries[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no pre_checkout_query update")


# --------------------------------------------------------------------------------------
# sendInvoice / createInvoiceLink
# --------------------------------------------------------------------------------------


async def test_send_invoice_in_stars_records_the_invoice(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    sent = await bot.send_invoice(
        chat_id=alice.id,
        title="Top up $5",
        description="Adds $5.00 to your wallet",
        payload="topup:42",
        currency="XTR",
        prices=[LabeledPrice("$5.00", 250)],
        start_parameter="topup",
    )
    assert isinstance(sent, Message)
    assert sent.api_kwargs == {}
    assert sent.invoice is not None
    assert (sent.invoice.title, sent.invoice.currency, sent.invoice.total_amount) == (
        "Top up $5",
        "XTR",
        250,
    )
    assert sent.invoice.start_parameter == "topup"
    snap = alice.message(sent.message_id)
    assert snap.from_bot and snap.invoice is not None and not snap.invoice_paid
    assert snap.invoice["total_amount"] == 250
    assert snap.to_json()["invoice"]["description"] == "Adds $5.00 to your wallet"
    info = fake.invoice(alice.id, sent.message_id)
    assert info is not None and info.payload == "topup:42"  # the payload is not in the Message
    assert "payload" not in json.dumps(sent.to_dict())


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"title": ""}, 'Bad Request: Parameter "title" is required'),
        ({"description": None}, 'Bad Request: Parameter "description" is required'),
        ({"payload": ""}, 'Bad Request: Parameter "payload" is required'),
        ({"currency": None}, 'Bad Request: Parameter "currency" is required'),
        ({"prices": None}, 'Bad Request: Parameter "prices" is required'),
        ({"prices": "[{oops"}, "Bad Request: Can't parse prices JSON object"),
        ({"prices": []}, "Bad Request: There must be at least one price"),
        (
            {"prices": {"label": "x", "amount": 1}},
            "Bad Request: Expected an Array of labeled prices",
        ),
        (
            {"prices": [{"label": "", "amount": 5}]},
            "Bad Request: Can't parse labeled price: LabeledPrice label must be non-empty",
        ),
        (
            {"prices": [{"label": "x", "amount": 2.5}]},
            'Bad Request: Can\'t parse labeled price: Field "amount" must be a valid Number',
        ),
        ({"prices": [{"label": "x", "amount": 0}]}, "Bad Request: Total price must be positive"),
        ({"prices": [{"label": "x", "amount": -3}]}, "Bad Request: Total price must be positive"),
        ({"title": "T" * 33}, "Bad Request: INVOICE_TITLE_INVALID"),
        ({"description": "d" * 256}, "Bad Request: INVOICE_DESCRIPTION_INVALID"),
        ({"payload": "é" * 65}, "Bad Request: INVOICE_PAYLOAD_INVALID"),  # 130 bytes
        ({"currency": "USD"}, "Bad Request: PAYMENT_PROVIDER_INVALID"),
        ({"currency": "TXR"}, "Bad Request: PAYMENT_PROVIDER_INVALID"),
        ({"provider_token": "284685063:TEST:abc"}, "Bad Request: PAYMENT_PROVIDER_INVALID"),
        (
            {"prices": [{"label": "a", "amount": 100}, {"label": "b", "amount": 50}]},
            "Bad Request: STARS_INVOICE_INVALID",
        ),
        ({"max_tip_amount": 10}, "Bad Request: STARS_INVOICE_INVALID"),
        ({"suggested_tip_amounts": [5]}, "Bad Request: STARS_INVOICE_INVALID"),
        (
            {"prices": [{"label": "x", "amount": 10001}]},
            "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID",
        ),
        ({"chat_id": 999}, "Bad Request: chat not found"),
        (
            {"reply_markup": {"inline_keyboard": [[{"text": "Go", "callback_data": "x"}]]}},
            "Bad Request: REPLY_MARKUP_BUY_EMPTY",
        ),
        (
            {
                "reply_markup": {
                    "inline_keyboard": [
                        [{"text": "Pay", "pay": True}],
                        [{"text": "Pay again", "pay": True}],
                    ]
                }
            },
            "Bad Request: BUTTON_TYPE_INVALID",
        ),
        ({"reply_markup": {"keyboard": [["a"]]}}, "Bad Request: inline keyboard expected"),
    ],
)
async def test_send_invoice_rejections(
    http: httpx.AsyncClient, alice: FakeUser, overrides: dict[str, Any], error: str
) -> None:
    before = len(alice.chat())
    status, body = await call(http, "sendInvoice", **invoice_params(**overrides))
    assert (status, body["description"]) == (400, error)
    assert len(alice.chat()) == before  # nothing was sent


async def test_send_invoice_bounds_are_inclusive(
    fake: FakeTelegram, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    await send_invoice(http, title="T" * 32, description="d" * 255, payload="p" * 128)
    await send_invoice(http, prices=[{"label": "one", "amount": 1}], provider_token="")
    # shipping / contact flags are "ignored for payments in Telegram Stars"
    await send_invoice(http, need_email=True, is_flexible=True, need_shipping_address=True)
    msg = await send_invoice(http, prices=[{"label": "max", "amount": "10000"}], payload="007")
    assert msg["invoice"]["total_amount"] == 10000
    info = fake.invoice(alice.id, msg["message_id"])
    assert info is not None and info.payload == "007"  # a form value stays a string
    assert alice.last().invoice == msg["invoice"]


async def test_send_invoice_to_a_blocked_user_or_a_stranger(
    fake: FakeTelegram, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    fake.user(1002, "Bob")  # never started the bot
    status, body = await call(http, "sendInvoice", **invoice_params(chat_id=1002))
    assert (status, body["description"]) == (
        403,
        "Forbidden: bot can't initiate conversation with a user",
    )
    await alice.block()
    status, body = await call(http, "sendInvoice", **invoice_params())
    assert (status, body["description"]) == (403, "Forbidden: bot was blocked by the user")


async def test_pay_button_only_on_invoices(
    bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    pay_first = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Pay ⭐250", pay=True)],
            [InlineKeyboardButton("Cancel", callback_data="topup:cancel")],
        ]
    )
    msg = await bot.send_invoice(
        alice.id,
        "Top up",
        "Adds $5",
        "p1",
        "XTR",
        [LabeledPrice("$5", 250)],
        reply_markup=pay_first,
    )
    snap = alice.message(msg.message_id)
    assert [b.kind for row in snap.buttons for b in row] == ["pay", "callback"]
    with pytest.raises(BadRequest):
        await bot.send_message(alice.id, "hi", reply_markup=pay_first)
    status, body = await call(
        http, "sendMessage", chat_id=alice.id, text="x", reply_markup=pay_first.to_dict()
    )
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_TYPE_INVALID")


async def test_create_invoice_link(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient
) -> None:
    link = await bot.create_invoice_link(
        "Top up", "Adds $5", "link:1", "XTR", [LabeledPrice("$5", 250)]
    )
    assert link.startswith("https://t.me/$") and len(link) > len("https://t.me/$") + 10
    info = fake.invoice_link(link)
    assert info is not None and (info.payload, info.total_amount) == ("link:1", 250)
    params = invoice_params()
    del params["chat_id"]
    status, body = await call(http, "createInvoiceLink", **{**params, "currency": "EUR"})
    assert (status, body["description"]) == (400, "Bad Request: PAYMENT_PROVIDER_INVALID")
    status, body = await call(http, "createInvoiceLink", **{**params, "subscription_period": 60})
    assert (status, body["description"]) == (400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
    status, body = await call(
        http, "createInvoiceLink", **{**params, "subscription_period": 2592000}
    )
    assert status == 200 and body["result"].startswith("https://t.me/$")
    assert body["result"] != link


# --------------------------------------------------------------------------------------
# Paying: pre_checkout_query, answerPreCheckoutQuery, successful_payment
# --------------------------------------------------------------------------------------


async def test_pay_happy_path(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    msg = await send_invoice(http)
    await drain(fake, http)
    paying = asyncio.create_task(alice.pay(msg["message_id"]))
    query = await answer_next_pre_checkout(fake, http)
    assert query["from"]["id"] == alice.id
    assert (query["currency"], query["total_amount"], query["invoice_payload"]) == (
        "XTR",
        250,
        "topup:42",
    )
    result = await paying
    assert result.paid and result.ok is True and result.error_message is None
    assert result.charge_id is not None and result.charge_id.startswith("stx")
    updates = await drain(fake, http)
    assert [u["update_id"] for u in updates] == [result.payment_update_id]
    update = Update.de_json(updates[0], bot)
    assert update is not None and update.message is not None
    sp = update.message.successful_payment
    assert sp is not None and update.message.from_user is not None
    assert update.message.from_user.id == alice.id
    assert (sp.currency, sp.total_amount, sp.invoice_payload) == ("XTR", 250, "topup:42")
    assert sp.telegram_payment_charge_id == result.charge_id
    assert sp.api_kwargs == {}
    # the transcript shows the invoice as paid and the payment as a service message
    assert alice.message(msg["message_id"]).invoice_paid
    assert alice.chat()[-1].successful_payment == updates[0]["message"]["successful_payment"]
    assert fake.charges[result.charge_id].amount == 250
    assert fake.star_balance == 250
    # an invoice message is paid once
    with pytest.raises(AssertionError, match="paid already"):
        await alice.pay(msg["message_id"])


async def test_pre_checkout_query_parses_in_ptb(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    msg = await send_invoice(http)
    await drain(fake, http)
    query_id = alice.pay_nowait(msg["message_id"])
    updates = await drain(fake, http)
    update = Update.de_json(updates[0], bot)
    assert update is not None and update.pre_checkout_query is not None
    pcq = update.pre_checkout_query
    assert pcq.id == query_id and pcq.api_kwargs == {}
    assert (pcq.total_amount, pcq.invoice_payload, pcq.from_user.id) == (250, "topup:42", 1001)
    assert await bot.answer_pre_checkout_query(query_id, ok=True) is True
    result = await fake.wait_payment(query_id)
    assert result.paid


async def test_declined_payment_shows_the_bots_message(
    fake: FakeTelegram, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    msg = await send_invoice(http)
    paying = asyncio.create_task(alice.pay(msg["message_id"]))
    await answer_next_pre_checkout(fake, http, ok=False, error="This top-up has expired")
    result = await paying
    assert (result.status, result.ok, result.error_message) == (
        "declined",
        False,
        "This top-up has expired",
    )
    assert result.charge_id is None and fake.charges == {} and fake.star_transactions == []
    assert not any(m.successful_payment for m in alice.chat())
    events = [e for e in fake.events_since(alice.id) if e.kind == "payment"]
    assert events[-1].data["status"] == "declined"
    assert events[-1].data["error_message"] == "This top-up has expired"
    assert not alice.message(msg["message_id"]).invoice_paid
    # a declined invoice can be paid again (a new query)
    paying = asyncio.create_task(alice.pay(msg["message_id"]))
    await answer_next_pre_checkout(fake, http)
    assert (await paying).paid


async def test_answer_pre_checkout_query_rules(
    fake: FakeTelegram, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    msg = await send_invoice(http)
    query_id = alice.pay_nowait(msg["message_id"])
    status, body = await call(
        http, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok=False
    )
    assert (status, body["description"]) == (
        400,
        'Bad Request: Parameter "error_message" is required',
    )
    status, body = await call(http, "answerPreCheckoutQuery", pre_checkout_query_id="123", ok=True)
    assert (status, body["description"]) == (400, QUERY_TOO_OLD)
    status, body = await call(http, "answerPreCheckoutQuery", pre_checkout_query_id="x", ok=True)
    assert (status, body["description"]) == (400, QUERY_TOO_OLD)
    status, _ = await call(http, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok=True)
    assert status == 200
    # exactly one answer per query
    for ok in (True, False):
        status, body = await call(
            http,
            "answerPreCheckoutQuery",
            pre_checkout_query_id=query_id,
            ok=ok,
            error_message="no",
        )
        assert (status, body["description"]) == (400, QUERY_TOO_OLD)
    assert (await fake.wait_payment(query_id)).paid
    assert len(fake.charges) == 1


async def test_no_answer_within_10_seconds_fails_the_payment(
    fake: FakeTelegram, clock: VirtualClock, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    msg = await send_invoice(http)
    paying = asyncio.create_task(alice.pay(msg["message_id"]))
    await asyncio.sleep(0.05)
    clock.advance(9.5)
    await asyncio.sleep(0.05)
    assert not paying.done()
    clock.advance(1.0)
    result = await paying
    assert (result.status, result.ok, result.charge_id) == ("expired", None, None)
    query_id = result.query_id
    status, body = await call(
        http, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok=True
    )
    assert (status, body["description"]) == (400, QUERY_TOO_OLD)
    assert fake.charges == {}
    assert not any(m.successful_payment for m in alice.chat())
    events = [e for e in fake.events_since(alice.id) if e.kind == "payment"]
    assert [e.data["status"] for e in events] == ["expired"]


async def test_a_late_answer_is_too_old_even_before_the_waiter_noticed(
    fake: FakeTelegram, clock: VirtualClock, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    msg = await send_invoice(http)
    query_id = alice.pay_nowait(msg["message_id"])
    clock.advance(10.5)
    status, body = await call(
        http, "answerPreCheckoutQuery", pre_checkout_query_id=query_id, ok=True
    )
    assert (status, body["description"]) == (400, QUERY_TOO_OLD)
    assert fake.pre_checkout(query_id).status == "expired"
    assert fake.charges == {}


async def test_charge_ids_are_unique(
    fake: FakeTelegram, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    ids = set()
    for i in range(5):
        msg = await send_invoice(http, payload=f"topup:{i}")
        paying = asyncio.create_task(alice.pay(msg["message_id"]))
        await answer_next_pre_checkout(fake, http)
        result = await paying
        assert result.charge_id is not None
        ids.add(result.charge_id)
    assert len(ids) == 5
    assert fake.star_balance == 5 * 250


async def test_duplicate_successful_payment(
    fake: FakeTelegram, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    msg = await send_invoice(http)
    await drain(fake, http)
    paying = asyncio.create_task(alice.pay(msg["message_id"], duplicate=True))
    await answer_next_pre_checkout(fake, http)
    result = await paying
    assert result.duplicate_update_id is not None
    updates = await drain(fake, http)
    assert [u["update_id"] for u in updates] == [
        result.payment_update_id,
        result.duplicate_update_id,
    ]
    assert updates[0]["message"] == updates[1]["message"]
    assert len(fake.charges) == 1 and len(fake.star_transactions) == 1
    # redeliver works for any payment update, again and again
    assert result.payment_update_id is not None
    again = fake.redeliver(result.payment_update_id)
    assert [u["message"] for u in await drain(fake, http)] == [updates[0]["message"]]
    assert again > result.duplicate_update_id
    with pytest.raises(KeyError):
        fake.redeliver(1)


async def test_unconfirmed_payment_update_is_delivered_again(
    fake: FakeTelegram, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    """A bot that crashed after getUpdates but before the next offset sees it again."""
    msg = await send_invoice(http)
    await drain(fake, http)
    paying = asyncio.create_task(alice.pay(msg["message_id"]))
    await answer_next_pre_checkout(fake, http)
    result = await paying
    _, first = await call(http, "getUpdates", timeout=0)  # fetched, never confirmed
    _, second = await call(http, "getUpdates", timeout=0)
    assert [u["update_id"] for u in first["result"]] == [result.payment_update_id]
    assert second["result"] == first["result"]
    # ... and across a restart of the fake (export / import of the state)
    saved = fake.export_state()
    assert json.loads(json.dumps(saved)) == saved
    async with FakeTelegram(TOKEN) as restarted:
        restarted.import_state(saved)
        async with httpx.AsyncClient(base_url=f"{restarted.api_base}{TOKEN}/") as http2:
            _, third = await call(http2, "getUpdates", timeout=0)
            assert third["result"] == first["result"]
            assert result.charge_id in restarted.charges
            assert restarted.invoice(alice.id, msg["message_id"]) is not None
            assert restarted.message(alice.id, msg["message_id"]).invoice_paid  # type: ignore[union-attr]
            status, _ = await call(
                http2,
                "refundStarPayment",
                user_id=alice.id,
                telegram_payment_charge_id=result.charge_id,
            )
            assert status == 200
            assert len(restarted.star_transactions) == 2


async def test_pre_checkout_query_is_delivered_to_a_webhook(
    fake: FakeTelegram, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    from aiohttp import web

    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        msg = await send_invoice(http)
        await call(http, "setWebhook", url=f"http://127.0.0.1:{port}/hook")
        query_id = alice.pay_nowait(msg["message_id"])
        await fake.wait_idle()
        assert any(u.get("pre_checkout_query", {}).get("id") == query_id for u in got)
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------------------
# refundStarPayment / getStarTransactions
# --------------------------------------------------------------------------------------


async def paid_charge(
    fake: FakeTelegram, http: httpx.AsyncClient, user: FakeUser, **kw: Any
) -> str:
    msg = await send_invoice(http, chat_id=user.id, **kw)
    paying = asyncio.create_task(user.pay(msg["message_id"]))
    await answer_next_pre_checkout(fake, http)
    result = await paying
    assert result.charge_id is not None
    return result.charge_id


async def test_refund_star_payment(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    charge_id = await paid_charge(fake, http, alice)
    await drain(fake, http)
    assert await bot.refund_star_payment(alice.id, charge_id) is True
    assert fake.charges[charge_id].refunded
    updates = await drain(fake, http)
    update = Update.de_json(updates[0], bot)
    assert update is not None and update.message is not None
    refunded = update.message.refunded_payment
    assert refunded is not None and refunded.api_kwargs == {}
    assert (refunded.telegram_payment_charge_id, refunded.total_amount) == (charge_id, 250)
    assert fake.star_balance == 0
    # CHARGE_ALREADY_REFUNDED (a bot should count it as done)
    with pytest.raises(BadRequest, match=r"(?i)charge_already_refunded"):
        await bot.refund_star_payment(alice.id, charge_id)
    status, body = await call(
        http, "refundStarPayment", user_id=alice.id, telegram_payment_charge_id=charge_id
    )
    assert (status, body["description"]) == (400, "Bad Request: CHARGE_ALREADY_REFUNDED")
    assert len(fake.star_transactions) == 2  # refunded once


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"telegram_payment_charge_id": "CHARGE"}, "Bad Request: Invalid user_id specified"),
        (
            {"user_id": "abc", "telegram_payment_charge_id": "CHARGE"},
            "Bad Request: Invalid user_id specified",
        ),
        ({"user_id": 1001}, 'Bad Request: Parameter "telegram_payment_charge_id" is required'),
        (
            {"user_id": 1001, "telegram_payment_charge_id": "stxNOPE"},
            "Bad Request: CHARGE_NOT_FOUND",
        ),
        (
            {"user_id": 1002, "telegram_payment_charge_id": "CHARGE"},
            "Bad Request: CHARGE_NOT_FOUND",
        ),
        ({"user_id": 4242, "telegram_payment_charge_id": "CHARGE"}, "Bad Request: USER_ID_INVALID"),
    ],
)
async def test_refund_star_payment_errors(
    fake: FakeTelegram,
    http: httpx.AsyncClient,
    alice: FakeUser,
    params: dict[str, Any],
    error: str,
) -> None:
    fake.user(1002, "Bob")
    charge_id = await paid_charge(fake, http, alice)
    if params.get("telegram_payment_charge_id") == "CHARGE":
        params = {**params, "telegram_payment_charge_id": charge_id}
    status, body = await call(http, "refundStarPayment", **params)
    assert (status, body["description"]) == (400, error)
    assert not fake.charges[charge_id].refunded
    assert len(fake.star_transactions) == 1


async def test_get_star_transactions(
    fake: FakeTelegram,
    bot: telegram.Bot,
    http: httpx.AsyncClient,
    alice: FakeUser,
    clock: VirtualClock,
) -> None:
    bob = fake.user(1002, "Bob")
    await bob.send("/start")
    first = await paid_charge(fake, http, alice, payload="a:1")
    clock.advance(60)
    second = await paid_charge(
        fake, http, bob, payload="b:1", prices=[{"label": "x", "amount": 500}]
    )
    clock.advance(60)
    assert await bot.refund_star_payment(alice.id, first)
    txs = await bot.get_star_transactions()
    assert [t.id for t in txs.transactions] == [first, second, first]
    assert [t.amount for t in txs.transactions] == [250, 500, 250]
    assert [int(t.date.timestamp()) for t in txs.transactions] == [
        int(START),
        int(START) + 60,
        int(START) + 120,
    ]
    incoming, _, refund = txs.transactions
    assert incoming.source is not None and incoming.receiver is None
    assert refund.receiver is not None and refund.source is None
    src = incoming.source
    assert isinstance(src, telegram.TransactionPartnerUser)
    assert (src.transaction_type, src.user.id, src.invoice_payload) == (
        "invoice_payment",
        1001,
        "a:1",
    )
    assert refund.receiver.user.id == 1001  # type: ignore[attr-defined]
    assert incoming.api_kwargs == {} and src.api_kwargs == {}
    page = await bot.get_star_transactions(offset=1, limit=1)
    assert [t.id for t in page.transactions] == [second]
    # limit is clamped to 1..100, offset at 0, like the Bot API server
    _, body = await call(http, "getStarTransactions", offset=-5, limit=0)
    assert [t["id"] for t in body["result"]["transactions"]] == [first]
    _, body = await call(http, "getStarTransactions", limit=1000)
    assert len(body["result"]["transactions"]) == 3
    _, body = await call(http, "getStarTransactions", offset=3)
    assert body["result"] == {"transactions": []}


async def test_refund_works_after_the_user_blocked_the_bot(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    """A refund does not need the chat: it works after the user blocked the bot."""
    charge_id = await paid_charge(fake, http, alice)
    await alice.block()
    assert await bot.refund_star_payment(alice.id, charge_id) is True
    with pytest.raises(Forbidden):
        await bot.send_invoice(alice.id, "T", "D", "p", "XTR", [LabeledPrice("x", 1)])


# --------------------------------------------------------------------------------------
# Faults a bot must survive, and the real PTB Application
# --------------------------------------------------------------------------------------


async def test_lost_answer_to_answer_pre_checkout_query(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    """drop_response: the answer reached Telegram but the bot never heard back; its
    retry is refused (one answer per query) and the payment went through all the same."""
    msg = await send_invoice(http)
    query_id = alice.pay_nowait(msg["message_id"])
    fake.drop_response("answerPreCheckoutQuery")
    with pytest.raises(telegram.error.NetworkError):
        await bot.answer_pre_checkout_query(query_id, ok=True)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_pre_checkout_query(query_id, ok=True)
    result = await fake.wait_payment(query_id)
    assert result.paid and len(fake.charges) == 1


async def test_lost_answer_to_refund_then_already_refunded(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    charge_id = await paid_charge(fake, http, alice)
    fake.drop_response("refundStarPayment")
    with pytest.raises(telegram.error.NetworkError):
        await bot.refund_star_payment(alice.id, charge_id)
    assert fake.charges[charge_id].refunded  # it happened
    with pytest.raises(BadRequest, match=r"(?i)charge_already_refunded"):
        await bot.refund_star_payment(alice.id, charge_id)
    assert fake.star_balance == 0 and len(fake.star_transactions) == 2


async def test_injected_errors_reach_payment_methods(
    fake: FakeTelegram, bot: telegram.Bot, alice: FakeUser
) -> None:
    fake.inject_error("sendInvoice", 429, retry_after=3)
    with pytest.raises(telegram.error.RetryAfter):
        await bot.send_invoice(alice.id, "T", "D", "p", "XTR", [LabeledPrice("x", 1)])
    assert alice.chat()[-1].invoice is None
    await bot.send_invoice(alice.id, "T", "D", "p", "XTR", [LabeledPrice("x", 1)])
    assert alice.chat()[-1].invoice is not None


async def test_real_ptb_application_takes_a_payment(fake: FakeTelegram) -> None:
    """The PTB Application (polling, handlers) against the fake: PreCheckoutQueryHandler
    answers, filters.SUCCESSFUL_PAYMENT sees the charge; a duplicate arrives twice."""
    from telegram.ext import (
        Application,
        ContextTypes,
        MessageHandler,
        PreCheckoutQueryHandler,
        filters,
    )

    seen: list[str] = []

    async def pre_checkout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        q = update.pre_checkout_query
        assert q is not None
        if q.invoice_payload == "topup:ok":
            await q.answer(ok=True)
        else:
            await q.answer(ok=False, error_message="Unknown top-up")

    async def paid(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.successful_payment is not None
        seen.append(update.message.successful_payment.telegram_payment_charge_id)

    app = Application.builder().token(TOKEN).base_url(fake.api_base).build()
    app.add_handler(PreCheckoutQueryHandler(pre_checkout))
    app.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, paid))
    alice = fake.user(1001, "Alice")
    await alice.send("/start")
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES
        )
        try:
            good = await app.bot.send_invoice(
                alice.id, "Top up", "Adds $5", "topup:ok", "XTR", [LabeledPrice("$5", 250)]
            )
            bad_one = await app.bot.send_invoice(
                alice.id, "Top up", "Adds $5", "topup:gone", "XTR", [LabeledPrice("$5", 250)]
            )
            declined = await alice.pay(bad_one.message_id)
            assert (declined.status, declined.error_message) == ("declined", "Unknown top-up")
            result = await alice.pay(good.message_id, duplicate=True)
            assert result.paid
            await fake.wait_idle()
            assert seen == [result.charge_id, result.charge_id]
        finally:
            await app.updater.stop()
            await app.stop()


async def test_lost_successful_payment_shows_only_in_star_transactions(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    """Fault for reconciliation: the payment is made but its update never arrives."""
    msg = await send_invoice(http)
    await drain(fake, http)
    paying = asyncio.create_task(alice.pay(msg["message_id"], lose_update=True))
    await answer_next_pre_checkout(fake, http)
    result = await paying
    assert result.paid and result.payment_update_id is None and result.charge_id
    assert await drain(fake, http) == []
    assert alice.chat()[-1].successful_payment is not None  # the user saw it go through
    txs = await bot.get_star_transactions()
    assert [(t.id, t.amount) for t in txs.transactions] == [(result.charge_id, 250)]
    source = txs.transactions[0].source
    assert isinstance(source, telegram.TransactionPartnerUser)
    assert source.invoice_payload == "topup:42"


async def test_pay_an_invoice_link(
    fake: FakeTelegram, bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    link = await bot.create_invoice_link(
        "Top up", "Adds $5", "link:9", "XTR", [LabeledPrice("$5", 250)]
    )
    await drain(fake, http)
    charges = []
    for _ in range(2):  # a link can be paid again
        paying = asyncio.create_task(alice.pay_link(link))
        query = await answer_next_pre_checkout(fake, http)
        assert query["invoice_payload"] == "link:9"
        result = await paying
        assert result.paid
        charges.append(result.charge_id)
        updates = await drain(fake, http)
        sp = updates[0]["message"]["successful_payment"]
        assert sp["telegram_payment_charge_id"] == result.charge_id
        assert updates[0]["message"]["chat"]["id"] == alice.id
    assert len(set(charges)) == 2
    with pytest.raises(AssertionError, match="not an invoice link"):
        await alice.pay_link("https://t.me/$nope")


async def test_edit_reply_markup_of_an_invoice(
    bot: telegram.Bot, http: httpx.AsyncClient, alice: FakeUser
) -> None:
    msg = await send_invoice(http)
    mid = msg["message_id"]
    pay_then_cancel = {
        "inline_keyboard": [[{"text": "Pay", "pay": True}], [{"text": "X", "callback_data": "x"}]]
    }
    status, _ = await call(
        http,
        "editMessageReplyMarkup",
        chat_id=alice.id,
        message_id=mid,
        reply_markup=pay_then_cancel,
    )
    assert status == 200
    assert [b.kind for row in alice.message(mid).buttons for b in row] == ["pay", "callback"]
    no_pay = {"inline_keyboard": [[{"text": "X", "callback_data": "x"}]]}
    status, body = await call(
        http, "editMessageReplyMarkup", chat_id=alice.id, message_id=mid, reply_markup=no_pay
    )
    assert (status, body["description"]) == (400, "Bad Request: REPLY_MARKUP_BUY_EMPTY")
    status, _ = await call(http, "editMessageReplyMarkup", chat_id=alice.id, message_id=mid)
    assert status == 200 and alice.message(mid).buttons == []  # Telegram's own Pay button
    status, body = await call(
        http, "editMessageText", chat_id=alice.id, message_id=mid, text="changed"
    )
    assert (status, body["description"]) == (
        400,
        "Bad Request: there is no text in the message to edit",
    )
    text = await bot.send_message(alice.id, "plain")
    status, body = await call(
        http,
        "editMessageReplyMarkup",
        chat_id=alice.id,
        message_id=text.message_id,
        reply_markup=pay_then_cancel,
    )
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_TYPE_INVALID")
