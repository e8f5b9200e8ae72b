"""``/history`` and its filter and page buttons (edited in place)."""

from __future__ import annotations

from telegram import Update

from bot.services.api import EngineError
from bot.telegram.common.handlers import answer, lang_of, pressed, show, user_id_of
from bot.telegram.common.views import engine_error
from bot.telegram.context import BotContext
from bot.telegram.history import views
from bot.telegram.history.callbacks import HistCb, HistName, hist

__all__ = ["HISTORY_PATTERN", "HISTORY_PER_PAGE", "history_callback", "history_command"]

HISTORY_PER_PAGE = 8
HISTORY_PATTERN = HistCb.pattern()


async def history_command(update: Update, context: BotContext) -> None:
    """``/history`` and the menu's "History": all orders, page 1."""
    await _history(update, context, "all", 1)


async def history_callback(update: Update, context: BotContext) -> None:
    """``hist:<filter>:<page>``: edited in place."""
    press = await pressed(update, context, HistCb)
    if press is None:
        return
    _query, _lang, data = press
    await _history(update, context, data.filter, data.page)


async def _history(update: Update, context: BotContext, filter: HistName, page: int) -> None:
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    try:
        result = await context.engine.history(user_id, filter, page, HISTORY_PER_PAGE)
    except EngineError as exc:
        await show(update, context, engine_error(lang, exc, retry=hist(filter, page)))
        return
    await show(update, context, views.history(lang, result, filter))
