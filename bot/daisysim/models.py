"""Typed DaisySim responses.

Money is :class:`~decimal.Decimal`: bodies are decoded with
``json.loads(..., parse_float=Decimal)`` (see :func:`decode_json`) so that
``1.0830`` becomes ``Decimal("1.0830")`` exactly; a float handed to a model
directly is converted through its shortest ``repr`` (never binary arithmetic).

Unknown fields are ignored and status strings are plain ``str`` so that a new
upstream status never breaks the client. Anything that does not fit (not JSON,
a required field missing, a wrong type, an envelope without ``success``) raises
:class:`~bot.daisysim.errors.MalformedResponse`; nothing is silently defaulted.

Money is bounded here, at the boundary, so that nothing absurd ever reaches the
engine (``quantize`` of ``1e30`` raises, a negative price skips its hold, a zero
``amount_charged`` would be stored as the price). Every amount is finite, at
most :data:`MAX_AMOUNT` (far above any number price; ``quantize`` to 4 decimals
stays exact) and is rounded to 4 decimals (ROUND_HALF_UP, DaisySim's precision):

==============================  ===============  ================================
field                           type             out of range
==============================  ===============  ================================
``App.price``, ``Provider.price``  :data:`Price`  > 0, ≤ :data:`MAX_PRICE`; the
                                                 catalogue entry (app, or one pool
                                                 of an ``sb_*`` app) is left out:
                                                 :func:`parse_catalogue`
``Purchase.amount_charged``     :data:`Price`    the answer is malformed: the
                                                 client reconciles it (unknown
                                                 outcome), never stores it
``Purchase.balance_after``,     :data:`Amount`   ≥ 0 (a balance may be 0): the
``CancelResult.balance_after``,                  answer is malformed
``Balance.balance``
``CancelResult.refund``         :data:`Amount`   ≥ 0 (DaisySim refunds in full, but
                                                 0 is not absurd): malformed; the
                                                 engine retries the cancel, which
                                                 then answers "already cancelled"
``Order.amount_charged``        :data:`Price`    ``None`` (the order still counts:
(/history)                      or ``None``      one bad order must not hide a whole
                                                 page from reconciliation)
==============================  ===============  ================================
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar, overload

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from bot.daisysim.errors import MalformedResponse, decode_json

__all__ = [
    "MAX_AMOUNT",
    "MAX_PRICE",
    "Amount",
    "App",
    "Balance",
    "CancelResult",
    "CheckResult",
    "Country",
    "HistoryPage",
    "Order",
    "Pagination",
    "Price",
    "Provider",
    "Purchase",
    "decode_json",
    "parse_catalogue",
    "parse_data",
    "unwrap_success",
]


# --------------------------------------------------------------------------- field types


def _to_decimal(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, float):
        # repr() is the shortest string that round-trips: 1.083 -> "1.083".
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {value!r}") from exc
    return value


MONEY_QUANTUM = Decimal("0.0001")
MAX_PRICE = Decimal("1000")  # one number; DaisySim's dearest are a few dollars
MAX_AMOUNT = Decimal("1000000000")  # balances: 1e9 (13 digits at 4 dp, exact)


def _bounded(value: Decimal, *, positive: bool, cap: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("amount must be finite")
    if abs(value) > cap:  # checked before rounding: quantize(1e30) would raise
        raise ValueError(f"amount above the sane cap of {cap}")
    value = value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)
    if positive and value <= 0:
        raise ValueError("amount must be positive")
    if value < 0:
        raise ValueError("amount must not be negative")
    return value


def _price(value: Decimal) -> Decimal:
    return _bounded(value, positive=True, cap=MAX_PRICE)


def _amount(value: Decimal) -> Decimal:
    return _bounded(value, positive=False, cap=MAX_AMOUNT)


def _price_or_none(value: object) -> Decimal | None:
    """A /history amount: the bounded price, or None if unreadable/absurd."""
    if value is None:
        return None
    try:
        raw = _to_decimal(value)
        if not isinstance(raw, int | Decimal):
            return None
        return _price(Decimal(raw))
    except (ValueError, ArithmeticError):
        return None


def _to_id(value: object) -> object:
    """Ids (and codes / phone numbers) may arrive as JSON numbers: coerce to str."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    return value


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return _to_id(value)


