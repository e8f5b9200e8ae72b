"""Data of the DaisySim simulator: accounts and their ledger, activations, counters,
money helpers and the API's error types (no behaviour beyond small views)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

CENT4 = Decimal("0.0001")
ACCOUNT_STATES = ("active", "suspended", "locked")
FIRST_ACTIVATION_ID = 32886

MSG_INSUFFICIENT = "Insufficient wallet balance."
MSG_OUT_OF_STOCK = "No numbers available right now. Please try again shortly."
MSG_PRICE_VERIFICATION = "Price verification failed. Please refresh the app list and try again."
MSG_INVALID_COUNTRY = "Country not supported"


def money(value: Decimal | str | int | float) -> Decimal:
    """Parse a money amount (floats via ``str``) and round to 4 decimals."""
    if isinstance(value, float):
        value = str(value)
    return Decimal(value).quantize(CENT4)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class SimError(Exception):
    """An API error: rendered as the error envelope with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.data = data


class ControlError(Exception):
    """A refused control operation (``/_sim/...`` or the Python control API)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class LedgerEntry:
    kind: str  # "deposit" | "adjust" | "charge" | "refund"
    amount: Decimal  # signed: charges negative
    at: float
    activation_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "amount": str(self.amount),
            "at": self.at,
            "activation_id": self.activation_id,
        }


@dataclass
class Account:
    api_key: str
    balance: Decimal
    email: str
    state: str = "active"
    ledger: list[LedgerEntry] = field(default_factory=list)


@dataclass
class Activation:
    id: int
    account: str
    app: str
    pool: str | None
    price: Decimal
    phone: str
    service_label: str
    country_label: str
    purchased_at: float
    expires_at: float
    code: str | None = None
    code_at: float | None = None
    cancelled_at: float | None = None
    refunded: bool = False
    sms_due: tuple[float, str] | None = None  # pending auto-SMS (due time, code)
    cache_until: float | None = None  # 15-s Waiting cache

    @property
    def aid(self) -> str:
        return str(self.id)

    def status(self, now: float) -> str:
        if self.code is not None:
            return "Completed"
        if self.cancelled_at is not None:
            return "Cancelled"
        if now >= self.expires_at:
            return "Expired"
        return "Waiting"


class Stats:
    """Per-account request counters (every authenticated request) and 429 counts."""

    def __init__(self) -> None:
        self.requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.rate_limited: defaultdict[str, int] = defaultdict(int)
        self.rate_limited_by_endpoint: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.unauthenticated = 0

    def count(self, account: str, endpoint: str) -> int:
        per = self.requests.get(account)
        return per.get(endpoint, 0) if per is not None else 0

    def total(self, account: str) -> int:
        per = self.requests.get(account)
        return sum(per.values()) if per is not None else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {k: dict(v) for k, v in self.requests.items()},
            "rate_limited": dict(self.rate_limited),
            "rate_limited_by_endpoint": {
                k: dict(v) for k, v in self.rate_limited_by_endpoint.items()
            },
            "unauthenticated": self.unauthenticated,
        }
