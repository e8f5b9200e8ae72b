"""An order's keyboards: the order message, the code push, the Active numbers list."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.api import Activation, ActivationState
from bot.telegram.buy.callbacks import buy_again
from bot.telegram.common.keyboards import button, copy_button, home_button, markup, nav_button
from bot.telegram.orders.callbacks import order
from bot.telegram.texts import fmt_time, label

__all__ = ["activation_list_kb", "order_kb", "otp_kb"]


def _buy_again(lang: str, a: Activation) -> InlineKeyboardButton:
    return button(label(lang, "btn_buy_again"), buy_again(a.service_code, a.provider_id))


def order_kb(lang: str, activation: Activation, now: float) -> InlineKeyboardMarkup:
    a = activation
    rows: list[list[InlineKeyboardButton]] = []
    if a.state == ActivationState.COMPLETED and a.code:
        rows.append([copy_button(label(lang, "btn_copy_code"), a.code)])
    if a.phone and not a.state.is_final:
        rows.append([copy_button(label(lang, "btn_copy_number"), a.phone)])
    if a.cancel_available(now):
        rows.append([button(label(lang, "btn_cancel_refund"), order("cancel", a.id))])
    elif a.state == ActivationState.WAITING:
        # Looks disabled; a press answers with the seconds left (the engine decides).
        at = fmt_time(a.cancel_after, round_up=True)  # as the order text: from then on
        rows.append([button(label(lang, "btn_cancel_locked", at=at), order("cancel", a.id))])
    if not a.state.is_final:
        rows.append([button(label(lang, "btn_refresh"), order("ref", a.id))])
    else:
        rows.append([_buy_again(lang, a), home_button(lang)])
    return markup(rows)


def otp_kb(lang: str, activation: Activation) -> InlineKeyboardMarkup:
    code = activation.code or ""
    return markup(
        [
            [copy_button(label(lang, "btn_copy_code"), code)],
            [_buy_again(lang, activation)],
        ]
    )


def activation_list_kb(lang: str, items: Sequence[Activation]) -> InlineKeyboardMarkup:
    rows = [
        [
            button(
                label(lang, "btn_open_order", name=a.service_name, phone=a.phone or "…"),
                order("open", a.id),
            )
        ]
        for a in items
    ]
    rows.append([nav_button(lang, "buy"), home_button(lang)])
    return markup(rows)
