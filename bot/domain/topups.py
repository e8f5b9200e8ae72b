"""Wallet top-ups (operator mode): packs, prices, the invoice payload, the checks.

Pure rules, no I/O. A top-up is a row (``topups``) created when the user picks a
pack: it holds the USD amount that will be credited and the price in the
method's unit (Stars for Telegram Stars). The invoice carries only the row's id
(``topup:<id>``); amounts never come from callback data or the client.

=============  ===============================================================
state          meaning
=============  ===============================================================
open           invoice sent, not paid (it may still be paid after it expired:
               the money is then still credited)
paid           credited, exactly once per charge id
refunding      the wallet was debited for a refund; the method's refund call
               is pending or being retried
refunded       refunded by the method (terminal)
refund_failed  the method refused the refund for good; the debit was given
               back (terminal)
=============  ===============================================================

A second payment method (a crypto invoice API, say) implements
:class:`TopUpMethod` (and, for reconciliation, :class:`PaymentSource`); the
wallet and the ledger do not change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = [
    "MAX_STARS",
    "PAYLOAD_PREFIX",
    "IncomingPayment",
    "Pack",
    "PaymentSource",
    "PreCheckoutRefusal",
    "RefundResult",
    "TopUpMethod",
    "TopUpState",
    "check_pre_checkout",
    "credit_for",
    "format_payload",
    "packs",
    "parse_packs",
    "parse_payload",
    "stars_price",
]

# Telegram Stars per invoice (sendInvoice, currency XTR): a positive whole number,
# at most this many.
MAX_STARS = 10000
MAX_PACKS = 8
MAX_PACK_USD = Decimal("10000")
PAYLOAD_PREFIX = "topup:"
_PAYLOAD = re.compile(r"topup:([1-9][0-9]{0,17})")
_PACK = re.compile(r"[0-9]{1,5}(?:\.[0-9]{1,2})?")
CENT = Decimal("0.01")


class TopUpState(StrEnum):
    OPEN = "open"
    PAID = "paid"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    REFUND_FAILED = "refund_failed"


@dataclass(frozen=True, slots=True)
class Pack:
    """One choice on the "Top up" screen: ``index`` into the configured packs."""

    index: int
    usd: Decimal
    price: int  # in the method's unit (Stars)


def parse_packs(text: str) -> tuple[Decimal, ...]:
    """``"1,5,10,25"`` → (1, 5, 10, 25): positive dollar amounts with at most 2
    decimals, distinct, 1..8 of them, each at most 10,000. ValueError otherwise."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts or len(parts) > MAX_PACKS:
        raise ValueError(f"TOPUP_PACKS_USD needs 1 to {MAX_PACKS} amounts")
    amounts: list[Decimal] = []
    for part in parts:
        if not _PACK.fullmatch(part):
            raise ValueError(f"TOPUP_PACKS_USD: not an amount in dollars: {part!r}")
        amount = Decimal(part)
        if amount <= 0 or amount > MAX_PACK_USD:
            raise ValueError(f"TOPUP_PACKS_USD: {part} is not between 0 and {MAX_PACK_USD}")
        if amount in amounts:
            raise ValueError(f"TOPUP_PACKS_USD: {part} is listed twice")
        amounts.append(amount)
    return tuple(amounts)


def stars_price(usd: Decimal, stars_per_usd: Decimal) -> int:
    """The Stars price of ``usd`` dollars, rounded up to a whole Star."""
    stars = (usd * stars_per_usd).to_integral_value(rounding=ROUND_CEILING)
    return int(stars)


def packs(amounts: tuple[Decimal, ...], stars_per_usd: Decimal) -> tuple[Pack, ...]:
    return tuple(
        Pack(i, usd, stars_price(usd, stars_per_usd)) for i, usd in enumerate(amounts)
    )


def credit_for(stars: int, stars_per_usd: Decimal) -> Decimal:
    """What a payment of ``stars`` that names no top-up of ours is worth: the
    dollars at the configured rate, rounded down to the cent."""
    return (Decimal(stars) / stars_per_usd).quantize(CENT, rounding=ROUND_DOWN)


def format_payload(topup_id: int) -> str:
    return f"{PAYLOAD_PREFIX}{topup_id}"


def parse_payload(payload: str | None) -> int | None:
    """The top-up id named by an invoice payload, or None (not ours)."""
    if not payload:
        return None
    match = _PAYLOAD.fullmatch(payload)
    return None if match is None else int(match.group(1))


class PreCheckoutRefusal(StrEnum):
    """Why a pre-checkout query is answered ok=false (each has its own message)."""

    UNKNOWN = "unknown"  # payload not ours / no such row / another user's row
    AMOUNT = "amount"  # currency or total differs from the row
    EXPIRED = "expired"  # the row's lifetime is over
    USED = "used"  # the row was paid already


@dataclass(frozen=True, slots=True)
class TopUpTerms:
    """What the pre-checkout check needs of a top-up row."""

    user_id: int
    currency: str
    price: int
    state: str
    expires_at: float


def check_pre_checkout(
    row: TopUpTerms | None, *, user_id: int, currency: str, total: int, now: float
) -> PreCheckoutRefusal | None:
    """None if the payment may go ahead, else why not."""
    if row is None or row.user_id != user_id:
        return PreCheckoutRefusal.UNKNOWN
    if row.state != TopUpState.OPEN:
        return PreCheckoutRefusal.USED
    if currency != row.currency or total != row.price:
        return PreCheckoutRefusal.AMOUNT
    if now >= row.expires_at:
        return PreCheckoutRefusal.EXPIRED
    return None


# --------------------------------------------------------------------------- methods


class RefundResult(StrEnum):
    DONE = "done"  # refunded now, or it had been refunded already
    RETRY = "retry"  # transient failure: try again later
    REFUSED = "refused"  # refused for good (e.g. unknown charge)


@dataclass(frozen=True, slots=True)
class IncomingPayment:
    """A payment as the method's own records show it (for reconciliation)."""

    charge_id: str
    user_id: int
    payload: str | None
    amount: int  # in the method's unit
    date: float


class TopUpMethod(Protocol):
    """A way to pay for a top-up. The engine uses it to refund and to find
    payments it did not see; the UI sends the invoice."""

    name: str  # stored in topups.method ("stars")
    currency: str  # the invoice currency ("XTR")

    def price(self, usd: Decimal) -> int:
        """The price of ``usd`` dollars in the method's unit."""
        ...

    async def refund(self, user_id: int, charge_id: str) -> RefundResult: ...


@runtime_checkable
class PaymentSource(Protocol):
    async def incoming(self) -> list[IncomingPayment]:
        """Recent incoming payments (newest window the method keeps)."""
        ...
