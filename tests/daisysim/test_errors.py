"""Error mapping: every documented code, parsing of waits, non-JSON error bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.daisysim import errors as E
from bot.daisysim.errors import ERROR_CODES, error_from_response

DOCUMENTED = [
    (401, "UNAUTHENTICATED", E.Unauthenticated),
    (403, "ACCOUNT_SUSPENDED", E.AccountSuspended),
    (403, "ACCOUNT_LOCKED", E.AccountLocked),
    (404, "NOT_FOUND", E.NotFound),
    (409, "CONCURRENT_ERROR", E.ConcurrentError),
    (422, "PRICE_VERIFICATION_FAILED", E.PriceVerificationFailed),
    (422, "CODE_RECEIVED", E.CodeReceived),
    (422, "TOO_EARLY", E.TooEarly),
    (422, "INVALID_COUNTRY", E.InvalidCountry),
    (400, "INSUFFICIENT_BALANCE", E.InsufficientBalance),
    (429, "RATE_LIMITED", E.RateLimited),
    (503, "OUT_OF_STOCK", E.OutOfStock),
    (502, "PROVIDER_ERROR", E.ProviderError),
    (500, "SERVER_ERROR", E.ServerError),
]


def envelope(code: str, message: str = "Something.", data: Any = None) -> bytes:
    body: dict[str, Any] = {"success": False, "error": message, "code": code}
    if data is not None:
        body["data"] = data
    return json.dumps(body).encode()


def test_mapping_covers_every_documented_code() -> None:
    assert set(ERROR_CODES) == {code for _, code, _ in DOCUMENTED}


@pytest.mark.parametrize(("status", "code", "cls"), DOCUMENTED)
def test_every_code_maps_to_its_class(status: int, code: str, cls: type[E.APIError]) -> None:
    err = error_from_response(status, envelope(code, "Human text."))
    assert type(err) is cls
    assert isinstance(err, E.APIError) and isinstance(err, E.DaisySimError)
    assert err.status == status and err.code == code and err.message == "Human text."
    assert "Human text." in str(err)


def test_code_wins_over_status() -> None:
    err = error_from_response(200, envelope("OUT_OF_STOCK"))
    assert isinstance(err, E.OutOfStock) and err.status == 200


def test_unknown_code() -> None:
    err = error_from_response(422, envelope("ALREADY_CANCELLED", "Activation already cancelled."))
    assert type(err) is E.UnknownAPIError
    assert err.code == "ALREADY_CANCELLED" and err.status == 422


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("Cancellation not yet allowed. Please wait 94 more second(s).", 94),
        ("Please wait 1 more second(s).", 1),
        ("wait 180 seconds", 180),
        ("Cancellation not yet allowed.", None),
    ],
)
def test_too_early_seconds_left(message: str, seconds: int | None) -> None:
    err = error_from_response(422, envelope("TOO_EARLY", message))
    assert isinstance(err, E.TooEarly) and err.seconds_left == seconds


@pytest.mark.parametrize(
    ("message", "headers", "wait"),
    [
        ("Too many purchase attempts. Please wait 43s.", None, 43.0),
        ("Too many check requests. Please wait 1s.", {"Retry-After": "9"}, 1.0),
        ("Too many requests.", {"Retry-After": "12"}, 12.0),
        ("Too many requests.", None, 60.0),
        ("Please wait 2.5 seconds", None, 2.5),
    ],
)
def test_rate_limited_retry_after(
    message: str, headers: dict[str, str] | None, wait: float
) -> None:
    err = error_from_response(429, envelope("RATE_LIMITED", message), headers)
    assert isinstance(err, E.RateLimited) and err.retry_after == wait


def test_code_received_carries_the_code() -> None:
    data = {"activation_id": "32886", "phone_number": "+19401234567", "service": "WhatsApp 3",
            "status": "Completed", "code": "847261"}
    err = error_from_response(
        422, envelope("CODE_RECEIVED", "Code already received. Cannot cancel.", data)
    )
    assert isinstance(err, E.CodeReceived)
    assert err.code == "CODE_RECEIVED"
    assert err.code_value == "847261" and err.otp == "847261"
    assert err.activation_id == "32886" and err.phone_number == "+19401234567"
    assert err.data == data


def test_code_received_numeric_code_and_missing_data() -> None:
    raw = b'{"success": false, "error": "x", "code": "CODE_RECEIVED", "data": {"code": 12345}}'
    err = error_from_response(422, raw)
    assert isinstance(err, E.CodeReceived) and err.otp == "12345" and err.activation_id is None
    bare = error_from_response(422, envelope("CODE_RECEIVED"))
    assert isinstance(bare, E.CodeReceived) and bare.otp is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (500, E.ServerError),
        (502, E.ServerError),
        (503, E.ServerError),  # a gateway page is not OUT_OF_STOCK
        (504, E.ServerError),
        (401, E.Unauthenticated),
        (429, E.RateLimited),
        (404, E.UnknownAPIError),  # a wrong URL is not "activation not found"
        (400, E.UnknownAPIError),
        (418, E.UnknownAPIError),
    ],
)
def test_non_json_error_bodies_map_by_status(status: int, cls: type[E.APIError]) -> None:
    err = error_from_response(status, b"<html><body>Bad Gateway</body></html>")
    assert type(err) is cls
    assert err.status == status and err.code is None
    assert "Bad Gateway" in err.message


def test_non_json_429_waits_header_or_default() -> None:
    err = error_from_response(429, b"slow down", {"retry-after": "7"})
    assert isinstance(err, E.RateLimited) and err.retry_after == 7.0
    err = error_from_response(429, b"HTTP 429 Too Many Requests")
    assert isinstance(err, E.RateLimited) and err.retry_after == 60.0  # never "429 s"


def test_json_error_without_code_maps_by_status() -> None:
    err = error_from_response(500, b'{"success": false, "error": "boom"}')
    assert type(err) is E.ServerError and err.message == "boom"
    err = error_from_response(500, b'{"message": "Server Error"}')  # Laravel default page
    assert type(err) is E.ServerError


def test_already_decoded_body() -> None:
    err = error_from_response(409, {"success": False, "error": "x", "code": "CONCURRENT_ERROR"})
    assert isinstance(err, E.ConcurrentError)


def test_transport_and_purchase_errors() -> None:
    t = E.APITimeoutError("ReadTimeout on POST /purchase", request_sent=True)
    assert isinstance(t, E.APIConnectionError) and t.request_sent
    assert not E.APIConnectionError("ConnectError").request_sent
    original = E.ServerError("boom", status=500, code="SERVER_ERROR")
    failed = E.PurchaseFailed(original)
    assert failed.bought is False and failed.original is original
    assert failed.code == "SERVER_ERROR" and failed.status == 500
    unknown = E.PurchaseOutcomeUnknown("lost", sent_at=12.5, app="sb_wa", cause=t)
    assert unknown.sent_at == 12.5 and unknown.app == "sb_wa" and unknown.cause is t
    for cls in (E.PurchaseFailed, E.PurchaseOutcomeUnknown, E.MalformedResponse):
        assert issubclass(cls, E.DaisySimError) and not issubclass(cls, E.APIError)
