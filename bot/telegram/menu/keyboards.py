"""The main menu's keyboard."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup

from bot.telegram.common.keyboards import button, markup, nav_button
from bot.telegram.menu.callbacks import menu
from bot.telegram.texts import label

__all__ = ["main_menu_kb"]


def main_menu_kb(lang: str, *, own_key: bool) -> InlineKeyboardMarkup:
    rows = [
        [nav_button(lang, "buy")],
        [nav_button(lang, "act"), nav_button(lang, "wal")],
        [nav_button(lang, "hist")],
    ]
    if own_key:
        rows[2].append(button(label(lang, "btn_key"), menu("key")))
    rows.append([button(label(lang, "btn_help"), menu("help"))])
    return markup(rows)
