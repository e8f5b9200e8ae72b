"""Conversions between storage rows and the UI's value objects, and the JSON
snapshot stored with each outbox event."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from bot.services.api import Activation, ActivationState, Event, EventKind, RefundReason
from storage.rows import ActivationRow, EventRow

__all__ = ["activation_from_json", "activation_to_json", "event_from_row", "to_activation"]


def to_activation(row: ActivationRow, *, cancel_lock: float, give_up: float) -> Activation:
    purchased_at = row.purchased_at if row.purchased_at is not None else row.purchase_sent_at
    return Activation(
        id=row.id,
        user_id=row.user_id,
        remote_id=row.remote_id,
        service_code=row.service_code,
        service_name=row.service_name,
        provider_id=row.provider_id,
        phone=row.phone,
        price=row.price,
        state=ActivationState(row.state),
        code=row.code,
        purchased_at=purchased_at,
        cancel_after=(
            row.cancel_after if row.cancel_after is not None else purchased_at + cancel_lock
        ),
        expires_at=row.expires_at if row.expires_at is not None else purchased_at + give_up,
        chat_id=row.chat_id,
        message_id=row.message_id,
        refund_amount=row.refund_amount,
        refund_reason=RefundReason(row.refund_reason) if row.refund_reason else None,
        finished_at=row.finished_at,
    )


def activation_to_json(act: Activation) -> str:
    data: dict[str, Any] = {
        "id": act.id,
        "user_id": act.user_id,
        "remote_id": act.remote_id,
        "service_code": act.service_code,
        "service_name": act.service_name,
        "provider_id": act.provider_id,
        "phone": act.phone,
        "price": str(act.price),
        "state": act.state.value,
        "code": act.code,
        "purchased_at": act.purchased_at,
        "cancel_after": act.cancel_after,
        "expires_at": act.expires_at,
        "chat_id": act.chat_id,
        "message_id": act.message_id,
        "refund_amount": None if act.refund_amount is None else str(act.refund_amount),
        "refund_reason": None if act.refund_reason is None else act.refund_reason.value,
        "finished_at": act.finished_at,
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def activation_from_json(text: str) -> Activation:
    d = json.loads(text)
    return Activation(
        id=int(d["id"]),
        user_id=int(d["user_id"]),
        remote_id=d["remote_id"],
        service_code=d["service_code"],
        service_name=d["service_name"],
        provider_id=d["provider_id"],
        phone=d["phone"],
        price=Decimal(d["price"]),
        state=ActivationState(d["state"]),
        code=d["code"],
        purchased_at=float(d["purchased_at"]),
        cancel_after=float(d["cancel_after"]),
        expires_at=float(d["expires_at"]),
        chat_id=d["chat_id"],
        message_id=d["message_id"],
        refund_amount=None if d["refund_amount"] is None else Decimal(d["refund_amount"]),
        refund_reason=None if d["refund_reason"] is None else RefundReason(d["refund_reason"]),
        finished_at=d["finished_at"],
    )


def event_from_row(
    row: EventRow, sending: Callable[[], Awaitable[None]] | None = None
) -> Event:
    return Event(
        id=row.id,
        kind=EventKind(row.kind),
        activation=activation_from_json(row.payload),
        created_at=row.created_at,
        interrupted=row.dispatches > row.attempts,
        sending=sending,
    )
