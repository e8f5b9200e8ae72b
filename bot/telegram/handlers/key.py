"""Own-key mode: link, show (masked) and remove the user's DaisySim API key.

The message carrying the key is deleted first, then the key is registered with
the log redactor, validated upstream (``engine.link_key``) and stored encrypted
by the engine. The key itself is never logged, echoed or kept in bot memory.
"""

from __future__ import annotations

import logging
import re

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
from bot.telegram import callbacks as cb
from bot.telegram import keyboards as kb
from bot.telegram import views
from bot.telegram.context import BotContext
from bot.telegram.handlers.common import (
    answer,
    cancel_flows,
    edit,
    flow_conversation,
    lang_of,
    own_key,
    pressed,
    send,
    show,
    stop_propagation,
    user_id_of,
)
from bot.telegram.texts import Raw, t
from bot.telegram.views import Screen

__all__ = ["AWAIT_KEY", "build_key_conversation", "key_callback", "key_paste", "looks_like_key"]

log = logging.getLogger(__name__)

AWAIT_KEY = 1
_PLAUSIBLE_KEY = re.compile(r"[\x21-\x7e]{8,256}")
# A message that is nothing but a DaisySim-looking key (see looks_like_key).
_PREFIXED_KEY = re.compile(r"(?:sk|demo)_[A-Za-z0-9_-]{8,250}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,256}")


def looks_like_key(text: str) -> bool:
    """Conservative: the whole message is one token that is either ``sk_…`` /
    ``demo_…`` (≥ 11 characters) or ≥ 20 characters of ``[A-Za-z0-9_-]`` mixing
    letters and digits (random tokens do; words and service names don't)."""
    candidate = text.strip()
    if _PREFIXED_KEY.fullmatch(candidate):
        return True
    return (
        _TOKEN.fullmatch(candidate) is not None
        and any(ch.isdigit() for ch in candidate)
        and any(ch.isalpha() for ch in candidate)
    )


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
        if not own_key(context):
            register_secret(inline_key)
            if not await _delete_key_message(update.message, user_id):
                await send(update, context, Screen(t(lang, "key_delete_failed")))
            await show(update, context, Screen(t(lang, "key_operator_mode"),
                                               kb.back_home_kb(lang)))
            return ConversationHandler.END
        return await _link_sent_key(update, context, inline_key)
    if not own_key(context):
        await show(update, context, Screen(t(lang, "key_operator_mode"), kb.back_home_kb(lang)))
        return ConversationHandler.END
    masked = await context.engine.key_info(user_id)
    if masked:
        text = Raw(t(lang, "key_current", masked=masked) + "\n\n" + t(lang, "key_prompt_replace"))
    else:
        text = t(lang, "key_prompt")
    message = await show(update, context, Screen(text, kb.key_kb(lang, linked=bool(masked))))
    if message is not None and context.user_data is not None:
        context.user_data["key_msg"] = (message.chat_id, message.message_id)
    return AWAIT_KEY


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
        await send(update, context, Screen(t(lang, "key_delete_failed")))
    if not _PLAUSIBLE_KEY.fullmatch(candidate):
        await send(update, context, Screen(t(lang, "key_malformed")))
        raise ApplicationHandlerStop(AWAIT_KEY)
    status = await send(update, context, Screen(t(lang, "key_checking")))
    try:
        info = await context.engine.link_key(user_id, candidate)
    except InvalidKey:
        await edit(status, context, Screen(t(lang, "key_invalid")))
        raise ApplicationHandlerStop(AWAIT_KEY) from None
    except EngineError as exc:
        await edit(status, context, views.engine_error(lang, exc, own_key=True))
        raise ApplicationHandlerStop(AWAIT_KEY) from None
    log.info("user %s linked a DaisySim key", user_id)
    if context.user_data is not None:
        context.user_data.pop("key_msg", None)  # the flow is over: nothing to cancel
    await edit(
        status,
        context,
        Screen(
            t(lang, "key_linked", masked=info.masked, balance=info.balance, email=info.email),
            kb.key_kb(lang, linked=True),
        ),
    )
    # Stop here: no later group may see the message that carried the key.
    raise ApplicationHandlerStop(ConversationHandler.END)


