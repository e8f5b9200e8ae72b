"""The operator's price rules as admins manage them (``/price``, ``/prices``).

The rules themselves and the rounding are :mod:`bot.domain.pricing`; the policy's
:class:`~bot.domain.pricing.PriceBook` prices every list, quote, hold and charge.
This service loads the admins' rules from the database at start and changes them
(database first, then the book), so a change applies to the next price shown;
a quote already made keeps the price the user saw (it is stored).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from bot.daisysim.models import App
from bot.domain.pricing import PriceBook, PriceRule, PriceRuleError, parse_rule, service_key
from bot.services.accounts import Accounts
from bot.services.api import NotAllowed, PriceBelowCost, PriceLine, ServiceUnavailable
from bot.services.catalogue import Catalogue
from bot.services.runtime import Runtime

__all__ = ["Pricing"]

logger = logging.getLogger("bot.services")


def _costs(app: App) -> list[Decimal]:
    return [p.price for p in app.providers] or [app.price]


class Pricing:
    def __init__(self, rt: Runtime, accounts: Accounts, catalogue: Catalogue) -> None:
        self.rt = rt
        self.accounts = accounts
        self.catalogue = catalogue

    @property
    def book(self) -> PriceBook | None:
        return self.rt.policy.price_book

    async def start(self) -> None:
        book = self.book
        if book is None:
            return
        for row in await self.rt.repos.prices.all():
            try:
                book.admin[row.service_key] = parse_rule(row.rule)
            except PriceRuleError:  # written by this code: only a hand edit gets here
                logger.error("price rule of %s is unreadable: %r", row.service_code, row.rule)

    def _require(self, admin_id: int) -> PriceBook:
        if not self.accounts.is_admin(self.rt.settings, admin_id):
            raise NotAllowed("admins only")
        book = self.book
        if book is None:
            raise NotAllowed("prices are DaisySim's own in own-key mode")
        return book

    async def _apps(self, admin_id: int, *, force: bool = False) -> list[App]:
        acc = await self.accounts.funding_account(admin_id)
        return await self.catalogue.apps(acc, force=force)

    def _line(self, book: PriceBook, code: str, app: App | None) -> PriceLine:
        rule, source = book.rule(code)
        if app is None:
            return PriceLine(code=code, name=None, rule=str(rule), source=source)
        costs = _costs(app)
        prices = [book.price(app.code, c) for c in costs]
        return PriceLine(
            code=app.code, name=app.name, rule=str(rule), source=source,
            cost=min(costs), price=min(prices), max_price=max(prices), max_cost=max(costs),
        )

    async def set_rule(self, admin_id: int, code: str, rule: PriceRule | None) -> PriceLine:
        """An admin's rule for ``code`` (None: back to the settings / default).
        Raises ServiceUnavailable (no such service now), PriceBelowCost (a fixed
        price below every pool's DaisySim price)."""
        book = self._require(admin_id)
        apps = await self._apps(admin_id, force=True)
        key = service_key(code)
        app = next((a for a in apps if service_key(a.code) == key), None)
        if rule is None:
            await self.rt.repos.prices.delete(key)
            book.admin.pop(key, None)
            logger.info("admin %s reset the price of %s", admin_id, code)
            return self._line(book, app.code if app else code, app)
        if app is None:
            raise ServiceUnavailable(f"unknown service {code!r}")
        cost = min(_costs(app))
        if rule.fixed is not None and rule.fixed < cost:
            raise PriceBelowCost("a fixed price below DaisySim's price", cost=cost)
        await self.rt.repos.prices.put(
            service_key=key, service_code=app.code, rule=str(rule), admin_id=admin_id,
            now=self.rt.clock.now(),
        )
        book.admin[key] = rule
        logger.info("admin %s set the price of %s to %s", admin_id, app.code, rule)
        return self._line(book, app.code, app)

    async def lines(self, admin_id: int) -> tuple[PriceLine, list[PriceLine]]:
        """The default markup's line (code ``*``), and one line per service with a
        rule of its own (admins' and settings'; ``name`` None: not in the
        catalogue now)."""
        book = self._require(admin_id)
        apps = await self._apps(admin_id)
        by_key = {service_key(a.code): a for a in apps}
        keys = sorted(set(book.configured) | set(book.admin))
        default = PriceLine(code="*", name=None, rule=str(PriceRule(markup=book.markup)),
                            source="default")
        out = []
        for key in keys:
            app = by_key.get(key)
            out.append(self._line(book, app.code if app else key, app))
        return default, out
