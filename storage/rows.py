"""Typed rows returned by the repositories (storage-level; ``bot.services`` converts
them to the UI's value objects). Money is :class:`~decimal.Decimal`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.activation import OPEN_STATES, ActivationState

__all__ = [
    "OPEN_STATES",
    "AccountRow",
    "ActivationRow",
    "EventRow",
    "LedgerRow",
    "StrayRow",
    "UserRow",
    "dec",
    "dec_or_none",
]


def dec(value: object) -> Decimal:
    if value is None:
        raise ValueError("NULL where an amount was expected")
    return Decimal(str(value))


def dec_or_none(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    role: str
    locale: str | None
    created_at: float
    settings: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> UserRow:
        return cls(row["id"], row["role"], row["locale"], row["created_at"], row["settings"])


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    kind: str  # "operator" | "user"
    owner_user_id: int | None
    key_hash: str
    key_encrypted: str | None
    key_masked: str
    email: str | None
    created_at: float
    removed_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AccountRow:
        return cls(
            row["id"],
            row["kind"],
            row["owner_user_id"],
            row["key_hash"],
            row["key_encrypted"],
            row["key_masked"],
            row["email"],
            row["created_at"],
            row["removed_at"],
        )


@dataclass(frozen=True, slots=True)
class ActivationRow:
    id: int
    user_id: int
    account_id: int
    remote_id: str | None
    service_code: str
    service_name: str
    provider_id: str | None
    phone: str | None
    price: Decimal
    cost: Decimal | None
    state: ActivationState
    code: str | None
    request_id: str
    purchase_sent_at: float
    purchased_at: float | None
    cancel_after: float | None
    expires_at: float | None
    next_cancel_at: float | None
    cancel_attempts: int
    chat_id: int | None
    message_id: int | None
    refund_amount: Decimal | None
    refund_reason: str | None
    finished_at: float | None
    failure_reason: str | None
    cancel_available_emitted: bool
    # A purchase written off without proof: watched for a late order until then.
    watch_until: float | None = None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ActivationRow:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            account_id=row["account_id"],
            remote_id=row["remote_id"],
            service_code=row["service_code"],
            service_name=row["service_name"],
            provider_id=row["provider_id"],
            phone=row["phone"],
            price=dec(row["price"]),
            cost=dec_or_none(row["cost"]),
            state=ActivationState(row["state"]),
            code=row["code"],
            request_id=row["request_id"],
            purchase_sent_at=row["purchase_sent_at"],
            purchased_at=row["purchased_at"],
            cancel_after=row["cancel_after"],
            expires_at=row["expires_at"],
            next_cancel_at=row["next_cancel_at"],
            cancel_attempts=row["cancel_attempts"],
            chat_id=row["chat_id"],
            message_id=row["message_id"],
            refund_amount=dec_or_none(row["refund_amount"]),
            refund_reason=row["refund_reason"],
            finished_at=row["finished_at"],
            failure_reason=row["failure_reason"],
            cancel_available_emitted=bool(row["cancel_available_emitted"]),
            watch_until=row["watch_until"],
        )


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    user_id: int
    amount: Decimal
    kind: str
    activation_id: int | None
    note: str
    actor_id: int | None
    created_at: float
    # Top-ups (migration 7): the payment's charge id and which entry of it this is
    # ("topup", "refund", "refund_back"); None for every other entry.
    charge_id: str | None = None
    charge_entry: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> LedgerRow:
        return cls(
            row["id"],
            row["user_id"],
            dec(row["amount"]),
            row["kind"],
            row["activation_id"],
            row["note"],
            row["actor_id"],
            row["created_at"],
            row["charge_id"],
            row["charge_entry"],
        )


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    activation_id: int
    kind: str
    payload: str
    created_at: float
    delivered_at: float | None
    attempts: int
    next_attempt_at: float | None
    dispatches: int = 0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> EventRow:
        return cls(
            row["id"],
            row["activation_id"],
            row["kind"],
            row["payload"],
            row["created_at"],
            row["delivered_at"],
            row["attempts"],
            row["next_attempt_at"],
            row["dispatches"],
        )


@dataclass(frozen=True, slots=True)
class StrayRow:
    """An upstream order no activation owns (see migration 0004)."""

    id: int
    account_id: int
    remote_id: str
    activation_id: int | None
    service: str
    phone: str | None
    amount: Decimal
    ordered_at: float
    found_at: float
    state: str  # "cancelling" | "refunded" | "lost"
    code: str | None
    refund: Decimal | None
    next_attempt_at: float | None
    attempts: int
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StrayRow:
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            remote_id=row["remote_id"],
            activation_id=row["activation_id"],
            service=row["service"],
            phone=row["phone"],
            amount=dec(row["amount"]),
            ordered_at=row["ordered_at"],
            found_at=row["found_at"],
            state=row["state"],
            code=row["code"],
            refund=dec_or_none(row["refund"]),
            next_attempt_at=row["next_attempt_at"],
            attempts=row["attempts"],
            finished_at=row["finished_at"],
        )
