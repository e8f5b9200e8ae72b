"""The application's one error handler."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.services.api import EngineError
from bot.telegram.buy.views import purchase_error
from bot.telegram.common.handlers import (
    answer,
    answered,
    is_not_modified,
    lang_of,
    users_bring_keys,
)
from bot.telegram.common.support import support_plain, with_support
from bot.telegram.common.views import error_alert
from bot.telegram.context import BotContext
from bot.telegram.texts import plain, t

__all__ = ["on_error"]

log = logging.getLogger("bot.telegram.errors")


async def on_error(update: object, context: BotContext) -> None:
    """Log with the traceback, tell the user something useful.

    "message is not modified" is success (a re-render that changed nothing);
    Forbidden means the user blocked the bot: nothing to tell them."""
    error = context.error
    if error is None:
        return
    if is_not_modified(error):
        return
    update_id = update.update_id if isinstance(update, Update) else None
    if isinstance(error, Forbidden):
        log.info("update %s: the user blocked the bot (%s)", update_id, error)
        return
    if isinstance(error, RetryAfter):
        # Flood control outlasted the limiter's retries (each logged at WARNING): the
        # chat is paused, so telling the user now would fail too.
        log.warning("update %s: not answered, Telegram flood control (%s)", update_id, error)
        return
    if not isinstance(error, EngineError):
        log.error("error while handling update %s", update_id, exc_info=error)
    else:
        log.warning("engine error while handling update %s: %r", update_id, error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    lang = lang_of(update, context)
    if isinstance(error, EngineError):
        user = update.effective_user
        screen = purchase_error(
            lang, error, own_key=users_bring_keys(context), user_id=user.id if user else None
        )
        text, markup = screen.text, screen.markup
        alert = error_alert(lang, error)
    else:
        text, markup = with_support(lang, t(lang, "err_generic")), None
        alert = support_plain(lang, plain(lang, "err_generic"))
    query = update.callback_query
    try:
        if query is not None and not answered(query):
            await answer(query, alert, alert=True)
            return
        await context.bot.send_message(
            chat_id=update.effective_chat.id, text=text, reply_markup=markup
        )
    except (BadRequest, Forbidden):
        pass
    except TelegramError as exc:
        log.warning("could not tell the user about the error: %s", exc)
