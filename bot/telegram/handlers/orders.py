"""Active numbers and the order message's buttons (open, refresh, cancel)."""

from __future__ import annotations

import logging

from telegram import Message, Update

from bot.services.api import EngineError
from bot.telegram import callbacks as cb
from bot.telegram import views
from bot.telegram.context import BotContext
from bot.telegram.handlers.buy import make_live
from bot.telegram.handlers.common import (
    answer,
    edit,
    lang_of,
    own_key,
    pressed,
    send,
    show,
    user_id_of,
)
from bot.telegram.texts import fmt_lock, fmt_wait, plain, seconds_until

__all__ = ["active_command", "order_callback"]

log = logging.getLogger(__name__)


async def active_command(update: Update, context: BotContext) -> None:
    """``/active`` and the menu's "Active numbers" (edited in place)."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    try:
        items = await context.engine.active(user_id)
    except EngineError as exc:
        await show(update, context, views.engine_error(lang, exc, own_key=own_key(context)))
        return
    await show(update, context, views.active_list(lang, items, context.clock.now()))


async def order_callback(update: Update, context: BotContext) -> None:
    """``act:open|ref|cancel:<id>`` — ownership is checked by the engine."""
    press = await pressed(update, context, cb.ActCb, on_message=True)
    if press is None:
        return
    query, lang, data = press
    message = query.message
    assert isinstance(message, Message)  # on_message=True
    user_id = user_id_of(update)
    engine = context.engine
    clock = context.clock

    if data.action == "cancel":
        try:
            result = await engine.cancel(user_id, data.activation_id)
        except EngineError as exc:
            await answer(query, views.error_alert(lang, exc), alert=True)
            return
        activation = result.activation
        if result.outcome == "too_early":
            now = clock.now()
            opens = activation.cancel_after
            if result.seconds_left is not None and result.seconds_left > seconds_until(opens, now):
                opens = now + result.seconds_left  # DaisySim said later than we knew
            at, _, _ = fmt_wait(opens, now)
            await answer(query, plain(
                    lang,
                    "cb_too_early",
                    at=at,
                    seconds=seconds_until(opens, now),
                    lock=fmt_lock(context.settings.cancel_lock_seconds),
                ), alert=True)
        elif result.outcome == "refunded":
            amount = result.refund if result.refund is not None else activation.price
            await answer(query, plain(lang, "cb_refunded", amount=amount))
        elif result.outcome == "code_received":
            await answer(query, plain(lang, "cb_code_received"), alert=True)
        elif result.outcome == "already_final":
            await answer(query, plain(lang, "cb_already_final"))
        else:
            await answer(query, plain(lang, "cb_cancel_pending"))
        await edit(message, context, views.order(lang, activation, clock.now()))
        return

    try:
        activation = await engine.get_activation(user_id, data.activation_id)
    except EngineError as exc:
        await answer(query, views.error_alert(lang, exc), alert=True)
        return
    if data.action == "ref":
        await answer(query, plain(lang, "cb_updated"))
        await edit(message, context, views.order(lang, activation, clock.now()))
        return
    await answer(query)
    screen = views.order(lang, activation, clock.now())
    if activation.message_id == message.message_id and activation.chat_id in (
        None,
        message.chat_id,
    ):
        # Pressed on the order's own (live) message: refresh it in place.
        await edit(message, context, screen)
        return
    # open: the order comes to the bottom of the chat as the new live message; the
    # previous one says so (make_live), so every later event edits the new one.
    new = await send(update, context, screen)
    if not activation.state.is_final:
        await make_live(context, new, activation, lang)
