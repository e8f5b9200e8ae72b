"""Wallet and history screens."""

from __future__ import annotations

from telegram import Update

from bot.services.api import EngineError
from bot.telegram import callbacks as cb
from bot.telegram import views
from bot.telegram.context import BotContext
from bot.telegram.handlers.common import answer, lang_of, own_key, pressed, show, user_id_of

__all__ = ["HISTORY_PER_PAGE", "history_callback", "history_command", "wallet_command"]

HISTORY_PER_PAGE = 8


async def wallet_command(update: Update, context: BotContext) -> None:
    """``/wallet`` and the menu's "Wallet"."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    engine = context.engine
    try:
        view = await engine.wallet(user_id)
        has_key = bool(await engine.key_info(user_id)) if own_key(context) else True
    except EngineError as exc:
        await show(update, context, views.engine_error(lang, exc, own_key=own_key(context),
                                                       retry=cb.menu("wal")))
        return
    await show(update, context, views.wallet(lang, view, has_key=has_key, user_id=user_id))


async def history_command(update: Update, context: BotContext) -> None:
    """``/history`` and the menu's "History": all orders, page 1."""
    await _history(update, context, "all", 1)


async def history_callback(update: Update, context: BotContext) -> None:
    """``hist:<filter>:<page>``: edited in place."""
    press = await pressed(update, context, cb.HistCb)
    if press is None:
        return
    _query, _lang, data = press
    await _history(update, context, data.filter, data.page)


async def _history(update: Update, context: BotContext, filter: cb.HistName, page: int) -> None:
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    try:
        result = await context.engine.history(user_id, filter, page, HISTORY_PER_PAGE)
    except EngineError as exc:
        await show(update, context, views.engine_error(lang, exc, own_key=own_key(context),
                                                       retry=cb.hist(filter, page)))
        return
    await show(update, context, views.history(lang, result, filter))
