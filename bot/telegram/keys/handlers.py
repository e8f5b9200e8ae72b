"""Own-key mode: link, show (masked) and remove the user's DaisySim API key.

The message carrying the key is deleted first, then the key is registered with
the log redactor, validated upstream (``engine.link_key``) and stored encrypted
by the engine. The key itself is never logged, echoed or kept in bot memory.

Registered only when users bring their keys (:mod:`bot.telegram.routes`); in
operator mode ``/key`` and the key buttons get :func:`operator_key_command`.
"""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.logging_setup import register_secret
from bot.services.api import EngineError, InvalidKey
from bot.telegram.common.callbacks import pattern_of
from bot.telegram.common.handlers import (
    answer,
    cancel_flow_command,
    edit,
    flow_conversation,
    lang_of,
    pressed,
    send,
    show,
    stop_propagation,
    user_id_of,
)
from bot.telegram.common.views import engine_error, notice
from bot.telegram.context import BotContext
from bot.telegram.keys import views
from bot.telegram.keys.callbacks import KeyCb
from bot.telegram.keys.detect import looks_like_key, plausible_key
from bot.telegram.menu.callbacks import MenuCb
from bot.telegram.texts import t

__all__ = [
    "AWAIT_KEY",
    "KEY_ENTRY_PATTERN",
    "KEY_PATTERN",
    "build_key_conversation",
    "key_callback",
    "key_paste",
    "operator_key_command",
]

log = logging.getLogger(__name__)

AWAIT_KEY = 1
# The flow starts from the menu's "API key" and "Link a key"; the other key:*
# buttons (remove, confirm) are stateless.
KEY_ENTRY_PATTERN = pattern_of(MenuCb.pattern(name="key"), KeyCb.pattern(action="set"))
KEY_PATTERN = KeyCb.pattern()


async def _delete_key_message(message: Message, user_id: int) -> bool:
    """Delete the message carrying a key; False if Telegram refused."""
    try:
        await message.delete()
    except (BadRequest, Forbidden) as exc:
        log.warning("could not delete the key message of user %s: %s", user_id, type(exc).__name__)
        return False
    return True


@stop_propagation
async def key_entry(update: Update, context: BotContext) -> int:
    """``/key`` or the menu's "API key": show the status and wait for a key.
    ``/key <key>`` in one message links that key at once (the message is deleted)."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    inline_key = _command_argument(update.message)
    if update.message is not None and inline_key is not None:
        # "/key sk_…" in one message: the key is in the chat now. Delete it at once
        # and link it, exactly as a key sent at the prompt.
        return await _link_sent_key(update, context, inline_key)
    masked = await context.engine.key_info(user_id)
    message = await show(update, context, views.key_status(lang, masked))
    if message is not None and context.user_data is not None:
        context.user_data["key_msg"] = (message.chat_id, message.message_id)
    return AWAIT_KEY


async def operator_key_command(update: Update, context: BotContext) -> None:
    """Operator mode: ``/key``, ``/key <key>`` and the key buttons say no key is
    needed (a key sent along is deleted from the chat all the same)."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    inline_key = _command_argument(update.message)
    if update.message is not None and inline_key is not None:
        register_secret(inline_key)
        if not await _delete_key_message(update.message, user_id):
            await send(update, context, notice(lang, "key_delete_failed"))
    await show(update, context, views.operator_mode(lang))


def _command_argument(message: Message | None) -> str | None:
    """What follows ``/key`` in the same message (``None``: nothing)."""
    if message is None or message.text is None:
        return None
    parts = message.text.split(maxsplit=1)
    if len(parts) < 2 or not parts[1].strip():
        return None
    return parts[1].strip()


async def key_received(update: Update, context: BotContext) -> int:
    message = update.message
    if message is None or message.text is None:
        raise ApplicationHandlerStop(AWAIT_KEY)
    return await _link_sent_key(update, context, message.text.strip())


