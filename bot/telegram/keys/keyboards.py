"""The API key screens' keyboards."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram.common.keyboards import button, home_button, markup
from bot.telegram.keys.callbacks import key
from bot.telegram.texts import label

__all__ = ["key_kb", "key_remove_kb"]


def key_kb(lang: str, *, linked: bool) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if linked:
        rows.append([button(label(lang, "btn_remove_key"), key("rm"))])
    rows.append([home_button(lang)])
    return markup(rows)


def key_remove_kb(lang: str) -> InlineKeyboardMarkup:
    return markup(
        [
            [
                button(label(lang, "btn_remove_yes"), key("rmyes")),
                button(label(lang, "btn_remove_no"), key("rmno")),
            ]
        ]
    )
