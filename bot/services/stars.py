"""Telegram Stars as a :class:`bot.domain.topups.TopUpMethod`.

The Bot API calls themselves (``refundStarPayment``, ``getStarTransactions``) are
made by the UI layer, which owns the Telegram connection: it passes a
:class:`StarsBackend` in. This module holds the price rule and the paging.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from bot.domain.topups import IncomingPayment, RefundResult, stars_price

__all__ = ["STARS_CURRENCY", "StarsBackend", "StarsMethod"]

STARS_CURRENCY = "XTR"
PAGE = 100  # getStarTransactions: limit 1..100
# getStarTransactions is chronological (oldest first): every page is read, up to
# this many (100,000 transactions) per reconciliation.
MAX_PAGES = 1000


class StarsBackend(Protocol):
    async def refund(self, user_id: int, charge_id: str) -> RefundResult: ...

    async def transactions(self, offset: int, limit: int) -> tuple[list[IncomingPayment], int]:
        """Incoming invoice payments of one page, and how many transactions the
        page held (of every kind: a short page is the last one)."""
        ...


class StarsMethod:
    name = "stars"
    currency = STARS_CURRENCY

    def __init__(self, backend: StarsBackend, stars_per_usd: Decimal) -> None:
        self.backend = backend
        self.stars_per_usd = stars_per_usd

    def price(self, usd: Decimal) -> int:
        return stars_price(usd, self.stars_per_usd)

    async def refund(self, user_id: int, charge_id: str) -> RefundResult:
        return await self.backend.refund(user_id, charge_id)

    async def incoming(self) -> list[IncomingPayment]:
        found: list[IncomingPayment] = []
        for page in range(MAX_PAGES):
            payments, count = await self.backend.transactions(page * PAGE, PAGE)
            found.extend(payments)
            if count < PAGE:
                break
        return found
