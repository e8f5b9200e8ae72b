"""Telegram Stars payments: sendInvoice, createInvoiceLink, answerPreCheckoutQuery,
refundStarPayment and getStarTransactions.

The parameter checks and their order follow the Bot API server (tdlib/telegram-bot-api
``Client::get_input_message_invoice``: 'Parameter "title" is required', "Can't parse
prices JSON object", "Can't parse labeled price: ...", "There must be at least one
price"), then TDLib's ("Total price must be positive"), then Telegram's own
(CURRENCY_TOTAL_AMOUNT_INVALID, STARS_INVOICE_INVALID, PAYMENT_PROVIDER_INVALID,
REPLY_MARKUP_BUY_EMPTY, CHARGE_ALREADY_REFUNDED). The Bot API server rewrites
QUERY_ID_INVALID to "query is too old and response timeout expired or query ID is
invalid", for pre-checkout queries too, so a second or late answer gets that text.

The fake has no payment providers: only Telegram Stars ("XTR", empty provider_token)
can be paid; any other currency is refused like an invoice with a wrong provider.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from bot.sandbox.fake_telegram.errors import JSON, QUERY_TOO_OLD, bad
from bot.sandbox.fake_telegram.markup import validate_reply_markup
from bot.sandbox.fake_telegram.methods.common import check_can_send, resolve_chat
from bot.sandbox.fake_telegram.params import as_bool
from bot.sandbox.fake_telegram.stars import (
    MAX_STARS,
    PRE_CHECKOUT_TIMEOUT,
    STARS,
    SUBSCRIPTION_PERIOD,
    Charge,
    InvoiceInfo,
    PreCheckout,
    new_charge_id,
)
from bot.sandbox.fake_telegram.state import BotState, Chat, Stored

# Telegram's errors (the server's, after the Bot API's "Bad Request: " prefix)
TITLE_INVALID = "INVOICE_TITLE_INVALID"
DESCRIPTION_INVALID = "INVOICE_DESCRIPTION_INVALID"
PAYLOAD_INVALID = "INVOICE_PAYLOAD_INVALID"
AMOUNT_INVALID = "CURRENCY_TOTAL_AMOUNT_INVALID"
STARS_INVOICE_INVALID = "STARS_INVOICE_INVALID"
PROVIDER_INVALID = "PAYMENT_PROVIDER_INVALID"
BUY_BUTTON_FIRST = "REPLY_MARKUP_BUY_EMPTY"
SUBSCRIPTION_INVALID = "SUBSCRIPTION_PERIOD_INVALID"
CHARGE_NOT_FOUND = "CHARGE_NOT_FOUND"
CHARGE_ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
USER_ID_INVALID = "USER_ID_INVALID"


def _arg(p: JSON, name: str) -> str:
    """A parameter as the Bot API server reads it: always a string ("" when absent)."""
    value = p.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _required(p: JSON, name: str) -> str:
    value = _arg(p, name)
    if value == "":
        raise bad(f'Parameter "{name}" is required')
    return value


def _lenient_int(p: JSON, name: str, default: int) -> int:
    """td::to_integer: "" is the default, garbage is 0."""
    raw = _arg(p, name).strip()
    if raw == "":
        return default
    sign, digits = (-1, raw[1:]) if raw.startswith("-") else (1, raw)
    n = ""
    for ch in digits:
        if not ch.isdigit():
            break
        n += ch
    return sign * int(n) if n else 0


def _prices(p: JSON) -> list[tuple[str, int]]:
    raw: Any = p.get("prices")
    if raw is None or raw == "":
        raise bad('Parameter "prices" is required')
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise bad("Can't parse prices JSON object") from exc
    if not isinstance(raw, list):
        raise bad("Expected an Array of labeled prices")
    out: list[tuple[str, int]] = []
    for item in raw:
        prefix = "Can't parse labeled price: "
        if not isinstance(item, dict):
            raise bad(prefix + "LabeledPrice must be an Object")
        label = item.get("label")
        if not isinstance(label, str):
            raise bad(prefix + 'Field "label" must be of type String')
        if not label:
            raise bad(prefix + "LabeledPrice label must be non-empty")
        amount = item.get("amount")
        if isinstance(amount, str) and amount.strip().lstrip("-").isdigit():
            amount = int(amount)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise bad(prefix + 'Field "amount" must be a valid Number')
        out.append((label, amount))
    if not out:
        raise bad("There must be at least one price")
    return out


def _invoice_info(p: JSON, *, for_link: bool) -> InvoiceInfo:
    """The checks sendInvoice and createInvoiceLink share."""
    title = _required(p, "title")
    description = _required(p, "description")
    payload = _required(p, "payload")
    currency = _required(p, "currency")
    prices = _prices(p)
    total = sum(amount for _, amount in prices)
    if any(amount > 10**15 for _, amount in prices):
        raise bad("Too big amount of the currency specified")
    if total <= 0:
        raise bad("Total price must be positive")
    if not 1 <= len(title) <= 32:
        raise bad(TITLE_INVALID)
    if not 1 <= len(description) <= 255:
        raise bad(DESCRIPTION_INVALID)
    if not 1 <= len(payload.encode("utf-8")) <= 128:
        raise bad(PAYLOAD_INVALID)
    if currency != STARS or _arg(p, "provider_token") != "":
        # no provider is connected to the fake bot: only Stars, with an empty token
        raise bad(PROVIDER_INVALID)
    if (
        len(prices) != 1
        or _lenient_int(p, "max_tip_amount", 0) != 0
        or p.get("suggested_tip_amounts") not in (None, "", [])
    ):
        raise bad(STARS_INVOICE_INVALID)
    if total > MAX_STARS:
        raise bad(AMOUNT_INVALID)
    period: int | None = None
    if for_link and _arg(p, "subscription_period") not in ("", "0"):
        period = _lenient_int(p, "subscription_period", 0)
        if period != SUBSCRIPTION_PERIOD:
            raise bad(SUBSCRIPTION_INVALID)
    return InvoiceInfo(
        title=title,
        description=description,
        payload=payload,
        currency=currency,
        total_amount=total,
        subscription_period=period,
    )


def _invoice_markup(p: JSON) -> JSON | None:
    markup = validate_reply_markup(p.get("reply_markup"), inline_only=True, allow_pay=True)
    return check_pay_buttons(None if markup is None else markup[1], invoice=True)


def check_pay_buttons(markup: JSON | None, *, invoice: bool) -> JSON | None:
    """An invoice's keyboard, if not empty, starts with its one Pay button ("If not
    empty, the first button must be a Pay button"); other messages have none. Returns
    the markup to store (None when empty: Telegram shows its own "Pay ⭐N" button)."""
    if markup is None or not markup["inline_keyboard"]:
        return None
    rows = markup["inline_keyboard"]
    pays = [(r, c) for r, row in enumerate(rows) for c, b in enumerate(row) if b.get("pay")]
    if not invoice and pays:
        raise bad("BUTTON_TYPE_INVALID")
    if invoice and pays != [(0, 0)]:
        raise bad(BUY_BUTTON_FIRST if (0, 0) not in pays else "BUTTON_TYPE_INVALID")
    return markup


def send_invoice(state: BotState, p: JSON) -> JSON:
    info = _invoice_info(p, for_link=False)
    markup = _invoice_markup(p)
    chat = resolve_chat(state, p)
    if p.get("message_thread_id") not in (None, "", 0):
        raise bad("message thread not found")
    check_can_send(state, chat)
    start_parameter = _arg(p, "start_parameter")
    msg: JSON = {
        "message_id": state.new_message_id(chat),
        "from": state.bot_user,
        "chat": chat.user.to_chat_json(),
        "date": int(state.now()),
        "invoice": {
            "title": info.title,
            "description": info.description,
            "start_parameter": start_parameter,
            "currency": info.currency,
            "total_amount": info.total_amount,
        },
    }
    if markup is not None:
        msg["reply_markup"] = markup
    info.chat_id, info.message_id = chat.user.id, msg["message_id"]
    state.stars.invoices[(chat.user.id, msg["message_id"])] = info
    if state.chat_rate_limit is not None:
        chat.send_times.append(state.now())
    stored = Stored(data=msg, from_bot=True)
    chat.messages[msg["message_id"]] = stored
    state.emit(
        chat.user.id, "message", msg["message_id"], {"message": state.snapshot(stored).to_json()}
    )
    return json.loads(json.dumps(msg))


def create_invoice_link(state: BotState, p: JSON) -> str:
    if p.get("business_connection_id"):
        raise bad("business connection not found")
    info = _invoice_info(p, for_link=True)
    slug = secrets.token_urlsafe(15)
    info.slug = slug
    state.stars.links[slug] = info
    return f"https://t.me/${slug}"


def answer_pre_checkout_query(state: BotState, p: JSON) -> bool:
    qid = str(_lenient_int(p, "pre_checkout_query_id", 0))
    ok = as_bool(p, "ok")
    error_message = ""
    if not ok:
        error_message = _required(p, "error_message")
    q = state.stars.queries.get(qid)
    if q is None or q.status != "pending":
        raise bad(QUERY_TOO_OLD)
    if state.now() - q.created > PRE_CHECKOUT_TIMEOUT:
        expire(state, q)
        raise bad(QUERY_TOO_OLD)
    q.ok = ok
    if ok:
        _complete(state, q)
    else:
        q.status = "declined"
        q.error_message = error_message
        _emit_outcome(state, q)
    return True


def expire(state: BotState, q: PreCheckout) -> None:
    """No answer within 10 seconds: the payment fails (the user sees an error)."""
    if q.status == "pending":
        q.status = "expired"
        _emit_outcome(state, q)


def _emit_outcome(state: BotState, q: PreCheckout) -> None:
    state.emit(
        q.chat_id,
        "payment",
        q.message_id,
        {
            "query_id": q.id,
            "status": q.status,
            "error_message": q.error_message,
            "charge_id": q.charge_id,
            "currency": q.currency,
            "total_amount": q.total_amount,
        },
    )


def _partner(state: BotState, user_id: int, payload: str) -> JSON:
    """TransactionPartnerUser of an invoice payment."""
    return {
        "type": "user",
        "transaction_type": "invoice_payment",
        "user": state.users[user_id].to_user_json(),
        "invoice_payload": payload,
    }


def _service_message(
    state: BotState, chat: Chat, key: str, content: JSON, *, deliver: bool = True
) -> int | None:
    """A service message from the user (successful_payment / refunded_payment), stored
    and queued as a ``message`` update (unless not ``deliver``); returns the update_id."""
    msg: JSON = {
        "message_id": state.new_message_id(chat),
        "from": chat.user.to_user_json(),
        "chat": chat.user.to_chat_json(),
        "date": int(state.now()),
        key: content,
    }
    stored = Stored(data=msg, from_bot=False)
    chat.messages[msg["message_id"]] = stored
    state.emit(
        chat.user.id, "message", msg["message_id"], {"message": state.snapshot(stored).to_json()}
    )
    content_update = {"message": json.loads(json.dumps(msg))}
    if not deliver:
        return None
    update_id = state.push_update(content_update)
    state.stars.updates[update_id] = content_update
    return update_id


def _complete(state: BotState, q: PreCheckout) -> None:
    chat = state.chat(q.chat_id)
    now = int(state.now())
    charge = Charge(new_charge_id(), q.user_id, q.total_amount, q.invoice_payload, now)
    state.stars.charges[charge.id] = charge
    info = None if q.message_id is None else state.stars.invoices.get((q.chat_id, q.message_id))
    if info is not None:
        info.paid_charge_id = charge.id
    state.stars.transactions.append(
        {
            "id": charge.id,
            "amount": charge.amount,
            "date": now,
            "source": _partner(state, q.user_id, q.invoice_payload),
        }
    )
    q.status = "paid"
    q.charge_id = charge.id
    q.payment_update_id = _service_message(
        state,
        chat,
        "successful_payment",
        {
            "currency": q.currency,
            "total_amount": q.total_amount,
            "invoice_payload": q.invoice_payload,
            "telegram_payment_charge_id": charge.id,
            "provider_payment_charge_id": "",
        },
        deliver=not q.lose_update,
    )
    _emit_outcome(state, q)


def refund_star_payment(state: BotState, p: JSON) -> bool:
    user_id = max(_lenient_int(p, "user_id", 0), 0)
    if user_id == 0:
        raise bad("Invalid user_id specified")
    charge_id = _required(p, "telegram_payment_charge_id")
    if user_id not in state.users:
        raise bad(USER_ID_INVALID)
    charge = state.stars.charges.get(charge_id)
    if charge is None or charge.user_id != user_id:
        raise bad(CHARGE_NOT_FOUND)
    if charge.refunded:
        raise bad(CHARGE_ALREADY_REFUNDED)
    now = int(state.now())
    charge.refunded = True
    charge.refund_date = now
    state.stars.transactions.append(
        {
            "id": charge.id,
            "amount": charge.amount,
            "date": now,
            "receiver": _partner(state, user_id, charge.invoice_payload),
        }
    )
    _service_message(
        state,
        state.chat(user_id),
        "refunded_payment",
        {
            "currency": STARS,
            "total_amount": charge.amount,
            "invoice_payload": charge.invoice_payload,
            "telegram_payment_charge_id": charge.id,
        },
    )
    return True


def get_star_transactions(state: BotState, p: JSON) -> JSON:
    """In chronological order; ``offset`` skips, ``limit`` is clamped to 1..100 (the
    Bot API server clamps rather than refuses)."""
    offset = max(_lenient_int(p, "offset", 0), 0)
    limit = min(max(_lenient_int(p, "limit", 100), 1), 100)
    page = state.stars.transactions[offset : offset + limit]
    return {"transactions": json.loads(json.dumps(page))}


def new_pre_checkout(
    state: BotState, user_id: int, message_id: int, *, lose_update: bool = False
) -> PreCheckout:
    """The user pressed Pay on invoice ``message_id`` and confirmed: queue the
    pre_checkout_query update. AssertionError (a test mistake) if it is not an unpaid
    invoice of that chat or a payment for it is already waiting for the bot.
    ``lose_update``: once paid, the successful_payment update is never delivered (the
    charge and the Star transaction exist: only getStarTransactions tells the bot)."""
    stars = state.stars
    info = stars.invoices.get((user_id, message_id))
    stored = state.chat(user_id).messages.get(message_id)
    if info is None or stored is None or stored.deleted:
        raise AssertionError(f"message #{message_id} in chat {user_id} is not an invoice")
    if info.paid_charge_id is not None:
        raise AssertionError(f"invoice #{message_id} is paid already")
    for q in stars.queries.values():
        if q.chat_id == user_id and q.message_id == message_id and q.status == "pending":
            if state.now() - q.created <= PRE_CHECKOUT_TIMEOUT:
                raise AssertionError(f"a payment for invoice #{message_id} is in progress")
            expire(state, q)
    return _open_query(state, user_id, message_id, info, lose_update)


def new_link_pre_checkout(
    state: BotState, user_id: int, link: str, *, lose_update: bool = False
) -> PreCheckout:
    """The user opened a createInvoiceLink link and paid (a link can be paid any number
    of times, by anyone); the successful_payment arrives in the user's chat with the bot."""
    info = state.stars.links.get(link.rsplit("$", 1)[-1])
    if info is None or not link.startswith("https://t.me/$"):
        raise AssertionError(f"{link!r} is not an invoice link of this bot")
    state.chat(user_id)  # the user must exist
    return _open_query(state, user_id, None, info, lose_update)


def _open_query(
    state: BotState, user_id: int, message_id: int | None, info: InvoiceInfo, lose_update: bool
) -> PreCheckout:
    stars = state.stars
    qid = str(state.bot_id % 1000 * 10**15 + user_id % 10**6 * 10**6 + 500000 + stars.next_query)
    stars.next_query += 1
    q = PreCheckout(
        id=qid,
        user_id=user_id,
        chat_id=user_id,
        message_id=message_id,
        currency=info.currency,
        total_amount=info.total_amount,
        invoice_payload=info.payload,
        created=state.now(),
        lose_update=lose_update,
    )
    stars.queries[qid] = q
    content = {
        "pre_checkout_query": {
            "id": qid,
            "from": state.users[user_id].to_user_json(),
            "currency": q.currency,
            "total_amount": q.total_amount,
            "invoice_payload": q.invoice_payload,
        }
    }
    q.update_id = state.push_update(json.loads(json.dumps(content)))
    stars.updates[q.update_id] = content
    state.emit(user_id, "pre_checkout_query", message_id, {"query_id": qid})
    return q