async def _link_sent_key(update: Update, context: BotContext, candidate: str) -> int:
    """The user's message carries ``candidate`` (at the prompt, or after ``/key``):
    delete the message, then check and link the key. Stops propagation."""
    message = update.message
    assert message is not None
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    register_secret(candidate)  # before anything can log it
    deleted = await _delete_key_message(message, user_id)
    if not deleted:
        await send(update, context, notice(lang, "key_delete_failed"))
    if not plausible_key(candidate):
        await send(update, context, notice(lang, "key_malformed"))
        raise ApplicationHandlerStop(AWAIT_KEY)
    status = await send(update, context, notice(lang, "key_checking"))
    try:
        info = await context.engine.link_key(user_id, candidate)
    except InvalidKey:
        await edit(status, context, notice(lang, "key_invalid"))
        raise ApplicationHandlerStop(AWAIT_KEY) from None
    except EngineError as exc:
        await edit(status, context, engine_error(lang, exc))
        raise ApplicationHandlerStop(AWAIT_KEY) from None
    log.info("user %s linked a DaisySim key", user_id)
    if context.user_data is not None:
        context.user_data.pop("key_msg", None)  # the flow is over: nothing to cancel
    await edit(status, context, views.key_linked(lang, info))
    # Stop here: no later group may see the message that carried the key.
    raise ApplicationHandlerStop(ConversationHandler.END)


async def key_paste(update: Update, context: BotContext) -> None:
    """Any state: a message that is just an API key is deleted at once and the key
    is linked (as at the /key prompt: the user clearly pasted one). Runs after the
    key conversation (which handles its own prompt) and before everything else, so
    the key never reaches a filter or "I didn't get that"."""
    message = update.message
    if message is None or message.text is None:
        return
    candidate = message.text.strip()
    if not looks_like_key(candidate):
        return
    register_secret(candidate)  # before anything can log it
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    deleted = await _delete_key_message(message, user_id)
    status = await send(
        update, context, views.pasted(lang, deleted=deleted, then=notice(lang, "key_checking"))
    )
    try:
        info = await context.engine.link_key(user_id, candidate)
    except InvalidKey:
        screen = views.pasted(lang, deleted=deleted, then=notice(lang, "key_paste_invalid"))
        await edit(status, context, screen)
        raise ApplicationHandlerStop from None
    except EngineError as exc:
        screen = views.pasted(lang, deleted=deleted, then=engine_error(lang, exc))
        await edit(status, context, screen)
        raise ApplicationHandlerStop from None
    log.info("user %s linked a DaisySim key (pasted outside the /key prompt)", user_id)
    await edit(status, context, views.pasted(lang, deleted=deleted,
                                             then=views.key_linked(lang, info)))
    raise ApplicationHandlerStop


async def key_timeout(update: object, context: BotContext) -> None:
    ref = context.user_data.pop("key_msg", None) if context.user_data is not None else None
    if not (isinstance(ref, tuple) and len(ref) == 2):
        return
    lang = lang_of(update, context)
    try:
        await context.bot.edit_message_text(
            chat_id=ref[0], message_id=ref[1], text=t(lang, "key_timeout")
        )
    except TelegramError as exc:
        log.debug("key timeout edit failed: %s", exc)


async def key_callback(update: Update, context: BotContext) -> None:
    """``key:rm`` → confirmation → ``key:rmyes`` / ``key:rmno`` (stateless)."""
    press = await pressed(update, context, KeyCb, on_message=True)
    if press is None:
        return
    query, lang, data = press
    user_id = user_id_of(update)
    await answer(query)
    engine = context.engine
    if data.action == "rm":
        masked = await engine.key_info(user_id)
        if not masked:
            await show(update, context, views.with_home(lang, "key_none"))
        else:
            await show(update, context, views.remove_confirm(lang, masked))
    elif data.action == "rmyes":
        await engine.unlink_key(user_id)
        log.info("user %s removed their DaisySim key", user_id)
        await show(update, context, views.with_home(lang, "key_removed"))
    elif data.action == "rmno":
        await show(update, context, views.with_home(lang, "key_kept"))


def build_key_conversation(timeout_seconds: float) -> ConversationHandler[BotContext]:
    return flow_conversation(
        "key",
        entry_points=[
            CommandHandler("key", key_entry),
            CallbackQueryHandler(key_entry, pattern=KEY_ENTRY_PATTERN),
        ],
        states={AWAIT_KEY: [MessageHandler(filters.TEXT & ~filters.COMMAND, key_received)]},
        on_cancel=cancel_flow_command,
        on_timeout=key_timeout,
        timeout_seconds=timeout_seconds,
    )
