"""The main menu's keyboard."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup

from bot.telegram.common.keyboards import button, home_button, markup, nav_button
from bot.telegram.menu.callbacks import choose_lang, menu
from bot.telegram.texts import LANGUAGE_NAMES, label

__all__ = ["language_kb", "main_menu_kb"]


def main_menu_kb(lang: str, *, own_key: bool) -> InlineKeyboardMarkup:
    rows = [
        [nav_button(lang, "buy")],
        [nav_button(lang, "act"), nav_button(lang, "wal")],
        [nav_button(lang, "hist")],
    ]
    if own_key:
        rows[2].append(button(label(lang, "btn_key"), menu("key")))
    rows.append([button(label(lang, "btn_help"), menu("help")),
                 button(label(lang, "btn_language"), menu("lang"))])
    return markup(rows)


def language_kb(lang: str) -> InlineKeyboardMarkup:
    """One button per language, each named in itself (✅ on the current one)."""
    rows = [
        [button(("✅ " if code == lang else "") + name, choose_lang(code))]
        for code, name in LANGUAGE_NAMES.items()
    ]
    rows.append([home_button(lang)])
    return markup(rows)
