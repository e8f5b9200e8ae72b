"""The wallet's keyboard."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup

from bot.telegram.common.keyboards import home_button, link_key_button, markup, nav_button
from bot.telegram.topup.keyboards import topup_button

__all__ = ["wallet_kb"]


def wallet_kb(lang: str, *, own_key: bool, has_key: bool) -> InlineKeyboardMarkup:
    rows = [[nav_button(lang, "act"), nav_button(lang, "hist")]]
    if own_key and not has_key:
        rows.append([link_key_button(lang)])
    if not own_key:  # operator mode: the wallet is ours to top up (Telegram Stars)
        rows.insert(0, [topup_button(lang)])
    rows.append([home_button(lang)])
    return markup(rows)
