"""The history's keyboard: filters, pages, Home."""

from __future__ import annotations

from typing import get_args

from telegram import InlineKeyboardMarkup

from bot.telegram.common.keyboards import button, home_button, markup, pager
from bot.telegram.history.callbacks import HistName, hist
from bot.telegram.texts import N_, label

__all__ = ["FILTER_LABELS", "history_kb"]

FILTER_LABELS: dict[HistName, str] = {
    "all": N_("hist_all"),
    "completed": N_("hist_completed"),
    "waiting": N_("hist_waiting"),
    "cancelled": N_("hist_cancelled"),
}
assert set(FILTER_LABELS) == set(get_args(HistName))


def history_kb(lang: str, current: HistName, page: int, pages: int) -> InlineKeyboardMarkup:
    filters_row = []
    for name, key in FILTER_LABELS.items():
        text = label(lang, key)
        if name == current:
            text = label(lang, "hist_selected", label=text)
        filters_row.append(button(text, hist(name, 1)))
    return markup(
        [
            filters_row[:2],
            filters_row[2:],
            pager(lang, page, pages, lambda p: hist(current, p)),
            [home_button(lang)],
        ]
    )