async def key_paste(update: Update, context: BotContext) -> None:
    """Own-key mode, any state: a message that is just an API key is deleted at once
    and the key is linked (as at the /key prompt: the user clearly pasted one).
    Runs after the key conversation (which handles its own prompt) and before
    everything else, so the key never reaches a filter or "I didn't get that"."""
    message = update.message
    if message is None or message.text is None or not own_key(context):
        return
    candidate = message.text.strip()
    if not looks_like_key(candidate):
        return
    register_secret(candidate)  # before anything can log it
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    deleted = await _delete_key_message(message, user_id)
    intro = t(lang, "key_paste_deleted") if deleted else Raw(
        t(lang, "key_paste_intro") + "\n" + t(lang, "key_delete_failed")
    )

    def with_intro(text: str) -> Raw:
        return Raw(intro + "\n\n" + text)

    status = await send(update, context, Screen(with_intro(t(lang, "key_checking"))))
    try:
        info = await context.engine.link_key(user_id, candidate)
    except InvalidKey:
        await edit(status, context, Screen(with_intro(t(lang, "key_paste_invalid"))))
        raise ApplicationHandlerStop from None
    except EngineError as exc:
        screen = views.engine_error(lang, exc, own_key=True)
        await edit(status, context, Screen(with_intro(screen.text), screen.markup))
        raise ApplicationHandlerStop from None
    log.info("user %s linked a DaisySim key (pasted outside the /key prompt)", user_id)
    linked = t(lang, "key_linked", masked=info.masked, balance=info.balance, email=info.email)
    await edit(status, context, Screen(with_intro(linked), kb.key_kb(lang, linked=True)))
    raise ApplicationHandlerStop


async def key_cancel(update: Update, context: BotContext) -> int:
    lang = lang_of(update, context)
    if update.effective_chat is not None:
        await cancel_flows(context, lang, update.effective_chat.id)
    if update.message is not None:
        await update.message.reply_text(t(lang, "cancelled"))
    raise ApplicationHandlerStop(ConversationHandler.END)


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
    press = await pressed(update, context, cb.KeyCb, on_message=True)
    if press is None:
        return
    query, lang, data = press
    user_id = user_id_of(update)
    await answer(query)
    if not own_key(context):
        await show(update, context, Screen(t(lang, "key_operator_mode"), kb.back_home_kb(lang)))
        return
    engine = context.engine
    if data.action == "rm":
        masked = await engine.key_info(user_id)
        if not masked:
            await show(update, context, Screen(t(lang, "key_none"), kb.back_home_kb(lang)))
        else:
            await show(
                update,
                context,
                Screen(t(lang, "key_remove_confirm", masked=masked), kb.key_remove_kb(lang)),
            )
    elif data.action == "rmyes":
        await engine.unlink_key(user_id)
        log.info("user %s removed their DaisySim key", user_id)
        await show(update, context, Screen(t(lang, "key_removed"), kb.back_home_kb(lang)))
    elif data.action == "rmno":
        await show(update, context, Screen(t(lang, "key_kept"), kb.back_home_kb(lang)))


KEY_ENTRY_PATTERN = r"^(menu:key|key:set)$"


def build_key_conversation(timeout_seconds: float) -> ConversationHandler[BotContext]:
    return flow_conversation(
        "key",
        entry_points=[
            CommandHandler("key", key_entry),
            CallbackQueryHandler(key_entry, pattern=KEY_ENTRY_PATTERN),
        ],
        states={AWAIT_KEY: [MessageHandler(filters.TEXT & ~filters.COMMAND, key_received)]},
        on_cancel=key_cancel,
        on_timeout=key_timeout,
        timeout_seconds=timeout_seconds,
    )
