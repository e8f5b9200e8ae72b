"""Pure model tests: exact Decimals, tolerance, and strictness on malformed bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from bot.daisysim.errors import MalformedResponse
from bot.daisysim.models import (
    App,
    Balance,
    CancelResult,
    CheckResult,
    Country,
    HistoryPage,
    Order,
    Purchase,
    decode_json,
    parse_data,
    unwrap_success,
)

APPS_BODY = b"""{"success": true, "message": "OK", "data": [
  {"code": "WhatsApp", "name": "WhatsApp", "price": 1.8500, "providers": []},
  {"code": "sb_wa", "name": "WhatsApp 3", "price": 1.0830, "new_field": {"x": 1}, "providers": [
      {"provider_id": "3109", "price": 1.0830, "count": 4000},
      {"provider_id": 2266, "price": 1.0920, "count": 4296}]}
]}"""


def data_of(body: bytes | str) -> Any:
    return unwrap_success(decode_json(body))


def test_decimal_exact_from_raw_text() -> None:
    apps = parse_data(list[App], data_of(APPS_BODY))
    assert apps[1].price == Decimal("1.0830")
    assert str(apps[1].price) == "1.0830"  # the trailing zero survives: parsed from text
    assert str(apps[0].price) == "1.8500"
    assert apps[1].providers[1].provider_id == "2266"  # ids coerce to str
    assert apps[1].multi_pool and not apps[0].multi_pool
    total = sum((p.price for p in apps[1].providers), Decimal(0))
    assert total == Decimal("2.1750")


def test_float_given_directly_goes_through_repr_not_binary() -> None:
    b = Balance.model_validate({"balance": 0.1, "currency": "USD", "email": "a@b.c"})
    assert b.balance == Decimal("0.1")
    b2 = Balance.model_validate({"balance": 14, "currency": "USD", "email": "a@b.c"})
    assert b2.balance == Decimal(14)
    b3 = Balance.model_validate({"balance": "12.4000", "currency": "USD", "email": "a@b.c"})
    assert str(b3.balance) == "12.4000"


def test_unknown_fields_ignored_everywhere() -> None:
    body = """{"success": true, "message": "OK", "extra": 1, "data": {
        "activation_id": 32886, "phone_number": "+19401234567", "service": "WhatsApp 3",
        "country": "USA", "amount_charged": 1.0830, "balance_after": 12.4000,
        "promo": "yes"}}"""
    p = parse_data(Purchase, data_of(body))
    assert p.activation_id == "32886"
    assert p.amount_charged == Decimal("1.0830")
    assert p.balance_after == Decimal("12.4000")
    assert p.reconciled is False


def test_check_statuses() -> None:
    waiting = CheckResult.model_validate(
        {"activation_id": "1", "status": "Waiting", "code": None, "phone_number": "+1"}
    )
    assert waiting.waiting and not waiting.completed and not waiting.unresolvable
    done = CheckResult.model_validate(
        {"activation_id": "1", "status": "Completed", "code": "847261", "phone_number": "+1"}
    )
    assert done.completed and not done.waiting
    weird = CheckResult.model_validate(
        {"activation_id": "1", "status": "Delivered-ish", "code": 847261}
    )
    assert weird.completed and weird.code == "847261"  # any non-null code completes
    nf = CheckResult.model_validate({"activation_id": "99999", "status": "Not Found", "code": None})
    assert nf.unresolvable and not nf.waiting and nf.phone_number is None
    inv = CheckResult.model_validate({"activation_id": "abc", "status": "invalid"})
    assert inv.unresolvable
    unknown = CheckResult.model_validate({"activation_id": "1", "status": "Expired", "code": None})
    assert not unknown.completed and not unknown.unresolvable and unknown.waiting
    blank = CheckResult.model_validate({"activation_id": "1", "status": "Waiting", "code": ""})
    assert blank.code is None and not blank.completed


def test_history_and_orders() -> None:
    body = """{"success": true, "message": "OK", "data": {
      "orders": [
        {"activation_id": "32886", "phone_number": "+19401234567", "service": "WhatsApp 3",
         "country": "USA", "status": "Completed", "code": "847261", "amount_charged": 1.0830,
         "created_at": "2025-03-31T02:20:00+00:00", "completed_at": "2025-03-31T02:21:44+00:00"},
        {"activation_id": "32880", "phone_number": "+19403456789", "service": "Signal",
         "country": "USA", "status": "Rejected", "code": "1234", "amount_charged": 0.6000,
         "created_at": "2025-03-31 01:10:00", "completed_at": null}],
      "pagination": {"current_page": 1, "per_page": 20, "total": 335, "last_page": 17}}}"""
    page = parse_data(HistoryPage, data_of(body))
    assert page.pagination.last_page == 17
    first, second = page.orders
    assert first.completed and first.created_at == datetime(2025, 3, 31, 2, 20, tzinfo=UTC)
    assert second.completed  # unknown status with a code = completed
    assert second.created_at.tzinfo is not None  # naive -> UTC
    assert second.completed_at is None
    assert second.amount_charged == Decimal("0.6000")


def test_cancel_country_models() -> None:
    c = parse_data(
        CancelResult, {"activation_id": 5, "refund": Decimal("1.0830"), "balance_after": "14.25"}
    )
    assert c.activation_id == "5" and c.refund == Decimal("1.0830")
    assert parse_data(Country, {"id": "USA", "name": "USA"}).id == "USA"


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b"",
        b"[1, 2",
        b'"just a string"',
        b'{"message": "OK", "data": {}}',  # no success
        b'{"success": "true", "data": {}}',  # success not a boolean true
        b'{"success": true, "message": "OK"}',  # no data
    ],
)
def test_malformed_envelopes_raise(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        data_of(body)


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Balance, {"currency": "USD", "email": "a@b.c"}),  # missing balance
        (Balance, {"balance": "lots", "currency": "USD", "email": "a@b.c"}),
        (Balance, {"balance": True, "currency": "USD", "email": "a@b.c"}),
        (Balance, {"balance": "NaN", "currency": "USD", "email": "a@b.c"}),
        (Purchase, {"activation_id": "1", "phone_number": "+1", "service": "x", "country": "USA"}),
        (CheckResult, {"activation_id": "1"}),  # missing status
        (CheckResult, {"activation_id": None, "status": "Waiting"}),
        (Order, {"activation_id": "1", "phone_number": "+1", "service": "s", "country": "USA",
                 "status": "Waiting", "amount_charged": 1, "created_at": "yesterday"}),
        (list[App], {"code": "x"}),  # object instead of list
        (list[App], [{"code": "x", "name": "y", "price": 1, "providers": [{"price": 1}]}]),
        (HistoryPage, {"orders": []}),  # missing pagination
    ],
)
def test_wrong_shapes_raise_malformed(model: Any, data: Any) -> None:
    with pytest.raises(MalformedResponse):
        parse_data(model, data)


def test_app_without_providers_field_is_single_provider() -> None:
    app = parse_data(App, {"code": "Signal", "name": "Signal", "price": Decimal("0.6")})
    assert app.providers == [] and not app.multi_pool
