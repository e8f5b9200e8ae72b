"""Inline keyboards. Every ``callback_data`` comes from :mod:`bot.telegram.callbacks`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from telegram import CopyTextButton, InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.api import Activation, ActivationState, HistoryFilter, Pool, Service
from bot.telegram import callbacks as cb
from bot.telegram.texts import fmt_time, label

__all__ = [
    "SERVICES_PER_PAGE",
    "activation_list_kb",
    "back_home_kb",
    "button",
    "confirm_kb",
    "copy_button",
    "error_kb",
    "history_kb",
    "insufficient_kb",
    "key_kb",
    "key_remove_kb",
    "main_menu_kb",
    "no_match_kb",
    "order_kb",
    "otp_kb",
    "out_of_stock_kb",
    "pools_kb",
    "services_kb",
    "wallet_kb",
]

SERVICES_PER_PAGE = 8
# Telegram limits copy_text to 256 characters.
_COPY_MAX = 256


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def copy_button(text: str, value: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, copy_text=CopyTextButton(text=value[:_COPY_MAX]))


def _markup(rows: Sequence[Sequence[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([list(row) for row in rows if row])


def main_menu_kb(lang: str, *, own_key: bool) -> InlineKeyboardMarkup:
    rows = [
        [button(label(lang, "btn_buy"), cb.menu("buy"))],
        [
            button(label(lang, "btn_active"), cb.menu("act")),
            button(label(lang, "btn_wallet"), cb.menu("wal")),
        ],
        [button(label(lang, "btn_history"), cb.menu("hist"))],
    ]
    if own_key:
        rows[2].append(button(label(lang, "btn_key"), cb.menu("key")))
    rows.append([button(label(lang, "btn_help"), cb.menu("help"))])
    return _markup(rows)


def back_home_kb(lang: str) -> InlineKeyboardMarkup:
    return _markup([[button(label(lang, "btn_home"), cb.menu("home"))]])


def no_match_kb(lang: str) -> InlineKeyboardMarkup:
    """A filter that matched nothing: the whole list again (``menu:buy`` clears the
    filter remembered for the message), or the menu."""
    return _markup(
        [
            [button(label(lang, "btn_all_services"), cb.menu("buy"))],
            [button(label(lang, "btn_home"), cb.menu("home"))],
        ]
    )


def _pager(
    lang: str, page: int, pages: int, make: Callable[[int], str]
) -> list[InlineKeyboardButton]:
    if pages <= 1:
        return []
    row: list[InlineKeyboardButton] = []
    if page > 1:
        row.append(button(label(lang, "btn_prev"), make(page - 1)))
    row.append(button(label(lang, "btn_page", page=page, pages=pages), cb.noop()))
    if page < pages:
        row.append(button(label(lang, "btn_next"), make(page + 1)))
    return row


def services_kb(
    lang: str, services: Sequence[Service], recent: set[str], page: int, pages: int
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    for service in services:
        key = "btn_service_multi" if service.multi_pool else "btn_service"
        if service.code in recent:
            key += "_recent"
        rows.append(
            [
                button(
                    label(lang, key, name=service.name, price=service.price),
                    cb.buy_service(service.code),
                )
            ]
        )
    rows.append(_pager(lang, page, pages, cb.buy_list))
    rows.append([button(label(lang, "btn_back"), cb.menu("home"))])
    return _markup(rows)


def _pool_button(lang: str, service: Service, pool: Pool) -> InlineKeyboardButton:
    key = "btn_pool" if pool.count > 0 else "btn_pool_empty"
    return button(
        label(lang, key, pool=pool.provider_id, price=pool.price, count=pool.count),
        cb.buy_pool(service.code, pool.provider_id),
    )


def pools_kb(lang: str, service: Service, *, exclude: str | None = None) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    in_stock = [p for p in service.pools if p.count > 0]
    cheapest = min((p.price for p in in_stock), default=service.price)
    rows.append(
        [button(label(lang, "btn_cheapest", price=cheapest), cb.buy_pool(service.code, None))]
    )
    for pool in service.pools:
        if pool.provider_id != exclude:
            rows.append([_pool_button(lang, service, pool)])
    rows.append([button(label(lang, "btn_back"), cb.buy_list(1))])
    return _markup(rows)


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
                        cb.buy_pool(service.code, None),
                    )
                ]
            )
        for pool in others:
            rows.append([_pool_button(lang, service, pool)])
        rows.append([button(label(lang, "btn_back"), cb.buy_list(1))])
        return _markup(rows)
    return _markup(
        [
            [button(label(lang, "btn_try_again"), cb.buy_service(app))],
            [button(label(lang, "btn_back"), cb.buy_list(1))],
        ]
    )


def confirm_kb(
    lang: str, service: Service, pool: str | None, price: object, nonce: str
) -> InlineKeyboardMarkup:
    back = cb.buy_service(service.code) if service.multi_pool else cb.buy_list(1)
    return _markup(
        [
            [
                button(
                    label(lang, "btn_confirm", price=price),
                    cb.buy_confirm(service.code, pool, nonce),
                )
            ],
            [button(label(lang, "btn_back"), back)],
        ]
    )


def insufficient_kb(lang: str, service: Service | None) -> InlineKeyboardMarkup:
    """Not enough balance: no Confirm. Back to the pools (another may be cheaper),
    another service, the wallet, the menu."""
    rows: list[list[InlineKeyboardButton]] = []
    if service is not None and service.multi_pool:
        rows.append([button(label(lang, "btn_back"), cb.buy_service(service.code))])
    rows.append([button(label(lang, "btn_pick_another"), cb.buy_list(1))])
    rows.append(
        [
            button(label(lang, "btn_wallet"), cb.menu("wal")),
            button(label(lang, "btn_home"), cb.menu("home")),
        ]
    )
    return _markup(rows)


def error_kb(
    lang: str, *, retry: str | None = None, key: bool = False, wallet: bool = False
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if retry is not None:
        rows.append([button(label(lang, "btn_try_again"), retry)])
    if key:
        rows.append([button(label(lang, "btn_link_key"), cb.key("set"))])
    if wallet:
        rows.append([button(label(lang, "btn_wallet"), cb.menu("wal"))])
    rows.append([button(label(lang, "btn_home"), cb.menu("home"))])
    return _markup(rows)


def order_kb(lang: str, activation: Activation, now: float) -> InlineKeyboardMarkup:
    a = activation
    rows: list[list[InlineKeyboardButton]] = []
    if a.state == ActivationState.COMPLETED and a.code:
        rows.append([copy_button(label(lang, "btn_copy_code"), a.code)])
    if a.phone and not a.state.is_final:
        rows.append([copy_button(label(lang, "btn_copy_number"), a.phone)])
    if a.cancel_available(now):
        rows.append([button(label(lang, "btn_cancel_refund"), cb.act("cancel", a.id))])
    elif a.state == ActivationState.WAITING:
        # Looks disabled; a press answers with the seconds left (the engine decides).
        at = fmt_time(a.cancel_after, round_up=True)  # as the order text: from then on
        rows.append([button(label(lang, "btn_cancel_locked", at=at), cb.act("cancel", a.id))])
    if not a.state.is_final:
        rows.append([button(label(lang, "btn_refresh"), cb.act("ref", a.id))])
    else:
        rows.append(
            [
                button(
                    label(lang, "btn_buy_again"),
                    cb.buy_again(a.service_code, a.provider_id),
                ),
                button(label(lang, "btn_home"), cb.menu("home")),
            ]
        )
    return _markup(rows)


def otp_kb(lang: str, activation: Activation) -> InlineKeyboardMarkup:
    code = activation.code or ""
    return _markup(
        [
            [copy_button(label(lang, "btn_copy_code"), code)],
            [button(label(lang, "btn_buy_again"), cb.buy_again(activation.service_code,
                                                             activation.provider_id))],
        ]
    )


def activation_list_kb(lang: str, items: Sequence[Activation]) -> InlineKeyboardMarkup:
    rows = [
        [
            button(
                label(lang, "btn_open_order", name=a.service_name, phone=a.phone or "…"),
                cb.act("open", a.id),
            )
        ]
        for a in items
    ]
    rows.append(
        [
            button(label(lang, "btn_buy"), cb.menu("buy")),
            button(label(lang, "btn_home"), cb.menu("home")),
        ]
    )
    return _markup(rows)


_HIST_FILTERS: tuple[HistoryFilter, ...] = ("all", "completed", "waiting", "cancelled")


def history_kb(lang: str, current: HistoryFilter, page: int, pages: int) -> InlineKeyboardMarkup:
    filters_row = []
    for name in _HIST_FILTERS:
        text = label(lang, f"hist_{name}")
        if name == current:
            text = label(lang, "hist_selected", label=text)
        filters_row.append(button(text, cb.hist(name, 1)))
    return _markup(
        [
            filters_row[:2],
            filters_row[2:],
            _pager(lang, page, pages, lambda p: cb.hist(current, p)),
            [button(label(lang, "btn_home"), cb.menu("home"))],
        ]
    )


def wallet_kb(lang: str, *, own_key: bool, has_key: bool) -> InlineKeyboardMarkup:
    rows = [
        [
            button(label(lang, "btn_active"), cb.menu("act")),
            button(label(lang, "btn_history"), cb.menu("hist")),
        ]
    ]
    if own_key and not has_key:
        rows.append([button(label(lang, "btn_link_key"), cb.key("set"))])
    rows.append([button(label(lang, "btn_home"), cb.menu("home"))])
    return _markup(rows)


def key_kb(lang: str, *, linked: bool) -> InlineKeyboardMarkup:
    rows = []
    if linked:
        rows.append([button(label(lang, "btn_remove_key"), cb.key("rm"))])
    rows.append([button(label(lang, "btn_home"), cb.menu("home"))])
    return _markup(rows)


def key_remove_kb(lang: str) -> InlineKeyboardMarkup:
    return _markup(
        [
            [
                button(label(lang, "btn_remove_yes"), cb.key("rmyes")),
                button(label(lang, "btn_remove_no"), cb.key("rmno")),
            ]
        ]
    )
