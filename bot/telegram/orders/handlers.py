"""Active numbers and the order message's buttons (open, refresh, cancel), and the
one live message per order that later events edit."""

from __future__ import annotations

import logging
from dataclasses import replace

from telegram import Message, Update
from telegram.error import BadRequest, Forbidden

from bot.services.api import Activation, EngineError
from bot.telegram.common.handlers import answer, edit, lang_of, pressed, send, show, user_id_of
from bot.telegram.common.views import engine_error, error_alert
from bot.telegram.context import BotContext
from bot.telegram.orders import views
from bot.telegram.orders.callbacks import OrderCb
from bot.telegram.texts import plain

__all__ = ["ORDER_PATTERN", "active_command", "make_live", "order_callback", "show_order_in"]

log = logging.getLogger(__name__)

ORDER_PATTERN = OrderCb.pattern()


async def active_command(update: Update, context: BotContext) -> None:
    """``/active`` and the menu's "Active numbers" (edited in place)."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
    try:
        items = await context.engine.active(user_id)
    except EngineError as exc:
        await show(update, context, engine_error(lang, exc))
        return
    await show(update, context, views.active_list(lang, items, context.clock.now()))


async def order_callback(update: Update, context: BotContext) -> None:
    """``order:open|ref|cancel:<id>`` (and the older ``act:…``) — ownership is
    checked by the engine on every press."""
    press = await pressed(update, context, OrderCb, on_message=True)
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
            await answer(query, error_alert(lang, exc), alert=True)
            return
        text, alert = views.cancel_toast(
            lang, result, clock.now(), cancel_lock_seconds=context.settings.cancel_lock_seconds
        )
        await answer(query, text, alert=alert)
        await edit(message, context, views.order(lang, result.activation, clock.now()))
        return

    try:
        activation = await engine.get_activation(user_id, data.activation_id)
    except EngineError as exc:
        await answer(query, error_alert(lang, exc), alert=True)
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


async def show_order_in(
    context: BotContext, message: Message, activation: Activation, lang: str
) -> None:
    """Turn ``message`` into the live order message of ``activation``."""
    await edit(message, context, views.order(lang, activation, context.clock.now()))
    await make_live(context, message, activation, lang)


async def make_live(
    context: BotContext, message: Message, activation: Activation, lang: str
) -> None:
    """``message`` (already showing the order) becomes the one later events edit.
    The order's previous message, if any, says the order continues below and loses
    its buttons, so no stale "waiting…" message stays behind."""
    engine = context.engine
    old_chat = activation.chat_id if activation.chat_id is not None else message.chat_id
    old_id = activation.message_id
    await engine.set_message(
        activation.user_id, activation.id, message.chat_id, message.message_id
    )
    if old_id is not None and (old_chat, old_id) != (message.chat_id, message.message_id):
        moved = views.order_moved(lang)
        try:
            await context.bot.edit_message_text(
                chat_id=old_chat, message_id=old_id, text=moved.text, reply_markup=None
            )
        except (BadRequest, Forbidden) as exc:  # deleted or too old: nothing to do
            log.debug("previous order message %s not updated: %s", old_id, exc)
    # An event may have fired between the render and set_message: re-render.
    fresh = await engine.get_activation(activation.user_id, activation.id)
    if replace(fresh, chat_id=activation.chat_id, message_id=activation.message_id) != activation:
        await edit(message, context, views.order(lang, fresh, context.clock.now()))


