"""The Buy flow's keyboards: services, pools, confirmation, sold out, not enough balance."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.api import Pool, Quote, Service
from bot.telegram.buy.callbacks import buy_list, buy_pool, buy_quote, buy_service
from bot.telegram.common.keyboards import (
    back_button,
    button,
    home_button,
    markup,
    nav_button,
    pager,
)
from bot.telegram.menu.callbacks import menu
from bot.telegram.texts import N_, label
from bot.telegram.topup.keyboards import topup_button

__all__ = [
    "SERVICES_PER_PAGE",
    "confirm_kb",
    "insufficient_kb",
    "no_match_kb",
    "out_of_stock_kb",
    "pools_kb",
    "services_kb",
]

SERVICES_PER_PAGE = 8

# Service button label keys: (several pools, bought recently) -> key.
_SERVICE_LABELS: dict[tuple[bool, bool], str] = {
    (False, False): N_("btn_service"),
    (False, True): N_("btn_service_recent"),
    (True, False): N_("btn_service_multi"),
    (True, True): N_("btn_service_multi_recent"),
}


def no_match_kb(lang: str) -> InlineKeyboardMarkup:
    """A filter that matched nothing: the whole list again (``menu:buy`` clears the
    filter remembered for the message), or the menu."""
    return markup(
        [
            [button(label(lang, "btn_all_services"), menu("buy"))],
            [home_button(lang)],
        ]
    )


def services_kb(
    lang: str, services: Sequence[Service], recent: set[str], page: int, pages: int
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    for service in services:
        key = _SERVICE_LABELS[(service.multi_pool, service.code in recent)]
        rows.append(
            [
                button(
                    label(lang, key, name=service.name, price=service.price),
                    buy_service(service.code),
                )
            ]
        )
    rows.append(pager(lang, page, pages, buy_list))
    rows.append([back_button(lang, menu("home"))])
    return markup(rows)


def _pool_button(lang: str, service: Service, pool: Pool) -> InlineKeyboardButton:
    key = N_("btn_pool") if pool.count > 0 else N_("btn_pool_empty")
    return button(
        label(lang, key, pool=pool.provider_id, price=pool.price, count=pool.count),
        buy_pool(service.code, pool.provider_id),
    )


def pools_kb(lang: str, service: Service, *, exclude: str | None = None) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    in_stock = [p for p in service.pools if p.count > 0]
    cheapest = min((p.price for p in in_stock), default=service.price)
    rows.append(
        [button(label(lang, "btn_cheapest", price=cheapest), buy_pool(service.code, None))]
    )
    for pool in service.pools:
        if pool.provider_id != exclude:
            rows.append([_pool_button(lang, service, pool)])
    rows.append([back_button(lang, buy_list(1))])
    return markup(rows)


def out_of_stock_kb(
    lang: str, service: Service | None, failed_pool: str | None, app: str
) -> InlineKeyboardMarkup:
    if service is not None and service.multi_pool:
        rows: list[list[InlineKeyboardButton]] = []
        others = [p for p in service.pools if p.provider_id != failed_pool and p.count > 0]
        if others or failed_pool is not None:
            cheapest = min((p.price for p in others), default=service.price)
            rows.append(
                [
                    button(
                        label(lang, "btn_cheapest", price=cheapest),
                        buy_pool(service.code, None),
                    )
                ]
            )
        for pool in others:
            rows.append([_pool_button(lang, service, pool)])
        rows.append([back_button(lang, buy_list(1))])
        return markup(rows)
    return markup(
        [
            [button(label(lang, "btn_try_again"), buy_service(app))],
            [back_button(lang, buy_list(1))],
        ]
    )


def confirm_kb(lang: str, quote: Quote) -> InlineKeyboardMarkup:
    """Confirm buys the stored quote (``buy:q:<id>``: no price in the data)."""
    service = quote.service
    back = buy_service(service.code) if service.multi_pool else buy_list(1)
    return markup(
        [
            [button(label(lang, "btn_confirm", price=quote.price), buy_quote(quote.id))],
            [back_button(lang, back)],
        ]
    )


def insufficient_kb(
    lang: str, service: Service | None, *, top_up: bool = False
) -> InlineKeyboardMarkup:
    """Not enough balance: no Confirm. Top up (operator mode), back to the pools
    (another may be cheaper), another service, the wallet, the menu."""
    rows: list[list[InlineKeyboardButton]] = []
    if top_up:
        rows.append([topup_button(lang)])
    if service is not None and service.multi_pool:
        rows.append([back_button(lang, buy_service(service.code))])
    rows.append([button(label(lang, "btn_pick_another"), buy_list(1))])
    rows.append([nav_button(lang, "wal"), home_button(lang)])
    return markup(rows)
