"""What the fake knows about Telegram Stars payments: the invoices it sent (with the
payload the user never sees), the pre-checkout queries and their answers, the charges
(``telegram_payment_charge_id``) and the bot's Star transactions.

Plain data, no HTTP and no Bot API method (those are in ``methods/payments.py``; the
user's side, paying, is in ``users.py``).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.sandbox.fake_telegram.errors import JSON

STARS = "XTR"
# Telegram Stars per invoice: the Bot API docs give no number; Telegram refuses more than
# 10000 (the same cap as paid media and subscriptions since Bot API 9.0) with
# CURRENCY_TOTAL_AMOUNT_INVALID, the error it gives for any amount out of a currency's range.
MAX_STARS = 10000
# "The Bot API must receive an answer within 10 seconds after the pre-checkout query was sent."
PRE_CHECKOUT_TIMEOUT = 10.0
SUBSCRIPTION_PERIOD = 2592000  # createInvoiceLink: "currently, it must always be 2592000"

_ALNUM = string.ascii_letters + string.digits


def new_charge_id() -> str:
    """A ``telegram_payment_charge_id``: unique, random-looking, shaped like Telegram's."""
    return "stx" + "".join(secrets.choice(_ALNUM) for _ in range(72))


@dataclass
class InvoiceInfo:
    """An invoice the bot sent (sendInvoice) or made a link for (createInvoiceLink)."""

    title: str
    description: str
    payload: str
    currency: str
    total_amount: int
    chat_id: int | None = None
    message_id: int | None = None
    slug: str | None = None
    subscription_period: int | None = None
    paid_charge_id: str | None = None  # an invoice message can be paid once


@dataclass
class PreCheckout:
    """A pre-checkout query the fake sent, and what became of it."""

    id: str
    user_id: int
    chat_id: int
    message_id: int | None  # the invoice message (None: paid through an invoice link)
    currency: str
    total_amount: int
    invoice_payload: str
    created: float
    # pending | paid | declined | expired
    status: str = "pending"
    ok: bool | None = None
    error_message: str | None = None
    charge_id: str | None = None
    update_id: int | None = None  # the pre_checkout_query update
    payment_update_id: int | None = None  # the successful_payment message update
    lose_update: bool = False  # fault: that update is never delivered


@dataclass
class Charge:
    """A successful Stars payment (``telegram_payment_charge_id``)."""

    id: str
    user_id: int
    amount: int
    invoice_payload: str
    date: int
    refunded: bool = False
    refund_date: int | None = None


@dataclass
class PaymentResult:
    """What :meth:`FakeUser.pay` returns: the query, the bot's answer, and the charge id
    when the payment went through (``paid``)."""

    query_id: str
    status: str  # paid | declined | expired
    ok: bool | None
    error_message: str | None
    charge_id: str | None
    payment_update_id: int | None
    duplicate_update_id: int | None = None

    @property
    def paid(self) -> bool:
        return self.status == "paid"


@dataclass
class StarsLedger:
    """All of the above, keyed for the methods: invoices by (chat id, message id) and by
    link slug, queries by id, charges by id, transactions in chronological order."""

    invoices: dict[tuple[int, int], InvoiceInfo] = field(default_factory=dict)
    links: dict[str, InvoiceInfo] = field(default_factory=dict)
    queries: dict[str, PreCheckout] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    transactions: list[JSON] = field(default_factory=list)
    # content of every payment update pushed (for redelivery), by update_id
    updates: dict[int, JSON] = field(default_factory=dict)
    next_query: int = 1

    def export(self) -> JSON:
        return {
            "invoices": [asdict(i) for i in self.invoices.values()],
            "links": [asdict(i) for i in self.links.values()],
            "charges": [asdict(c) for c in self.charges.values()],
            "transactions": self.transactions,
            "next_query": self.next_query,
        }

    def restore(self, saved: Any) -> None:
        """Inverse of :meth:`export` (pre-checkout queries do not survive a restart: their
        10 seconds are over)."""
        if saved is None:
            return
        for raw in saved["invoices"]:
            info = InvoiceInfo(**raw)
            if info.chat_id is not None and info.message_id is not None:
                self.invoices[(info.chat_id, info.message_id)] = info
        for raw in saved["links"]:
            info = InvoiceInfo(**raw)
            if info.slug:
                self.links[info.slug] = info
        for raw in saved["charges"]:
            charge = Charge(**raw)
            self.charges[charge.id] = charge
        known = {(t["id"], "source" in t) for t in self.transactions}
        self.transactions += [
            dict(t) for t in saved["transactions"] if (t["id"], "source" in t) not in known
        ]
        self.next_query = max(self.next_query, int(saved["next_query"]))
