"""Money is bounded at the boundary (issue 9 item 3): absurd upstream numbers
never reach the engine as amounts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.daisysim.errors import MalformedResponse
from bot.daisysim.models import (
    MAX_PRICE,
    App,
    Balance,
    CancelResult,
    Order,
    Purchase,
    decode_json,
    parse_catalogue,
    parse_data,
)

ABSURD = ["1e30", "1E+400", "-5", "0", "0.00004", "-0.0001", "NaN", "Infinity"]


def purchase(amount: Any, **extra: Any) -> dict[str, Any]:
    return {"activation_id": "1", "phone_number": "+19400000000", "service": "Signal",
            "country": "USA", "amount_charged": amount, "balance_after": "3.0", **extra}


def order(amount: Any) -> dict[str, Any]:
    return {"activation_id": "7", "phone_number": "+19400000000", "service": "Signal",
            "country": "USA", "status": "Waiting", "amount_charged": amount,
            "created_at": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize("raw", ABSURD)
def test_purchase_amount_charged_must_be_a_sane_positive_price(raw: str) -> None:
    for value in (decode_json(raw), raw):  # as a JSON number and as a string
        with pytest.raises(MalformedResponse):
            parse_data(Purchase, purchase(value))


def test_purchase_amount_null_only_allowed_when_reconciled() -> None:
    with pytest.raises(MalformedResponse):
        parse_data(Purchase, purchase(None))
    recovered = Purchase(activation_id="1", phone_number="+1", service="s", country="USA",
                         amount_charged=None, balance_after=None, reconciled=True)
    assert recovered.amount_charged is None


def test_amounts_are_rounded_to_4_decimals_and_capped() -> None:
    p = parse_data(Purchase, purchase(decode_json("0.45005")))
    assert p.amount_charged == Decimal("0.4501")
    assert parse_data(Purchase, purchase(MAX_PRICE)).amount_charged == MAX_PRICE
    with pytest.raises(MalformedResponse):
        parse_data(Purchase, purchase(MAX_PRICE + Decimal("0.0001")))


@pytest.mark.parametrize("raw", ["-5", "1e30", "-0.01"])
def test_balance_and_balance_after_reject_absurd_values(raw: str) -> None:
    value = decode_json(raw)
    with pytest.raises(MalformedResponse):
        parse_data(Balance, {"balance": value, "currency": "USD", "email": "a@b.c"})
    with pytest.raises(MalformedResponse):
        parse_data(Purchase, purchase("0.6", balance_after=value))
    with pytest.raises(MalformedResponse):
        parse_data(CancelResult, {"activation_id": "1", "refund": "0.6", "balance_after": value})
    with pytest.raises(MalformedResponse):
        parse_data(CancelResult, {"activation_id": "1", "refund": value, "balance_after": "1"})


def test_a_balance_or_refund_of_zero_is_legitimate() -> None:
    assert parse_data(Balance, {"balance": 0, "currency": "USD", "email": "a@b.c"}).balance == 0
    result = parse_data(CancelResult, {"activation_id": "1", "refund": 0, "balance_after": 0})
    assert result.refund == 0 and result.balance_after == 0


@pytest.mark.parametrize("raw", [*ABSURD, None, True, "lots", {"x": 1}])
def test_history_order_with_unreadable_amount_still_counts(raw: Any) -> None:
    parsed = parse_data(Order, order(raw))
    assert parsed.activation_id == "7" and parsed.amount_charged is None


def test_history_order_amount_is_bounded_like_a_price() -> None:
    assert parse_data(Order, order(decode_json("0.6000"))).amount_charged == Decimal("0.6")


def test_catalogue_leaves_out_bad_apps_and_bad_pools() -> None:
    data = decode_json(b"""[
      {"code": "Signal", "name": "Signal", "price": -3.00, "providers": []},
      {"code": "Huge", "name": "Huge", "price": 1e30, "providers": []},
      {"code": "Free", "name": "Free", "price": 0, "providers": []},
      {"code": "Telegram", "name": "Telegram", "price": 1.4000, "providers": []},
      {"code": "sb_tg", "name": "Telegram 2", "price": 0.4500, "providers": [
          {"provider_id": "2266", "price": 1e30, "count": 5},
          {"provider_id": "3109", "price": 0.6000, "count": 980}]},
      {"code": "sb_x", "name": "X", "price": 0.5, "providers": [
          {"provider_id": "1", "price": -1, "count": 5}]},
      "garbage"
    ]""")
    apps, rejected = parse_catalogue(data)
    by_code = {a.code: a for a in apps}
    assert set(by_code) == {"Telegram", "sb_tg"}
    tg2 = by_code["sb_tg"]
    assert [p.provider_id for p in tg2.providers] == ["3109"]
    # The service price was the left-out pool's: it is derived from the pools kept.
    assert tg2.price == Decimal("0.6000")
    entries = {entry for entry, _ in rejected}
    assert entries == {"Signal", "Huge", "Free", "sb_tg/2266", "sb_x/1", "sb_x", "#6"}
    assert all(isinstance(a, App) and a.price > 0 for a in apps)


def test_catalogue_that_is_not_a_list_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        parse_catalogue({"code": "x"})
