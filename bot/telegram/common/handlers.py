"""What every handler uses: language, answering a press, edit-in-place, the user id,
the admin check, and the two flows' shared plumbing (leave, /cancel, timeout)."""

from __future__ import annotations

import functools
import logging
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from telegram import CallbackQuery, Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.config import Settings
from bot.telegram.common.callbacks import CallbackData, CallbackError, parse_any
from bot.telegram.common.views import Screen
from bot.telegram.context import BotContext, BotData
from bot.telegram.texts import pick_lang, plain, t

__all__ = [
    "answer",
    "answered",
    "cancel_flow_command",
    "cancel_flows",
    "edit",
    "flow_conversation",
    "forget_quotes",
    "is_admin",
    "is_not_modified",
    "lang_of",
    "leave",
    "may_use",
    "pressed",
    "send",
    "show",
    "stop_propagation",
    "user_id_of",
    "user_lang",
    "users_bring_keys",
]

log = logging.getLogger(__name__)

_ANSWERED_MAX = 2048
# Per bot *instance* (keyed by identity: bots compare equal by token), dropped when
# the bot is garbage-collected.
_answered: dict[int, OrderedDict[str, None]] = {}


def _answered_ids(query: CallbackQuery) -> OrderedDict[str, None]:
    bot = query.get_bot()
    key = id(bot)
    ids = _answered.get(key)
    if ids is None:
        ids = _answered[key] = OrderedDict()
        weakref.finalize(bot, _answered.pop, key, None)
    return ids


P = ParamSpec("P")
T = TypeVar("T")


def stop_propagation(
    func: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """For conversation callbacks: once the flow handled an update, no later handler
    group sees it (the callback's return value still becomes the new state)."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        result = await func(*args, **kwargs)
        raise ApplicationHandlerStop(result)

    return wrapper


def is_not_modified(exc: BaseException) -> bool:
    return isinstance(exc, BadRequest) and "message is not modified" in str(exc).lower()


def lang_of(update: object, context: BotContext) -> str:
    """The user's language: the one stored for them (read from the DB by the access
    gate, their /language choice included), else Telegram's language_code, else
    ``DEFAULT_LOCALE``."""
    default = context.settings.default_locale
    if isinstance(update, Update) and update.effective_user is not None:
        user = update.effective_user
        stored = context.bot_data.langs.get(user.id)
        return stored or pick_lang(user.language_code, default)
    return pick_lang(None, default)


async def user_lang(data: BotData, user_id: int, default: str) -> str:
    """The language of ``user_id`` for a push: the one in memory, else the DB's."""
    lang = data.langs.get(user_id)
    if lang is None:
        lang = pick_lang(await data.engine.user_locale(user_id), default)
        data.langs[user_id] = lang
    return lang


def user_id_of(update: Update) -> int:
    user = update.effective_user
    if user is None:  # the gate drops these updates
        raise ApplicationHandlerStop
    return user.id


def users_bring_keys(context: BotContext) -> bool:
    """Own-key funding: each user links their DaisySim key (the engine decides)."""
    return context.engine.users_bring_keys


def is_admin(update: Update, context: BotContext) -> bool:
    """The one admin check: the user is in ``ADMIN_IDS``."""
    user = update.effective_user
    return user is not None and user.id in context.settings.admin_ids


def may_use(user_id: int, settings: Settings) -> bool:
    """The allowlist: without ``ALLOWED_USER_IDS`` everyone; admins always."""
    allowed = settings.allowed_user_ids
    return not allowed or user_id in allowed or user_id in settings.admin_ids


