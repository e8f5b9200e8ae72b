"""The public snapshot types tests read: messages, buttons, callback answers, chat
events, and the records of requests and webhook deliveries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from bot.sandbox.fake_telegram.entities import render_html
from bot.sandbox.fake_telegram.errors import JSON
from bot.sandbox.fake_telegram.urls import slice_u16


@dataclass
class Button:
    """One button of an inline keyboard (a snapshot)."""

    text: str
    callback_data: str | None = None
    url: str | None = None
    copy_text: str | None = None
    kind: str = "callback"  # callback | url | copy_text | web_app | pay | other
    raw: JSON = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, b: JSON) -> Button:
        if "callback_data" in b:
            kind = "callback"
        elif "url" in b:
            kind = "url"
        elif "copy_text" in b:
            kind = "copy_text"
        elif "web_app" in b:
            kind = "web_app"
        elif b.get("pay") is True:
            kind = "pay"
        else:
            kind = "other"
        ct = b.get("copy_text")
        return cls(
            text=b["text"],
            callback_data=b.get("callback_data"),
            url=b.get("url"),
            copy_text=ct.get("text") if isinstance(ct, dict) else None,
            kind=kind,
            raw=dict(b),
        )

    def to_json(self) -> JSON:
        return {
            "text": self.text,
            "kind": self.kind,
            "callback_data": self.callback_data,
            "url": self.url,
            "copy_text": self.copy_text,
        }


def _label_matches(label: str | re.Pattern[str], text: str) -> bool:
    if isinstance(label, re.Pattern):
        return label.search(text) is not None
    return text == label


class TimeMention(NamedTuple):
    """A date_time entity of a message: its fallback text, Unix time and format."""

    text: str
    unix_time: int
    format: str  # "" (the text as is), "r", or w?[dD]?[tT]?


@dataclass
class ChatMessage:
    """A message of a chat as it is *now* (snapshot)."""

    message_id: int
    chat_id: int
    from_bot: bool
    text: str
    entities: list[JSON]
    buttons: list[list[Button]]
    edited: bool
    deleted: bool
    date: int
    edit_date: int | None = None
    raw: JSON = field(default_factory=dict, repr=False)
    # payments: the Invoice of an invoice message (title, description, start_parameter,
    # currency, total_amount), whether it was paid, and the service messages about a
    # payment (SuccessfulPayment) or a refund (RefundedPayment)
    invoice: JSON | None = None
    invoice_paid: bool = False
    successful_payment: JSON | None = None
    refunded_payment: JSON | None = None

    @property
    def button_labels(self) -> list[str]:
        return [b.text for row in self.buttons for b in row]

    def find_button(self, label: str | re.Pattern[str]) -> Button | None:
        for row in self.buttons:
            for b in row:
                if _label_matches(label, b.text):
                    return b
        return None

    def has_button(self, label: str | re.Pattern[str]) -> bool:
        return self.find_button(label) is not None

    def button(self, label: str | re.Pattern[str]) -> Button:
        b = self.find_button(label)
        if b is None:
            raise AssertionError(
                f"message #{self.message_id} has no button {label!r}; buttons: {self.button_labels}"
            )
        return b

    def entity_texts(self, etype: str) -> list[str]:
        """Texts covered by entities of ``etype`` (e.g. "bold", "code")."""
        return [
            slice_u16(self.text, e["offset"], e["length"])
            for e in self.entities
            if e["type"] == etype
        ]

    @property
    def times(self) -> list[TimeMention]:
        """The date_time entities (``<tg-time>``): fallback text, Unix time, format."""
        return [
            TimeMention(
                slice_u16(self.text, e["offset"], e["length"]),
                int(e["unix_time"]),
                str(e.get("date_time_format", "")),
            )
            for e in self.entities
            if e["type"] == "date_time"
        ]

    @property
    def html(self) -> str:
        return render_html(self.text, self.entities)

    def to_json(self) -> JSON:
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "from_bot": self.from_bot,
            "text": self.text,
            "entities": self.entities,
            "buttons": [[b.to_json() for b in row] for row in self.buttons],
            "edited": self.edited,
            "deleted": self.deleted,
            "date": self.date,
            "edit_date": self.edit_date,
            "invoice": self.invoice,
            "invoice_paid": self.invoice_paid,
            "successful_payment": self.successful_payment,
            "refunded_payment": self.refunded_payment,
        }

    def describe(self) -> str:
        who = "bot " if self.from_bot else "user"
        flags = (" (edited)" if self.edited else "") + (" (DELETED)" if self.deleted else "")
        text = self.text
        if self.invoice is not None:
            inv = self.invoice
            paid = ", paid" if self.invoice_paid else ""
            text = f"[invoice {inv['title']!r}: {inv['total_amount']} {inv['currency']}{paid}]"
        elif self.successful_payment is not None:
            sp = self.successful_payment
            text = (
                f"[paid {sp['total_amount']} {sp['currency']}: {sp['telegram_payment_charge_id']}]"
            )
        elif self.refunded_payment is not None:
            rp = self.refunded_payment
            text = f"[refunded {rp['total_amount']} {rp['currency']}]"
        lines = [f"#{self.message_id} {who}{flags}: {text}"]
        for row in self.buttons:
            lines.append("      [" + "] [".join(_describe_button(b) for b in row) + "]")
        return "\n".join(lines)


def _describe_button(b: Button) -> str:
    if b.kind == "callback":
        return f"{b.text} -> {b.callback_data}"
    if b.kind == "url":
        return f"{b.text} -> url {b.url}"
    if b.kind == "copy_text":
        return f"{b.text} -> copy {b.copy_text!r}"
    return f"{b.text} ({b.kind})"


def format_transcript(messages: Iterable[ChatMessage]) -> str:
    lines = [m.describe() for m in messages]
    return "\n".join(lines) if lines else "(empty chat)"


@dataclass
class CallbackAnswer:
    """What the bot answered to a callback query (answerCallbackQuery)."""

    query_id: str
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int = 0


@dataclass
class ChatEvent:
    """One change of a chat. ``chat_id`` is None for global events (e.g. commands)."""

    seq: int
    chat_id: int | None
    # message | edited | deleted | callback_query | callback_answer | chat_action |
    # reply_keyboard | commands
    kind: str
    message_id: int | None
    data: JSON

    def to_json(self) -> JSON:
        return {
            "seq": self.seq,
            "chat_id": self.chat_id,
            "kind": self.kind,
            "message_id": self.message_id,
            **self.data,
        }


class RecordedRequest(NamedTuple):
    method: str
    params: JSON


@dataclass
class RecordedCall:
    seq: int
    method: str
    params: JSON
    status: int
    response: JSON
    at: float = 0.0  # the fake's clock when the call arrived (pacing checks)


class WebhookDelivery(NamedTuple):
    """One attempt to POST an update to the webhook: the HTTP status it got (None when
    the connection failed) and, unless 2xx, the error getWebhookInfo reports."""

    update_id: int
    status: int | None
    error: str | None
