"""User prices. Operator mode: ``upstream × (1 + markup%)`` rounded to 4 decimal
places, ROUND_HALF_UP (DaisySim prices have 4 decimals). Own-key mode: the
upstream price as is (the user pays DaisySim directly; no markup)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["QUANTUM", "quantize", "user_price"]

QUANTUM = Decimal("0.0001")


def quantize(amount: Decimal) -> Decimal:
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_UP)


def user_price(upstream: Decimal, markup_percent: Decimal | None) -> Decimal:
    if not markup_percent:
        return quantize(upstream)
    return quantize(upstream * (Decimal(1) + Decimal(markup_percent) / Decimal(100)))