async def answer(query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
    """Answer a callback query exactly once (Telegram rejects a second answer)."""
    ids = _answered_ids(query)
    if query.id in ids:
        return
    ids[query.id] = None
    while len(ids) > _ANSWERED_MAX:
        ids.popitem(last=False)
    try:
        await query.answer(text=text[:200] if text else None, show_alert=alert)
    except BadRequest as exc:  # too old / already answered: nothing to do
        log.debug("answerCallbackQuery failed: %s", exc)


def answered(query: CallbackQuery) -> bool:
    return query.id in _answered_ids(query)


async def send(update: Update, context: BotContext, screen: Screen) -> Message:
    """Send ``screen`` as a new message in the update's chat."""
    chat = update.effective_chat
    if chat is None:  # pragma: no cover - gate guarantees a private chat
        raise ApplicationHandlerStop
    return await context.bot.send_message(
        chat_id=chat.id, text=screen.text, reply_markup=screen.markup
    )


async def edit(message: Message, context: BotContext, screen: Screen) -> None:
    """Edit ``message`` into ``screen`` ("message is not modified" is success)."""
    try:
        await context.bot.edit_message_text(
            chat_id=message.chat_id,
            message_id=message.message_id,
            text=screen.text,
            reply_markup=screen.markup,
        )
    except BadRequest as exc:
        if not is_not_modified(exc):
            raise


async def show(update: Update, context: BotContext, screen: Screen) -> Message | None:
    """Edit the pressed message (callback) or send a new message (command)."""
    query = update.callback_query
    if query is not None and isinstance(query.message, Message):
        await edit(query.message, context, screen)
        return query.message
    return await send(update, context, screen)


async def forget_quotes(context: BotContext, chat_id: int) -> None:
    """No confirmation screen shown in this (private) chat can buy any more: the
    engine ends the user's unused quotes, so a later Confirm press on one of them
    shows the current price instead of buying. (Private chats only: the chat id is
    the user id.)"""
    await context.engine.withdraw_quotes(chat_id)


# user_data keys of the messages the two flows (buy, key) are showing.
FLOW_MESSAGE_KEYS = ("buy_msg", "key_msg")


async def cancel_flows(context: BotContext, lang: str, chat_id: int) -> None:
    """``/cancel``: the flows' messages say "Cancelled" and lose their buttons, and
    no confirmation screen of this chat can buy any more."""
    await forget_quotes(context, chat_id)
    user_data = context.user_data
    if user_data is None:
        return
    for name in FLOW_MESSAGE_KEYS:
        ref = user_data.pop(name, None)
        if not (isinstance(ref, tuple) and len(ref) == 2):
            continue
        try:
            await context.bot.edit_message_text(
                chat_id=ref[0], message_id=ref[1], text=t(lang, "flow_cancelled")
            )
        except TelegramError as exc:  # deleted, too old, blocked: nothing to clean up
            log.debug("could not mark flow message %s as cancelled: %s", ref[1], exc)


async def cancel_flow_command(update: Update, context: BotContext) -> int:
    """``/cancel`` inside a flow (buy, key): the flows' messages say "Cancelled"
    without buttons, no confirmation screen of this chat can buy any more, and the
    conversation ends."""
    lang = lang_of(update, context)
    if update.effective_chat is not None:
        await cancel_flows(context, lang, update.effective_chat.id)
    if update.message is not None:
        await update.message.reply_text(t(lang, "cancelled"))
    raise ApplicationHandlerStop(ConversationHandler.END)


CbT = TypeVar("CbT", bound=CallbackData)


async def pressed(
    update: Update, context: BotContext, *kinds: type[CbT], on_message: bool = False
) -> tuple[CallbackQuery, str, CbT] | None:
    """The button press of ``update`` parsed as one of ``kinds`` — or None after
    answering a stale/forged/foreign press politely. ``on_message``: the press
    must come from a message the bot can still edit."""
    query = update.callback_query
    if query is None:
        return None
    lang = lang_of(update, context)
    try:
        data = parse_any(query.data, kinds)
    except CallbackError:
        await answer(query, plain(lang, "cb_stale"))
        return None
    if on_message and not isinstance(query.message, Message):
        await answer(query, plain(lang, "cb_stale"))
        return None
    return query, lang, data


async def leave(update: Update, context: BotContext) -> int:
    """Another command or button: leave the flow silently; later groups handle it."""
    return ConversationHandler.END


FlowCallback = Callable[[Update, BotContext], Coroutine[Any, Any, Any]]


def flow_conversation(
    name: str,
    *,
    entry_points: list[BaseHandler[Update, BotContext, Any]],
    states: dict[object, list[BaseHandler[Update, BotContext, Any]]],
    on_cancel: FlowCallback,
    on_timeout: FlowCallback,
    timeout_seconds: float,
) -> ConversationHandler[BotContext]:
    """A stateless-button flow (buy, key): /cancel leaves it with ``on_cancel``, any
    other command or button leaves it silently, an idle flow gets ``on_timeout``."""
    with warnings.catch_warnings():
        # per_message=False with CallbackQueryHandlers is intended: the flow is per
        # user and every button is stateless.
        warnings.simplefilter("ignore", PTBUserWarning)
        return ConversationHandler(
            entry_points=entry_points,
            states={**states, ConversationHandler.TIMEOUT: [TypeHandler(Update, on_timeout)]},
            fallbacks=[
                CommandHandler("cancel", on_cancel),
                MessageHandler(filters.COMMAND, leave),
                CallbackQueryHandler(leave),
            ],
            allow_reentry=True,
            conversation_timeout=timeout_seconds if timeout_seconds > 0 else None,
            name=name,
        )
