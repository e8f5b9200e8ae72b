"""The access gate (handler group -10): private chats and allowed users only; it
registers each new user with the engine and stops every other update."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.error import Forbidden
from telegram.ext import ApplicationHandlerStop

from bot.telegram.common.handlers import answer, lang_of, may_use
from bot.telegram.common.support import support_plain, with_support
from bot.telegram.context import BotContext
from bot.telegram.texts import N_, pick_lang, plain, t

__all__ = ["gate"]

log = logging.getLogger(__name__)


async def gate(update: object, context: BotContext) -> None:
    """Group -10: private chats and allowed users only; registers the user."""
    if not isinstance(update, Update):
        raise ApplicationHandlerStop
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None or user.is_bot:
        raise ApplicationHandlerStop
    lang = lang_of(update, context)
    if chat.type != ChatType.PRIVATE:
        await _refuse(update, lang, N_("group_refusal"), only_commands=True)
        raise ApplicationHandlerStop
    if not may_use(user.id, context.settings):
        log.info("refused update from user %s (not in the allowlist)", user.id)
        await _refuse(update, lang, N_("access_denied"), support=True, user_id=user.id)
        raise ApplicationHandlerStop
    if update.message is None and update.callback_query is None:
        raise ApplicationHandlerStop  # edits, member updates...: nothing to do
    if user.id not in context.bot_data.known_users:
        stored = await context.engine.ensure_user(user.id, locale=user.language_code)
        context.bot_data.langs[user.id] = pick_lang(stored or user.language_code,
                                                    context.settings.default_locale)
        context.bot_data.known_users.add(user.id)


async def _refuse(
    update: Update, lang: str, key: str, *, only_commands: bool = False,
    support: bool = False, **values: object,
) -> None:
    try:
        if update.callback_query is not None:
            text = plain(lang, key, **values)
            await answer(update.callback_query,
                         support_plain(lang, text) if support else text, alert=True)
            return
        message = update.message
        if message is None:
            return
        if only_commands and not (message.text or "").startswith("/"):
            return
        html = t(lang, key, **values)
        await message.reply_text(with_support(lang, html) if support else html)
    except Forbidden:
        pass


