"""Operator price rules (bot.domain.pricing) and their settings: parsing, the
rounding users expect (up to the cent, exactly what is charged), precedence, and
the strict validation of PRICE_OVERRIDES, LOW_BALANCE_ALERT_USD, SUPPORT_CONTACT."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.config import Settings
from bot.domain.pricing import (
    CENT,
    PriceBook,
    PriceRule,
    PriceRuleError,
    apply_rule,
    parse_overrides,
    parse_rule,
)

D = Decimal


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("+20%", PriceRule(markup=D(20))),
        ("20%", PriceRule(markup=D(20))),
        ("+12.5%", PriceRule(markup=D("12.5"))),
        ("0%", PriceRule(markup=D(0))),
        ("0.75", PriceRule(fixed=D("0.75"))),
        ("$2", PriceRule(fixed=D(2))),
        ("0,75", PriceRule(fixed=D("0.75"))),  # a decimal comma
        ("+12,5%", PriceRule(markup=D("12.5"))),
    ],
)
def test_rules_parse(raw: str, rule: PriceRule) -> None:
    assert parse_rule(raw) == rule


@pytest.mark.parametrize(
    "raw",
    ["0.755", "-10%", "1001%", "0", "0.00", "abc", "1e3", "NaN", "+", "%", "1,500", "1,5,0",
     "1001"],
)
def test_bad_rules_are_refused(raw: str) -> None:
    with pytest.raises(PriceRuleError):
        parse_rule(raw)


def test_rules_print_as_typed() -> None:
    assert [str(parse_rule(r)) for r in ("20%", "+12.50%", "0.7", "$3")] == [
        "+20%", "+12.5%", "0.70", "3.00",
    ]


def test_a_markup_is_rounded_up_to_the_cent() -> None:
    assert apply_rule(D("0.50"), PriceRule(markup=D(15))) == D("0.58")  # never $0.575
    assert apply_rule(D("0.60"), PriceRule(markup=D(15))) == D("0.69")  # exact: as is
    assert apply_rule(D("1.0830"), PriceRule(markup=D(10))) == D("1.20")  # 1.1913
    assert apply_rule(D("1.0830"), PriceRule(markup=D(0))) == D("1.0830")  # DaisySim's own


def test_a_fixed_price_never_sells_below_daisysim() -> None:
    rule = PriceRule(fixed=D("0.75"))
    assert apply_rule(D("0.60"), rule) == D("0.75")
    assert apply_rule(D("0.8130"), rule) == D("0.82")


@given(
    upstream=st.decimals(min_value=D("0.0001"), max_value=D(500), places=4),
    markup=st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
)
def test_marked_up_prices_are_whole_cents_and_never_below_the_markup(
    upstream: Decimal, markup: Decimal
) -> None:
    price = apply_rule(upstream, PriceRule(markup=markup))
    exact = upstream * (1 + markup / 100)
    assert price == price.quantize(CENT)
    assert exact <= price < exact + CENT


def test_overrides_parse_case_insensitively_and_strictly() -> None:
    rules = parse_overrides(" WhatsApp=+20% , Telegram=0.75,sb_wa=+10%,whatsapp-(us)5=1 ")
    assert rules == {
        "whatsapp": PriceRule(markup=D(20)),
        "telegram": PriceRule(fixed=D("0.75")),
        "sb_wa": PriceRule(markup=D(10)),
        "whatsapp-(us)5": PriceRule(fixed=D(1)),
    }
    assert parse_overrides("") == {}
    for bad in ("WhatsApp", "WhatsApp=", "=1", "wa=1,WA=2", "wa=0.755", "w a=1", "wa=+20%;tg=1"):
        with pytest.raises(PriceRuleError):
            parse_overrides(bad)


def test_admin_rules_win_over_settings_over_the_default() -> None:
    book = PriceBook(D(10), parse_overrides("Signal=+50%,Telegram=2"))
    assert book.price("Signal", D("0.60")) == D("0.90")
    assert book.price("WhatsApp", D("1.85")) == D("2.04")  # the default 10 %
    book.admin["signal"] = PriceRule(fixed=D("0.99"))
    assert book.rule("SIGNAL") == (PriceRule(fixed=D("0.99")), "admin")
    assert book.rule("telegram")[1] == "settings" and book.rule("x")[1] == "default"


def test_price_overrides_setting_is_validated_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRICE_OVERRIDES", "WhatsApp=+20%,Telegram=0.755")
    with pytest.raises(ValidationError, match="Telegram"):
        Settings(_env_file=None)
    monkeypatch.setenv("PRICE_OVERRIDES", "WhatsApp=+20%,Telegram=0.75")
    assert Settings(_env_file=None).price_rules()["telegram"] == PriceRule(fixed=D("0.75"))


@pytest.mark.parametrize("value", ["0", "-5", "NaN", "abc"])
def test_low_balance_threshold_is_a_positive_amount(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LOW_BALANCE_ALERT_USD", value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_low_balance_threshold_unset_or_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).low_balance_alert_usd is None
    monkeypatch.setenv("LOW_BALANCE_ALERT_USD", "20.50")
    assert Settings(_env_file=None).low_balance_alert_usd == D("20.50")


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("@daisy_support", "@daisy_support"),
        ("daisy_support", "@daisy_support"),
        ("https://t.me/daisy_support", "https://t.me/daisy_support"),
        ("t.me/daisy_support/", "https://t.me/daisy_support"),
        ("  ", None),
    ],
)
def test_support_contact_is_normalised(
    monkeypatch: pytest.MonkeyPatch, value: str, stored: str | None
) -> None:
    monkeypatch.setenv("SUPPORT_CONTACT", value)
    assert Settings(_env_file=None).support_contact == stored


@pytest.mark.parametrize(
    "value",
    ["@abc", "@1daisy", "http://t.me/daisy_support", "https://evil.example/daisy",
     "https://t.me/+AbCdEf", "@daisy support", "<b>@daisy</b>", "@daisy_"],
)
def test_support_contact_is_validated(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SUPPORT_CONTACT", value)
    with pytest.raises(ValidationError, match="SUPPORT_CONTACT"):
        Settings(_env_file=None)
