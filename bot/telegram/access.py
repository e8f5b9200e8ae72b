"""The access gate (handler group -10): private chats and allowed users only; it
registers each new user with the engine and stops every other update.

Issue 13 (h-admin): a banned user is refused here, for every message, command and
button (their open numbers still finish: the engine does not look at bans); a
user's activity is recorded (at most hourly; it also clears "blocked the bot");
``my_chat_member`` updates mark a user as having blocked or unblocked the bot."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import Forbidden
from telegram.ext import ApplicationHandlerStop

from bot.telegram.common.handlers import answer, lang_of, may_use, user_id_of
from bot.telegram.common.support import support_plain, with_support
from bot.telegram.context import BotContext
from bot.telegram.texts import N_, pick_lang, plain, strip_html, t

__all__ = ["gate"]

log = logging.getLogger(__name__)

SEEN_EVERY = 3600.0  # seconds: a user's activity is written at most this often
BAN_TOLD_EVERY = 60.0  # seconds: a banned user's messages get the refusal at most this often


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
    if update.my_chat_member is not None:
        await _member_changed(update, context)
        raise ApplicationHandlerStop
    if update.message is None and update.callback_query is None:
        raise ApplicationHandlerStop  # edits, other member updates...: nothing to do
    data = context.bot_data
    if user.id in data.banned:
        await _refuse_banned(update, context, lang)
        raise ApplicationHandlerStop
    if user.id not in data.known_users:
        stored = await context.engine.ensure_user(user.id, locale=user.language_code, seen=True)
        data.langs[user.id] = pick_lang(stored or user.language_code,
                                        context.settings.default_locale)
        data.known_users.add(user.id)
        data.seen[user.id] = context.clock.now()  # ensure_user records the sighting too
    now = context.clock.now()
    last = data.seen.get(user.id)
    if last is None or now - last >= SEEN_EVERY:
        data.seen[user.id] = now
        await context.engine.user_seen(user.id)  # active now; unblocked if they had blocked us


async def _member_changed(update: Update, context: BotContext) -> None:
    """The user blocked (``kicked``) or unblocked (``member``) the bot."""
    change = update.my_chat_member
    assert change is not None and update.effective_user is not None
    status = change.new_chat_member.status
    user_id = update.effective_user.id
    if status == ChatMemberStatus.BANNED:
        context.bot_data.seen.pop(user_id, None)
        await context.engine.set_blocked(user_id, True)
    elif status == ChatMemberStatus.MEMBER:
        await context.engine.set_blocked(user_id, False)


async def _refuse_banned(update: Update, context: BotContext, lang: str) -> None:
    """One clear text (and the support contact, if configured); a button press is
    always answered, a message at most once per BAN_TOLD_EVERY."""
    text = with_support(lang, t(lang, "banned_notice"))
    user_id = user_id_of(update)
    told = context.bot_data.ban_told
    now = context.clock.now()
    if update.callback_query is not None:
        await answer(update.callback_query, strip_html(text)[:200], alert=True)
        return
    if now - told.get(user_id, -BAN_TOLD_EVERY) < BAN_TOLD_EVERY:
        return
    told[user_id] = now
    if update.message is not None:
        try:
            await update.message.reply_text(text)
        except Forbidden:
            pass


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


