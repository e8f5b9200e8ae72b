"""The top-up keyboards: the packs, and the wallet's "Top up" button."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.api import Pack
from bot.telegram.common.keyboards import button, home_button, markup, nav_button
from bot.telegram.texts import label
from bot.telegram.topup.callbacks import topup_list, topup_pack

__all__ = ["packs_kb", "topup_button"]


def topup_button(lang: str) -> InlineKeyboardButton:
    return button(label(lang, "btn_topup"), topup_list())


def packs_kb(lang: str, packs: tuple[Pack, ...]) -> InlineKeyboardMarkup:
    rows = [
        [button(label(lang, "btn_topup_pack", amount=p.usd, stars=p.price),
                topup_pack(p.index))]
        for p in packs
    ]
    rows.append([nav_button(lang, "wal"), home_button(lang)])
    return markup(rows)
