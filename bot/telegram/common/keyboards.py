"""Buttons every feature uses: builders, Home / Back / pagination, the way to
another feature (wallet, active numbers, history, buy, link a key), and the
keyboard under an error."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from telegram import CopyTextButton, InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram.keys.callbacks import key
from bot.telegram.menu.callbacks import MenuName, menu, noop
from bot.telegram.texts import N_, label

__all__ = [
    "back_button",
    "back_home_kb",
    "button",
    "copy_button",
    "error_kb",
    "home_button",
    "link_key_button",
    "markup",
    "nav_button",
    "pager",
]

# Telegram limits copy_text to 256 characters.
_COPY_MAX = 256

# The main menu's entries other features link to, with their label keys.
_NAV_LABELS: dict[MenuName, str] = {
    "buy": N_("btn_buy"),
    "act": N_("btn_active"),
    "wal": N_("btn_wallet"),
    "hist": N_("btn_history"),
    "home": N_("btn_home"),
}


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def copy_button(text: str, value: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, copy_text=CopyTextButton(text=value[:_COPY_MAX]))


def markup(rows: Sequence[Sequence[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    """A keyboard from rows (empty rows left out)."""
    return InlineKeyboardMarkup([list(row) for row in rows if row])


def nav_button(lang: str, name: MenuName) -> InlineKeyboardButton:
    """A button opening another part of the main menu (``menu:<name>``)."""
    return button(label(lang, _NAV_LABELS[name]), menu(name))


def home_button(lang: str) -> InlineKeyboardButton:
    return nav_button(lang, "home")


def back_button(lang: str, data: str) -> InlineKeyboardButton:
    """⬅️ Back to the screen ``data`` opens."""
    return button(label(lang, "btn_back"), data)


def link_key_button(lang: str) -> InlineKeyboardButton:
    return button(label(lang, "btn_link_key"), key("set"))


def back_home_kb(lang: str) -> InlineKeyboardMarkup:
    return markup([[home_button(lang)]])


def pager(
    lang: str, page: int, pages: int, make: Callable[[int], str]
) -> list[InlineKeyboardButton]:
    """◀️ Prev · page/pages · Next ▶️ (``make(page)``: the data of a page's button)."""
    if pages <= 1:
        return []
    row: list[InlineKeyboardButton] = []
    if page > 1:
        row.append(button(label(lang, "btn_prev"), make(page - 1)))
    row.append(button(label(lang, "btn_page", page=page, pages=pages), noop()))
    if page < pages:
        row.append(button(label(lang, "btn_next"), make(page + 1)))
    return row


def error_kb(
    lang: str, *, retry: str | None = None, key: bool = False, wallet: bool = False
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if retry is not None:
        rows.append([button(label(lang, "btn_try_again"), retry)])
    if key:
        rows.append([link_key_button(lang)])
    if wallet:
        rows.append([nav_button(lang, "wal")])
    rows.append([home_button(lang)])
    return markup(rows)
