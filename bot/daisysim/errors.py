"""DaisySim exceptions, keyed on the API's machine-readable ``code``.

::

    DaisySimError
    ├── APIError                      the server answered with an error
    │   ├── Unauthenticated           401 UNAUTHENTICATED
    │   ├── AccountSuspended          403 ACCOUNT_SUSPENDED
    │   ├── AccountLocked             403 ACCOUNT_LOCKED
    │   ├── NotFound                  404 NOT_FOUND
    │   ├── ConcurrentError           409 CONCURRENT_ERROR
    │   ├── PriceVerificationFailed   422 PRICE_VERIFICATION_FAILED
    │   ├── CodeReceived              422 CODE_RECEIVED   (.code_value / .otp, .activation_id)
    │   ├── TooEarly                  422 TOO_EARLY       (.seconds_left)
    │   ├── InvalidCountry            422 INVALID_COUNTRY
    │   ├── InsufficientBalance       400 INSUFFICIENT_BALANCE
    │   ├── RateLimited               429 RATE_LIMITED    (.retry_after)
    │   ├── OutOfStock                503 OUT_OF_STOCK
    │   ├── ProviderError             502 PROVIDER_ERROR
    │   ├── ServerError               500 SERVER_ERROR (also any non-JSON 5xx)
    │   └── UnknownAPIError           any other code / unreadable error body
    ├── APIConnectionError            transport failure (.request_sent)
    │   └── APITimeoutError
    ├── MalformedResponse             a body that does not fit the documented shape
    ├── PurchaseOutcomeUnknown        purchase response lost, reconciliation impossible now
    └── PurchaseFailed                purchase response lost, /history proves nothing was bought

``.code`` is always the API's error code (``"CODE_RECEIVED"``...); the OTP of a
``CODE_RECEIVED`` error is ``.code_value`` (alias ``.otp``).

Messages never contain the API key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

__all__ = [
    "ERROR_CODES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountLocked",
    "AccountSuspended",
    "CodeReceived",
    "ConcurrentError",
    "DaisySimError",
    "InsufficientBalance",
    "InvalidCountry",
    "MalformedResponse",
    "NotFound",
    "OutOfStock",
    "PriceVerificationFailed",
    "ProviderError",
    "PurchaseFailed",
    "PurchaseOutcomeUnknown",
    "RateLimited",
    "ServerError",
    "TooEarly",
    "Unauthenticated",
    "UnknownAPIError",
    "decode_json",
    "error_from_response",
    "parse_retry_after",
    "parse_seconds_left",
]

DEFAULT_RETRY_AFTER = 60.0  # a RATE_LIMITED whose message gives no number: wait a full window


class DaisySimError(Exception):
    """Base of everything this package raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        seconds_left: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.seconds_left = seconds_left
        self.data = data

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        return " ".join(parts)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.message!r}, status={self.status!r}, code={self.code!r})"


# --------------------------------------------------------------------------- API errors


class APIError(DaisySimError):
    """The server answered with an error envelope (or an error status)."""

    CODE: ClassVar[str | None] = None


class Unauthenticated(APIError):
    CODE = "UNAUTHENTICATED"


class AccountSuspended(APIError):
    CODE = "ACCOUNT_SUSPENDED"


class AccountLocked(APIError):
    CODE = "ACCOUNT_LOCKED"


class NotFound(APIError):
    CODE = "NOT_FOUND"


class ConcurrentError(APIError):
    """Nothing happened; retry immediately."""

    CODE = "CONCURRENT_ERROR"


class PriceVerificationFailed(APIError):
    """Re-fetch /apps and retry (the service may have disappeared)."""

    CODE = "PRICE_VERIFICATION_FAILED"


class CodeReceived(APIError):
    """Cancel refused: the SMS code already arrived. Treat like a completed check."""

    CODE = "CODE_RECEIVED"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        data = self.data or {}
        code = data.get("code")
        self.code_value: str | None = None if code is None or code == "" else _text(code)
        act = data.get("activation_id")
        self.activation_id: str | None = None if act is None else _text(act)
        phone = data.get("phone_number")
        self.phone_number: str | None = None if phone is None else _text(phone)

    @property
    def otp(self) -> str | None:
        return self.code_value


class TooEarly(APIError):
    """Cancel refused inside the lock; ``seconds_left`` comes from the message."""

    CODE = "TOO_EARLY"

    def __init__(self, message: str, **kwargs: Any) -> None:
        if kwargs.get("seconds_left") is None:
            kwargs["seconds_left"] = parse_seconds_left(message)
        super().__init__(message, **kwargs)


class InvalidCountry(APIError):
    CODE = "INVALID_COUNTRY"


class InsufficientBalance(APIError):
    CODE = "INSUFFICIENT_BALANCE"


class RateLimited(APIError):
    """429; ``retry_after`` (seconds) from the message, else Retry-After, else 60."""

    CODE = "RATE_LIMITED"

    def __init__(self, message: str, **kwargs: Any) -> None:
        if kwargs.get("retry_after") is None:
            parsed = parse_retry_after(message)
            kwargs["retry_after"] = DEFAULT_RETRY_AFTER if parsed is None else parsed
        super().__init__(message, **kwargs)


class OutOfStock(APIError):
    """No numbers in the pool now; nothing was bought."""

    CODE = "OUT_OF_STOCK"


class ProviderError(APIError):
    CODE = "PROVIDER_ERROR"


class ServerError(APIError):
    """500 SERVER_ERROR, and any 5xx whose body is not a readable envelope."""

    CODE = "SERVER_ERROR"


