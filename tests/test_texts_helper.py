"""tests/texts.py renders the catalogue exactly as the user sees it."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from bot.telegram.texts import CATALOGUE, DEFAULT_LANG, placeholders, strip_html, t
from tests.texts import button, button_keys, lead, part, pattern, service_button, template, text

EN = CATALOGUE[DEFAULT_LANG]


def _sample(key: str) -> dict[str, Any]:
    # values with regex metacharacters and HTML specials: escaping is exercised
    return {name: f"v.{name}*(1+1)?<&>[x]" for name in placeholders(EN[key])}


@pytest.mark.parametrize("key", sorted(EN))
def test_pattern_matches_every_rendered_text(key: str) -> None:
    values = _sample(key)
    shown = button(key, **values) if key.startswith("btn_") else text(key, **values)
    assert pattern(key).search(shown), (key, shown)
    assert pattern(key, full=False).search(shown), (key, shown)
    assert pattern(key, full=True).fullmatch(shown), (key, shown)
    assert pattern(key, full=True, **values).fullmatch(shown), (key, shown)  # all known


@pytest.mark.parametrize("key", sorted(EN))
def test_unknown_placeholders_are_named_groups(key: str) -> None:
    values = _sample(key)
    shown = button(key, **values) if key.startswith("btn_") else text(key, **values)
    m = pattern(key, full=True).fullmatch(shown)
    assert m is not None
    if "}{" in EN[key]:  # adjacent placeholders ("{name}{pool}") split ambiguously
        return
    for name, value in values.items():
        assert m.group(name) == value  # <&> decoded back, as the fake shows it


def test_text_is_the_plain_rendering() -> None:
    assert text("menu_title") == "What would you like to do?"
    assert text("btn_cancel_refund") == "❌ Cancel & refund"
    rendered = text("buy_confirm_balance_line", balance=Decimal("10"), balance_after=Decimal("9.4"))
    assert rendered == "Balance: $10.00 → $9.40 after purchase"  # trimmed, Decimal as money
    assert text("order_number", phone="+1 <555>") == "Number: +1 <555>"
    assert strip_html(t("en", "order_cancel_locked", at="a", left="b", now="c")).startswith(
        text("order_cancel_locked", at="a", left="b", now="c")
    )


def test_button_is_the_exact_label() -> None:
    assert button("btn_buy") == "🛒 Buy a number"
    assert button("btn_confirm", price=Decimal("0.6")) == "✅ Confirm · $0.60"
    assert button("btn_cancel_refund") == "❌ Cancel & refund"  # a label is not HTML
    assert "btn_buy" in button_keys() and all(k.startswith("btn_") for k in button_keys())


def test_pattern_escapes_the_literal_parts() -> None:
    # "Cancel & refund" in a text is "&amp;" in HTML; "(in {left} as of {now})" has
    # regex metacharacters; "." and "?" must match only themselves
    locked = pattern("order_cancel_locked", at="08:03 UTC")
    shown = "🔒 Cancel & refund available from 08:03 UTC (in 2:41 as of 08:00:19 UTC)."
    assert locked.search(shown)
    assert not locked.search(shown.replace("(", "").replace(")", ""))
    menu = pattern("menu_title", full=True)
    assert menu.fullmatch("What would you like to do?")
    assert not menu.fullmatch("What would you like to do!")
    assert not menu.fullmatch("What would you like to doX")
    price = pattern("btn_confirm", price="$1.083")
    assert price.search("✅ Confirm · $1.083") and not price.search("✅ Confirm · $1X083")


def test_pattern_known_values_are_exact() -> None:
    p = pattern("btn_pool", pool="2266")
    assert p.search("Pool 2266 · $1.092 · 4296 left")
    assert not p.search("Pool 3109 · $1.083 · 12 left")
    assert pattern("btn_service", name="Signal").search("Signal · $0.60")
    assert not pattern("btn_service", name="Signal").search("🕘 Signal · $0.60")
    assert pattern("btn_service", full=False, name="Signal").search("🕘 Signal · $0.60")
    recent = service_button("Signal", "$0.60")
    assert recent.search("Signal · $0.60") and recent.search("🕘 Signal · $0.60")
    assert not recent.search("Signal · $0.61") and not recent.search("Signal 2 · $0.60")
    any_price = service_button("Signal")
    assert any_price.search("Signal · $0.61") and any_price.search("🕘 Signal · $0.61")
    assert not any_price.search("Signal 2 · $0.61") and not any_price.search("xSignal · $1")
    multi = service_button("WhatsApp 3", "$1.083", multi=True)
    assert multi.search("WhatsApp 3 · from $1.083") and multi.search("🕘 WhatsApp 3 · from $1.083")
    assert pattern("order_price", price=Decimal("0.5")).search("Price: $0.50")


def test_known_value_may_be_a_regex_and_parts_compose() -> None:
    locked = pattern("btn_cancel_locked", at=re.compile(r"\d\d:\d\d UTC"))
    assert locked.search("🔒 Cancel from 00:03 UTC")
    assert not locked.search("🔒 Cancel from 00:03:07 UTC")
    pool = part("admin_pool", pool=part("admin_pool_cheapest"))
    assert pool == " [cheapest]"  # not trimmed: it is glued to the name
    line = text("admin_service_line_unfinished", name="WA", pool=pool,
                open=part("admin_service_open", count=1))
    assert line == "• WA [cheapest]: no finished order yet · 1 waiting"


def test_lead_is_the_fixed_start() -> None:
    assert lead("buy_confirm") == "Confirm your purchase"
    assert lead("otp_message") == "🔑 Code for"
    assert lead("btn_confirm") == "✅ Confirm ·"
    assert lead("order_number") == "Number:"
    for key in EN:
        values = _sample(key)
        shown = button(key, **values) if key.startswith("btn_") else text(key, **values)
        assert shown.startswith(lead(key)), key


def test_unnamed_pattern_is_plain_regex() -> None:
    p = pattern("status_refunded", named=False)
    assert "?P" not in p.pattern and p.search("Status: ↩️ $0.60 refunded · cancelled by you")
    assert not p.search("Status: ↩️ $0.60 refunded · no SMS in time")


def test_lang_parameter_everywhere() -> None:
    assert text("menu_title", lang="en") == text("menu_title")
    assert button("btn_buy", lang="en") == button("btn_buy")
    assert pattern("menu_title", lang="en").pattern == pattern("menu_title").pattern
    assert lead("buy_confirm", lang="en") == lead("buy_confirm")
    assert template("menu_title", lang="xx") == EN["menu_title"]  # English fallback, as the bot


def test_unknown_key_raises() -> None:
    for call in (text, button, pattern, template, lead):
        with pytest.raises(KeyError, match="no_such_key"):
            call("no_such_key")
    with pytest.raises(KeyError, match="nonsense"):
        pattern("btn_confirm", nonsense="1")  # a placeholder the text does not have


def test_every_regex_compiles_and_finds_itself_in_a_longer_message() -> None:
    for key in EN:
        values = _sample(key)
        shown = button(key, **values) if key.startswith("btn_") else text(key, **values)
        assert pattern(key, full=False).search(f"before\n{shown}\nafter"), key
        if key.startswith("btn_") and not EN[key].startswith("{"):
            assert not pattern(key).search(f"before {shown}"), key  # the whole label
        assert isinstance(pattern(key), re.Pattern)
