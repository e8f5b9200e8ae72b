"""``/wallet`` and the menu's "Wallet" (the wallet has no buttons of its own: it is
opened with ``menu:wal``)."""

from __future__ import annotations

from telegram import Update

from bot.services.api import EngineError
from bot.telegram.common.handlers import answer, lang_of, show, user_id_of, users_bring_keys
from bot.telegram.common.views import engine_error
from bot.telegram.context import BotContext
from bot.telegram.menu.callbacks import menu
from bot.telegram.wallet import views

__all__ = ["wallet_command"]


async def wallet_command(update: Update, context: BotContext) -> None:
    """``/wallet`` and the menu's "Wallet"."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    engine = context.engine
    try:
        view = await engine.wallet(user_id)
        has_key = bool(await engine.key_info(user_id)) if users_bring_keys(context) else True
    except EngineError as exc:
        await show(update, context, engine_error(lang, exc, retry=menu("wal")))
        return
    await show(update, context, views.wallet(lang, view, has_key=has_key, user_id=user_id))
