"""Which pool a quote prices and which pool a purchase buys (pure functions on
:mod:`bot.domain.catalogue`'s values).

"Cheapest available" is resolved when the quote is made: to the cheapest pool that
has numbers. The confirmation remembers that pool and the purchase names it
(``provider_id``), so DaisySim never picks another, dearer pool by itself. At
Confirm the *fresh* catalogue decides: the quoted pool is bought if it still has
numbers at a price no higher than the one confirmed; with no numbers the purchase is
refused as out of stock (the UI offers the current pools), never moved to another
pool; a higher price is asked again (by the engine, comparing with ``max_price``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain.catalogue import Pool, Service, ServiceUnavailable, SoldOut

__all__ = ["Choice", "cheapest_in_stock", "purchase_choice", "quote_choice"]


@dataclass(frozen=True, slots=True)
class Choice:
    pool: str | None  # the pool to name upstream; None for single-provider services
    price: Decimal  # the user's price of that pool (or of the service)


def _find(service: Service, provider_id: str) -> Pool | None:
    return next((p for p in service.pools if p.provider_id == str(provider_id)), None)


def cheapest_in_stock(service: Service) -> Pool | None:
    """The cheapest pool with numbers (the first one among equal prices: pools come
    cheapest-first from /apps), or None."""
    return min((p for p in service.pools if p.count > 0), key=lambda p: p.price, default=None)


def quote_choice(service: Service, provider_id: str | None) -> Choice:
    """What a quote for ``provider_id`` (None: cheapest available) prices. Raises
    SoldOut when no pool has numbers for "cheapest", ServiceUnavailable for an
    unknown pool."""
    if not service.pools:
        return Choice(None, service.price)
    if provider_id is None:
        pool = cheapest_in_stock(service)
        if pool is None:
            raise SoldOut("no pool has numbers", service=service)
        return Choice(pool.provider_id, pool.price)
    pool = _find(service, provider_id)
    if pool is None:
        raise ServiceUnavailable(f"unknown pool {provider_id!r} for {service.code!r}")
    return Choice(pool.provider_id, pool.price)


def purchase_choice(
    service: Service, provider_id: str | None, quoted_pool: str | None
) -> Choice:
    """What a purchase confirmed for ``provider_id`` (the user's choice) and
    ``quoted_pool`` (the pool the quote resolved to) buys, by the fresh catalogue
    ``service``. Raises SoldOut (naming the pool) when that pool has no numbers
    or is gone: another pool is never bought in its place."""
    if not service.pools:
        return Choice(None, service.price)
    if provider_id is not None and quoted_pool is not None and str(provider_id) != quoted_pool:
        raise ValueError("the quoted pool is not the pinned pool")
    target = quoted_pool if quoted_pool is not None else provider_id
    if target is None:  # no quote to hold on to: the cheapest pool with numbers now
        return quote_choice(service, None)
    pool = _find(service, target)
    if pool is None or pool.count <= 0:
        raise SoldOut("the quoted pool has no numbers", service=service, pool=str(target))
    return Choice(pool.provider_id, pool.price)