def _aware(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Price: > 0 and <= MAX_PRICE; Amount (balances, refunds): >= 0 and <= MAX_AMOUNT.
# Both 4 decimals. See the module docstring for which field is which.
Price = Annotated[Decimal, BeforeValidator(_to_decimal), AfterValidator(_price)]
Amount = Annotated[Decimal, BeforeValidator(_to_decimal), AfterValidator(_amount)]
OptionalPrice = Annotated[Decimal | None, BeforeValidator(_price_or_none)]
Id = Annotated[str, BeforeValidator(_to_id)]
OptionalCode = Annotated[str | None, BeforeValidator(_blank_to_none)]
OptionalText = Annotated[str | None, BeforeValidator(_to_id)]
Timestamp = Annotated[datetime, AfterValidator(_aware)]

_UNRESOLVABLE = frozenset({"not found", "invalid"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------------------- models


class Balance(_Model):
    balance: Amount
    currency: str
    email: str


class Country(_Model):
    id: Id
    name: str


class Provider(_Model):
    provider_id: Id
    price: Price
    count: int


class App(_Model):
    code: str
    name: str
    price: Price
    # Documented as "always present"; a missing list means the same as ``[]``.
    providers: list[Provider] = []

    @property
    def multi_pool(self) -> bool:
        """True for ``sb_*`` services (several pools, pass ``provider_id``)."""
        return bool(self.providers)


class Purchase(_Model):
    activation_id: Id
    phone_number: Id
    service: str
    country: str
    # None only when recovered through /history and the order's amount was
    # unreadable there: the engine then records the price the user confirmed.
    amount_charged: Price | None
    balance_after: Amount | None  # None when recovered through /history
    reconciled: bool = False  # True: the response was lost, found via /history

    @model_validator(mode="after")
    def _answer_has_amount(self) -> Purchase:
        if self.amount_charged is None and not self.reconciled:
            raise ValueError("amount_charged is required")
        return self


class CheckResult(_Model):
    activation_id: Id
    status: str
    code: OptionalCode = None
    phone_number: OptionalText = None  # absent for "Not Found" / "Invalid"

    @property
    def completed(self) -> bool:
        """A code is present (whatever the status string says)."""
        return self.code is not None

    @property
    def unresolvable(self) -> bool:
        """``Not Found`` / ``Invalid``: never changes, stop polling this id."""
        return not self.completed and self.status.strip().lower() in _UNRESOLVABLE

    @property
    def waiting(self) -> bool:
        """No code yet and the server still considers the number active.

        Unknown status strings without a code are treated as waiting (keep
        polling until the give-up time); only ``Not Found`` / ``Invalid`` stop.
        """
        return not self.completed and not self.unresolvable


class CancelResult(_Model):
    activation_id: Id
    refund: Amount
    balance_after: Amount


class Order(_Model):
    activation_id: Id
    phone_number: Id
    service: str
    country: str
    status: str
    code: OptionalCode = None
    amount_charged: OptionalPrice  # None: absent, unreadable or absurd (see above)
    created_at: Timestamp
    completed_at: Timestamp | None = None

    @property
    def completed(self) -> bool:
        return self.code is not None


class Pagination(_Model):
    current_page: int
    per_page: int
    total: int
    last_page: int


class HistoryPage(_Model):
    orders: list[Order]
    pagination: Pagination


# --------------------------------------------------------------------------- decoding


def unwrap_success(payload: Any) -> Any:
    """The ``data`` of a ``{"success": true, "data": ...}`` envelope."""
    if not isinstance(payload, dict):
        raise MalformedResponse("response is not a JSON object")
    if payload.get("success") is not True:
        raise MalformedResponse("envelope without success=true")
    if "data" not in payload:
        raise MalformedResponse("success envelope without data")
    return payload["data"]


T = TypeVar("T")

_adapters: dict[Any, TypeAdapter[Any]] = {}


@overload
def parse_data(tp: type[T], data: Any) -> T: ...


@overload
def parse_data(tp: Any, data: Any) -> Any: ...


def parse_data(tp: Any, data: Any) -> Any:
    """Validate ``data`` as ``tp`` (a model or e.g. ``list[App]``)."""
    adapter = _adapters.get(tp)
    if adapter is None:
        adapter = _adapters[tp] = TypeAdapter(tp)
    try:
        result = adapter.validate_python(data)
    except PydanticValidationError as exc:
        raise MalformedResponse(_summarise(exc)) from exc
    return result


def parse_catalogue(data: Any) -> tuple[list[App], list[tuple[str, str]]]:
    """An /apps answer, entry by entry: ``(apps, rejected)``.

    An app that does not validate is left out; so is one pool of an ``sb_*``
    app (the app keeps its other pools and its price becomes the cheapest kept
    pool with stock; with no pool left it is left out too). ``rejected`` lists
    ``(entry, reason)`` with entry ``"<code>"`` or ``"<code>/<provider_id>"``, for
    the caller to log. Raises MalformedResponse if ``data`` is not a list."""
    if not isinstance(data, list):
        raise MalformedResponse("unexpected response shape: the app list is not a list")
    apps: list[App] = []
    rejected: list[tuple[str, str]] = []
    for index, entry in enumerate(data):
        if not isinstance(entry, Mapping):
            rejected.append((f"#{index}", "not an object"))
            continue
        code = str(entry.get("code", f"#{index}"))[:64]
        raw_pools = entry.get("providers")
        if isinstance(raw_pools, list) and raw_pools:
            pools: list[Any] = []
            for pool in raw_pools:
                try:
                    pools.append(parse_data(Provider, pool))
                except MalformedResponse as exc:
                    pid = pool.get("provider_id", "?") if isinstance(pool, Mapping) else "?"
                    rejected.append((f"{code}/{str(pid)[:32]}", exc.message))
            if not pools:
                rejected.append((code, "no valid pool"))
                continue
            entry = {**entry, "providers": pools}
        try:
            app = parse_data(App, entry)
        except MalformedResponse as exc:
            rejected.append((code, exc.message))
            continue
        if app.providers and len(app.providers) < len(raw_pools or ()):
            # A pool was left out: the service price (the cheapest pool with stock)
            # may have been that pool's; derive it from the pools kept.
            kept = [p for p in app.providers if p.count > 0] or list(app.providers)
            app = app.model_copy(update={"price": min(p.price for p in kept)})
        apps.append(app)
    return apps, rejected


def _summarise(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}")
    return "unexpected response shape: " + "; ".join(parts)