class UnknownAPIError(APIError):
    """An undocumented code, or an error status with an unreadable body."""


ERROR_CODES: dict[str, type[APIError]] = {
    cls.CODE: cls
    for cls in (
        Unauthenticated,
        AccountSuspended,
        AccountLocked,
        NotFound,
        ConcurrentError,
        PriceVerificationFailed,
        CodeReceived,
        TooEarly,
        InvalidCountry,
        InsufficientBalance,
        RateLimited,
        OutOfStock,
        ProviderError,
        ServerError,
    )
    if cls.CODE is not None
}


# --------------------------------------------------------------------------- other errors


class APIConnectionError(DaisySimError):
    """Transport failure.

    ``request_sent`` is False when the connection could not be made (the request
    surely did not reach the server: ConnectError / ConnectTimeout / PoolTimeout),
    True when it may have been sent and the response was lost.
    """

    def __init__(self, message: str, *, request_sent: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    pass


class MalformedResponse(DaisySimError):
    """A response body that is not the documented shape."""


class PurchaseOutcomeUnknown(DaisySimError):
    """The purchase request may have been applied, its response was lost, and
    /history could not be read to find out. Keep the order in ``purchasing`` and
    reconcile later with :meth:`DaisySimClient.reconcile_purchase`."""

    def __init__(
        self,
        message: str,
        *,
        sent_at: float,
        app: str,
        app_name: str | None = None,
        cause: DaisySimError | None = None,
    ) -> None:
        super().__init__(message, status=None if cause is None else cause.status)
        self.sent_at = sent_at
        self.app = app
        self.app_name = app_name
        self.cause = cause


class PurchaseFailed(DaisySimError):
    """The purchase response was lost (or unreadable), and /history shows that
    nothing was bought. ``original`` is the error first seen; ``bought`` is False."""

    bought = False

    def __init__(self, original: DaisySimError) -> None:
        super().__init__(
            f"purchase not completed: {original.message}",
            status=original.status,
            code=original.code,
            retry_after=original.retry_after,
        )
        self.original = original


# --------------------------------------------------------------------------- parsing


_SECONDS_LEFT = re.compile(r"(\d+)\s*(?:more\s+)?sec", re.IGNORECASE)
_ANY_INT = re.compile(r"(\d+)")
_RETRY_AFTER = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec)", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def parse_seconds_left(message: str) -> int | None:
    """``"Please wait 94 more second(s)."`` -> 94."""
    match = _SECONDS_LEFT.search(message) or _ANY_INT.search(message)
    return int(match.group(1)) if match else None


def parse_retry_after(message: str) -> float | None:
    """``"Too many purchase attempts. Please wait 43s."`` -> 43.0."""
    match = _RETRY_AFTER.search(message) or _ANY_NUMBER.search(message)
    return float(match.group(1)) if match else None


def _text(value: object) -> str:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    return str(value)


def _header_retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    raw = None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value
            break
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _status_fallback(
    status: int, message: str, *, retry_after: float | None, **kwargs: Any
) -> APIError:
    """An error status whose body is not a readable error envelope."""
    if status == 401:
        return Unauthenticated(message, status=status, **kwargs)
    if status == 429:
        wait = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
        return RateLimited(message, status=status, retry_after=wait, **kwargs)
    if status >= 500:
        return ServerError(message, status=status, **kwargs)
    # Notably a non-JSON 404 is a wrong URL / proxy page, not "activation not found".
    return UnknownAPIError(message, status=status, **kwargs)


def error_from_response(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
) -> APIError:
    """Build the exception for an error answer.

    ``body`` may be the raw bytes/text or an already-decoded JSON object. A
    ``{"success": false, "code": ...}`` envelope maps through :data:`ERROR_CODES`
    (an unknown code gives :class:`UnknownAPIError`); anything else maps by HTTP
    status (5xx -> :class:`ServerError`, 429 -> :class:`RateLimited`, 401 ->
    :class:`Unauthenticated`, otherwise :class:`UnknownAPIError`).
    """
    header_wait = _header_retry_after(headers)
    payload: Any = body
    if isinstance(body, bytes | str):
        try:
            payload = decode_json(body)
        except MalformedResponse:
            payload = None

    if isinstance(payload, Mapping) and payload.get("success") is False:
        raw_message = payload.get("error")
        if raw_message is None:
            raw_message = payload.get("message")
        message = str(raw_message) if raw_message is not None else f"HTTP {status}"
        raw_code = payload.get("code")
        code = str(raw_code) if raw_code is not None else None
        raw_data = payload.get("data")
        data = dict(raw_data) if isinstance(raw_data, Mapping) else None
        cls = ERROR_CODES.get(code) if code is not None else None
        if cls is None:
            if code is None:
                parsed = parse_retry_after(message) if status == 429 else None
                wait = header_wait if parsed is None else parsed
                return _status_fallback(status, message, data=data, retry_after=wait)
            return UnknownAPIError(message, status=status, code=code, data=data)
        kwargs: dict[str, Any] = {"status": status, "code": code, "data": data}
        if cls is RateLimited and parse_retry_after(message) is None:
            kwargs["retry_after"] = header_wait
        return cls(message, **kwargs)

    snippet = ""
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        snippet = " ".join(text.split())[:120]
    elif payload is not None:
        snippet = json.dumps(payload, default=str)[:120]
    message = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    return _status_fallback(status, message, retry_after=header_wait)


def decode_json(body: bytes | str) -> Any:
    """Parse a body with every JSON float as an exact Decimal (money stays exact);
    a body that is not JSON raises :class:`MalformedResponse`."""
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"body is not JSON: {exc}") from exc
