"""What a user hears when their updates were dropped (see :mod:`bot.telegram.updates`).

A dropped button press is answered at once with a short toast (the spinner
stops; answerCallbackQuery is not limited by the 30 messages/s budget); the note
(``flood_note``) is sent as a message once per burst. Dropped updates never reach
the access gate, so its rules are applied here: private chats only, allowed users
only. In own-key mode a message carrying an API key is never dropped
(:func:`key_message`): it still has to be deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError

from bot.config import Settings
from bot.telegram.common.handlers import answer, may_use
from bot.telegram.keys.detect import looks_like_key
from bot.telegram.texts import pick_lang, plain, t

__all__ = ["flood_notifier", "key_message"]

log = logging.getLogger(__name__)


def _allowed(update: Update, settings: Settings) -> bool:
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None or user.is_bot or chat.type != ChatType.PRIVATE:
        return False
    return may_use(user.id, settings)


def flood_notifier(settings: Settings) -> Callable[[Update, bool], Awaitable[None]]:
    async def on_dropped(update: Update, note: bool) -> None:
        if not _allowed(update, settings):
            return
        user, chat = update.effective_user, update.effective_chat
        assert user is not None and chat is not None
        lang = pick_lang(user.language_code, settings.default_locale)
        if update.callback_query is not None:
            await answer(update.callback_query, plain(lang, "flood_toast"))
        if note:
            try:
                await update.get_bot().send_message(chat_id=chat.id, text=t(lang, "flood_note"))
            except TelegramError as exc:  # blocked, flood-limited: the toast/log remain
                log.info("flood note to user %s not sent: %s", user.id, type(exc).__name__)

    return on_dropped


def key_message(settings: Settings) -> Callable[[object], bool]:
    """Own-key mode: an update whose message may carry an API key (``/key …`` or a
    message that looks like a key) — never dropped."""

    def keep(update: object) -> bool:
        if not settings.users_bring_keys or not isinstance(update, Update):
            return False
        message = update.message
        if message is None or not message.text:
            return False
        text = message.text.strip()
        return looks_like_key(text) or text.split(maxsplit=1)[0].split("@")[0] == "/key"

    return keep
