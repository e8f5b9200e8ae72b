"""Operator prices: a markup in percent or a fixed price, per service (pure, no I/O).

Where a rule comes from, strongest first: an admin's ``/price`` (stored in the
database), ``PRICE_OVERRIDES`` (settings), ``MARKUP_PERCENT`` (every service).

Rounding, the way users expect: a price the bot sets itself (any markup above
0 %, or a fixed price) is in whole cents, a marked-up price rounded *up* to the
cent (``$0.50 + 15 %`` is ``$0.58``, never ``$0.575``). Exactly that amount is
shown, held and charged. With no markup (0 %) the price is DaisySim's own, as
DaisySim states it (up to 4 decimals).

A fixed price never sells below cost: a pool whose DaisySim price is above the
fixed price costs its DaisySim price rounded up to the cent (the admin command
refuses a fixed price below the cheapest current DaisySim price of the service,
so this only happens when DaisySim's price rises later).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

__all__ = [
    "CENT",
    "MAX_FIXED",
    "MAX_MARKUP",
    "PriceBook",
    "PriceRule",
    "PriceRuleError",
    "RuleSource",
    "apply_rule",
    "ceil_cent",
    "parse_overrides",
    "parse_rule",
    "service_key",
]

CENT = Decimal("0.01")
QUANTUM = Decimal("0.0001")
MAX_MARKUP = Decimal(1000)  # percent
MAX_FIXED = Decimal(1000)  # USD
RuleSource = Literal["admin", "settings", "default"]

# A decimal point or a decimal comma ("0,75"), at most 2 decimals either way.
_MARKUP = re.compile(r"\+?([0-9]{1,4}(?:[.,][0-9]{1,2})?)%")
_FIXED = re.compile(r"\$?([0-9]{1,4}(?:[.,][0-9]{1,2})?)")
# DaisySim app codes: "WhatsApp", "whatsapp-(us)5", "sb_wa".
_CODE = re.compile(r"[A-Za-z0-9_().\-]{1,64}")


class PriceRuleError(ValueError):
    """A price rule or an override list that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class PriceRule:
    """Exactly one of ``markup`` (percent, 0..1000) and ``fixed`` (USD, cents)."""

    markup: Decimal | None = None
    fixed: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.markup is None) == (self.fixed is None):
            raise PriceRuleError("a price rule is a markup or a fixed price")
        if self.markup is not None and not (0 <= self.markup <= MAX_MARKUP):
            raise PriceRuleError("a markup is from 0% to 1000%")
        if self.fixed is not None and not (0 < self.fixed <= MAX_FIXED):
            raise PriceRuleError("a fixed price is above $0 and at most $1000")
        if self.fixed is not None and self.fixed != self.fixed.quantize(CENT):
            raise PriceRuleError("a fixed price has at most 2 decimals")

    def __str__(self) -> str:
        if self.markup is not None:
            return f"+{_plain(self.markup)}%"
        assert self.fixed is not None
        return str(self.fixed.quantize(CENT))


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def parse_rule(text: str) -> PriceRule:
    """``+20%`` / ``20%`` (a markup) or ``0.75`` / ``$0.75`` (a fixed price)."""
    raw = text.strip()
    try:
        m = _MARKUP.fullmatch(raw)
        if m:
            return PriceRule(markup=Decimal(m.group(1).replace(",", ".")))
        m = _FIXED.fullmatch(raw)
        if m:
            return PriceRule(fixed=Decimal(m.group(1).replace(",", ".")))
    except InvalidOperation:  # pragma: no cover - the patterns rule this out
        pass
    raise PriceRuleError(
        f"{raw!r} is not a price rule: use a markup such as +20% or a fixed price "
        "such as 0.75 (at most 2 decimals)"
    )


def service_key(code: str) -> str:
    """Service codes match case-insensitively (``whatsapp`` is ``WhatsApp``)."""
    return code.strip().casefold()


def valid_code(code: str) -> bool:
    return bool(_CODE.fullmatch(code.strip()))


def parse_overrides(text: str) -> dict[str, PriceRule]:
    """``PRICE_OVERRIDES``: ``code=rule`` pairs, comma-separated, e.g.
    ``WhatsApp=+20%,Telegram=0.75,sb_wa=+10%``. Keys are :func:`service_key`."""
    rules: dict[str, PriceRule] = {}
    for part in text.split(","):
        item = part.strip()
        if not item:
            continue
        code, sep, rule = item.partition("=")
        if not sep or not valid_code(code):
            raise PriceRuleError(
                f"PRICE_OVERRIDES: {item!r} is not code=rule (e.g. WhatsApp=+20% or "
                "Telegram=0.75)"
            )
        key = service_key(code)
        if key in rules:
            raise PriceRuleError(f"PRICE_OVERRIDES names {code.strip()!r} twice")
        try:
            rules[key] = parse_rule(rule)
        except PriceRuleError as exc:
            raise PriceRuleError(f"PRICE_OVERRIDES: {code.strip()}: {exc}") from None
    return rules


def ceil_cent(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_CEILING)


def apply_rule(upstream: Decimal, rule: PriceRule) -> Decimal:
    """The user's price of one DaisySim price under ``rule`` (module docstring)."""
    if rule.fixed is not None:
        return max(rule.fixed, ceil_cent(upstream))
    assert rule.markup is not None
    if not rule.markup:
        return upstream.quantize(QUANTUM, rounding=ROUND_HALF_UP)
    return ceil_cent(upstream * (Decimal(1) + rule.markup / Decimal(100)))


@dataclass(slots=True)
class PriceBook:
    """The rules in force: the default markup, the settings' overrides and the
    admins' (loaded from the database at start, kept in step by the admin
    commands). Prices are computed from it, never stored in it."""

    markup: Decimal = Decimal(0)
    configured: Mapping[str, PriceRule] = field(default_factory=dict)
    admin: dict[str, PriceRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        PriceRule(markup=self.markup)  # validates the range

    def rule(self, code: str) -> tuple[PriceRule, RuleSource]:
        key = service_key(code)
        if key in self.admin:
            return self.admin[key], "admin"
        if key in self.configured:
            return self.configured[key], "settings"
        return PriceRule(markup=self.markup), "default"

    def price(self, code: str, upstream: Decimal) -> Decimal:
        return apply_rule(upstream, self.rule(code)[0])
