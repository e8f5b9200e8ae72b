"""The Buy flow's screens: services, pools, confirmation, and its errors. No I/O here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from bot.services.api import EngineError, InsufficientFunds, PriceChanged, Quote, Service, SoldOut
from bot.telegram.buy import keyboards as kb
from bot.telegram.buy.callbacks import buy_list
from bot.telegram.common.keyboards import back_home_kb, error_kb
from bot.telegram.common.support import with_support
from bot.telegram.common.views import Screen, engine_error
from bot.telegram.texts import Raw, fmt_lock, t

__all__ = [
    "can_afford",
    "confirm",
    "filter_services",
    "insufficient",
    "order_services",
    "pools",
    "price_changed",
    "purchase_error",
    "service_gone",
    "service_list",
]


def filter_services(services: Sequence[Service], query: str | None) -> list[Service]:
    if not query:
        return list(services)
    q = query.casefold().strip()
    return [s for s in services if q in s.name.casefold() or q in s.code.casefold()]


def order_services(services: Sequence[Service], recent: Sequence[str]) -> list[Service]:
    """Recently bought first (in recency order), then the rest by name."""
    rank = {code: i for i, code in enumerate(recent)}
    first = sorted((s for s in services if s.code in rank), key=lambda s: rank[s.code])
    rest = sorted((s for s in services if s.code not in rank), key=lambda s: s.name.casefold())
    return first + rest


def service_list(
    lang: str,
    services: Sequence[Service],
    recent: Sequence[str],
    page: int,
    query: str | None = None,
) -> Screen:
    ordered = order_services(filter_services(services, query), recent)
    if not ordered:
        if query:
            return Screen(t(lang, "buy_list_empty", query=query), kb.no_match_kb(lang))
        return Screen(t(lang, "buy_no_services"), back_home_kb(lang))
    pages = max(1, math.ceil(len(ordered) / kb.SERVICES_PER_PAGE))
    page = min(max(1, page), pages)
    chunk = ordered[(page - 1) * kb.SERVICES_PER_PAGE : page * kb.SERVICES_PER_PAGE]
    title = t(lang, "buy_list_filtered", query=query) if query else t(lang, "buy_list_title")
    return Screen(title, kb.services_kb(lang, chunk, set(recent), page, pages))


def pools(lang: str, service: Service) -> Screen:
    return Screen(t(lang, "buy_pools_title", name=service.name), kb.pools_kb(lang, service))


def service_gone(lang: str) -> Screen:
    return Screen(t(lang, "err_service_gone"), error_kb(lang, retry=buy_list(1)))


def _balance_line(lang: str, quote: Quote) -> Raw:
    if quote.balance is None or quote.balance_after is None:
        return Raw("")  # no balance to show: the line is left out
    line = t(lang, "buy_confirm_balance_line", balance=quote.balance,
             balance_after=quote.balance_after)
    return Raw(line + "\n")


def can_afford(quote: Quote) -> bool:
    """False when the known balance is below the price (unknown balance: let the
    purchase decide)."""
    return quote.balance is None or quote.balance >= quote.price


def insufficient(
    lang: str,
    price: Decimal,
    balance: Decimal | None,
    *,
    own_key: bool,
    user_id: int | None = None,
    service: Service | None = None,
) -> Screen:
    """Not enough balance: what it costs, what the user has, how to top up. No Confirm."""
    if own_key:
        step = t(lang, "err_insufficient_own_key")
    elif user_id is not None:
        step = with_support(lang, t(lang, "err_insufficient_operator_id", user_id=user_id))
    else:
        step = with_support(lang, t(lang, "err_insufficient_operator"))
    if balance is None:
        text = t(lang, "err_insufficient_unknown", price=price, next_step=step)
    else:
        text = t(lang, "err_insufficient", price=price, balance=balance, next_step=step)
    return Screen(text, kb.insufficient_kb(lang, service, top_up=not own_key))


def _pool_line(lang: str, quote: Quote) -> Raw:
    if not quote.service.multi_pool:
        return Raw("")
    if quote.provider_id is None:  # cheapest available: say which pool it is now
        if quote.pool is None:
            return Raw(t(lang, "buy_confirm_cheapest_line") + "\n")
        return Raw(t(lang, "buy_confirm_cheapest_pool_line", pool=quote.pool) + "\n")
    return Raw(t(lang, "buy_confirm_pool_line", pool=quote.provider_id) + "\n")


def confirm(
    lang: str,
    quote: Quote,
    *,
    cancel_lock_seconds: float,
    own_key: bool = False,
    user_id: int | None = None,
) -> Screen:
    """The confirmation screen, or the "not enough balance" screen (no Confirm)
    when the known balance is below the price."""
    service = quote.service
    if not can_afford(quote):
        return insufficient(lang, quote.price, quote.balance, own_key=own_key, user_id=user_id,
                            service=service)
    text = t(
        lang,
        "buy_confirm",
        name=service.name,
        pool_line=_pool_line(lang, quote),
        price=quote.price,
        balance_line=_balance_line(lang, quote),
        lock=fmt_lock(cancel_lock_seconds, lang),
    )
    return Screen(text, kb.confirm_kb(lang, quote))


def price_changed(
    lang: str, quote: Quote, *, own_key: bool = False, user_id: int | None = None
) -> Screen:
    if not can_afford(quote):
        return insufficient(lang, quote.price, quote.balance, own_key=own_key, user_id=user_id,
                            service=quote.service)
    text = t(
        lang,
        "err_price_changed",
        name=quote.service.name,
        price=quote.price,
        pool_line=_pool_line(lang, quote),
        balance_line=_balance_line(lang, quote),
    )
    return Screen(text, kb.confirm_kb(lang, quote))


def _sold_out(
    lang: str, exc: SoldOut, app: str | None, pool: str | None
) -> Screen:
    service = exc.service
    pool = exc.pool if exc.pool is not None else pool  # the pool that has no numbers
    name = service.name if service is not None else (app or "")
    if service is not None and service.multi_pool:
        others = [p for p in service.pools if p.provider_id != pool and p.count > 0]
        if pool is not None and others:
            text = t(lang, "err_out_of_stock_pool", pool=pool, name=name)
        elif others:
            text = t(lang, "err_out_of_stock", name=name)
        else:
            text = t(lang, "err_out_of_stock_all", name=name)
        return Screen(text, kb.out_of_stock_kb(lang, service, pool, service.code))
    return Screen(
        t(lang, "err_out_of_stock", name=name),
        kb.out_of_stock_kb(lang, service, pool, app or (service.code if service else "")),
    )


def purchase_error(
    lang: str,
    exc: EngineError,
    *,
    own_key: bool,
    retry: str | None = None,
    app: str | None = None,
    pool: str | None = None,
    user_id: int | None = None,
    service: Service | None = None,
) -> Screen:
    """The message and next step for every engine error of a quote or purchase:
    sold out, not enough balance (``user_id``: shown in operator mode so the user
    can ask an admin to top up), a new price; the rest as everywhere else."""
    if isinstance(exc, SoldOut):
        return _sold_out(lang, exc, app, pool)
    if isinstance(exc, InsufficientFunds):
        return insufficient(lang, exc.price, exc.balance, own_key=own_key, user_id=user_id,
                            service=service)
    if isinstance(exc, PriceChanged):
        if exc.quote is None:
            return service_gone(lang)
        return price_changed(lang, exc.quote, own_key=own_key,
                             user_id=user_id)
    return engine_error(lang, exc, retry=retry)
