"""Catalogue and quotes: the services with this user's prices (a 5-minute cache
per account, as upstream), and quotes persisted with an id.

A quote is the exact price of one choice (a service, and a pool or "cheapest
available" resolved to the cheapest pool with numbers: :mod:`bot.domain.quoting`),
stored in ``quotes`` with its owner and a lifetime of :data:`QUOTE_TTL`. Confirm
buys by quote id (:meth:`bot.services.purchases.Purchases.buy_quote`), so no price
ever travels through the client, and a Confirm pressed after a restart still
works while the quote lives.
"""

from __future__ import annotations

from decimal import Decimal

from bot.daisysim import errors as ds
from bot.daisysim.models import App
from bot.domain.quoting import quote_choice
from bot.services.accounts import Accounts
from bot.services.api import EngineError, Pool, Quote, Service, ServiceUnavailable
from bot.services.errors import map_error
from bot.services.runtime import Runtime
from bot.services.tracking import Account
from storage.quotes import QuoteRepo, QuoteRow

__all__ = ["CATALOGUE_TTL", "QUOTE_TTL", "Catalogue"]

CATALOGUE_TTL = 300.0  # the per-account price view is cached 5 minutes upstream too
QUOTE_TTL = 600.0  # a confirmation screen's price may be bought this long
PRUNE_EVERY = 256  # quotes made between two deletions of long-expired unused ones


class Catalogue:
    def __init__(self, rt: Runtime, accounts: Accounts) -> None:
        self.rt = rt
        self.accounts = accounts
        self.quotes = QuoteRepo(rt.db)

    async def start(self) -> None:
        await self.quotes.prune(self.rt.clock.now() - QUOTE_TTL)

    # ------------------------------------------------------------------ catalogue
    async def apps(self, acc: Account, *, force: bool = False) -> list[App]:
        now = self.rt.clock.now()
        if not force and acc.catalogue is not None and now - acc.catalogue[0] < CATALOGUE_TTL:
            return acc.catalogue[1]
        client = self.accounts.require_client(acc)
        try:
            apps = await client.apps(self.rt.settings.daisysim_country)
        except ds.DaisySimError as err:
            raise map_error(err) from None
        acc.catalogue = (self.rt.clock.now(), apps)
        return apps

    def service(self, app: App) -> Service:
        def price(upstream: Decimal) -> Decimal:
            return self.rt.policy.user_price(app.code, upstream)

        return Service(
            code=app.code,
            name=app.name,
            price=price(app.price),
            pools=tuple(Pool(p.provider_id, price(p.price), p.count) for p in app.providers),
        )

    def find_app(self, apps: list[App], app_code: str) -> tuple[App, Service]:
        match = next((a for a in apps if a.code == app_code), None)
        if match is None:
            raise ServiceUnavailable(f"unknown service {app_code!r}")
        return match, self.service(match)

    async def user_balance(self, user_id: int, acc: Account) -> Decimal | None:
        return await self.rt.policy.balance(user_id, acc.client)

    async def list_services(self, user_id: int) -> list[Service]:
        acc = await self.accounts.funding_account(user_id)
        return [self.service(a) for a in await self.apps(acc)]

    async def refreshed_service(self, acc: Account, app: str) -> Service | None:
        acc.catalogue = None
        try:
            apps = await self.apps(acc, force=True)
        except EngineError:
            return None
        match = next((a for a in apps if a.code == app), None)
        return None if match is None else self.service(match)

    # ------------------------------------------------------------------ quotes
    async def quote(
        self, user_id: int, app: str, provider_id: str | None, *, fresh: bool = False
    ) -> Quote:
        acc = await self.accounts.funding_account(user_id)
        return await self.quote_for(user_id, acc, app, provider_id, force=fresh)

    async def quote_for(
        self, user_id: int, acc: Account, app: str, provider_id: str | None, *,
        force: bool = False,
    ) -> Quote:
        apps = await self.apps(acc, force=force)
        return await self.quote_from(user_id, acc, apps, app, provider_id)

    async def quote_from(
        self, user_id: int, acc: Account, apps: list[App], app: str, provider_id: str | None
    ) -> Quote:
        """Price the choice from ``apps`` and persist the quote."""
        _, service = self.find_app(apps, app)
        choice = quote_choice(service, provider_id)
        balance = await self.user_balance(user_id, acc)
        now = self.rt.clock.now()
        expires_at = now + QUOTE_TTL
        chosen = choice.pool if provider_id is not None else None
        await self.accounts.ensure_user(user_id)
        quote_id = await self.quotes.insert(
            user_id=user_id, service_code=service.code, provider_id=chosen,
            pool=choice.pool, price=choice.price, now=now, expires_at=expires_at,
        )
        if quote_id % PRUNE_EVERY == 0:
            await self.quotes.prune(now - QUOTE_TTL)
        return Quote(
            service=service,
            provider_id=chosen,
            price=choice.price,
            balance=balance,
            balance_after=None if balance is None else balance - choice.price,
            pool=choice.pool,
            id=quote_id,
            expires_at=expires_at,
        )

    async def requote(
        self, user_id: int, acc: Account, app: str, provider_id: str | None
    ) -> Quote | None:
        """A fresh quote (prices read now), or None if there is none to offer."""
        acc.catalogue = None
        try:
            return await self.quote_for(user_id, acc, app, provider_id, force=True)
        except EngineError:
            return None

    async def stored(self, quote_id: int) -> QuoteRow | None:
        return await self.quotes.get(quote_id)

    async def shown(self, user_id: int, row: QuoteRow) -> Quote:
        """A stored quote as the Confirm handler needs it, before it answers the
        press: the service from the cached catalogue, the stored price and pool
        (never recomputed), and no balance (that would be an upstream call in
        own-key mode; buy_quote checks the money)."""
        acc = await self.accounts.funding_account(user_id)
        _, service = self.find_app(await self.apps(acc), row.service_code)
        return Quote(
            service=service,
            provider_id=row.provider_id,
            price=row.price,
            balance=None,
            balance_after=None,
            pool=row.pool,
            id=row.id,
            expires_at=row.expires_at,
        )

    async def withdraw(self, user_id: int) -> None:
        await self.quotes.withdraw(user_id, self.rt.clock.now())
