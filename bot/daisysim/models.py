"""Typed DaisySim responses.

Money is :class:`~decimal.Decimal`: bodies are decoded with
``json.loads(..., parse_float=Decimal)`` (see :func:`decode_json`) so that
``1.0830`` becomes ``Decimal("1.0830")`` exactly; a float handed to a model
directly is converted through its shortest ``repr`` (never binary arithmetic).

Unknown fields are ignored and status strings are plain ``str`` so that a new
upstream status never breaks the client. Anything that does not fit (not JSON,
a required field missing, a wrong type, an envelope without ``success``) raises
:class:`~bot.daisysim.errors.MalformedResponse`; nothing is silently defaulted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar, overload

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from bot.daisysim.errors import MalformedResponse

__all__ = [
    "App",
    "Balance",
    "CancelResult",
    "CheckResult",
    "Country",
    "HistoryPage",
    "Order",
    "Pagination",
    "Provider",
    "Purchase",
    "decode_json",
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


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("amount must be finite")
    return value


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


Money = Annotated[Decimal, BeforeValidator(_to_decimal), AfterValidator(_finite)]
Id = Annotated[str, BeforeValidator(_to_id)]
OptionalCode = Annotated[str | None, BeforeValidator(_blank_to_none)]
OptionalText = Annotated[str | None, BeforeValidator(_to_id)]
Timestamp = Annotated[datetime, AfterValidator(_aware)]

_UNRESOLVABLE = frozenset({"not found", "invalid"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------------------- models


class Balance(_Model):
    balance: Money
    currency: str
    email: str


class Country(_Model):
    id: Id
    name: str


class Provider(_Model):
    provider_id: Id
    price: Money
    count: int


class App(_Model):
    code: str
    name: str
    price: Money
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
    amount_charged: Money
    balance_after: Money | None  # None when recovered through /history
    reconciled: bool = False  # True: the response was lost, found via /history


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
    refund: Money
    balance_after: Money


class Order(_Model):
    activation_id: Id
    phone_number: Id
    service: str
    country: str
    status: str
    code: OptionalCode = None
    amount_charged: Money
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


def decode_json(body: bytes | str) -> Any:
    """Parse a body with every JSON float as an exact Decimal."""
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"body is not JSON: {exc}") from exc


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


def _summarise(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}")
    return "unexpected response shape: " + "; ".join(parts)
