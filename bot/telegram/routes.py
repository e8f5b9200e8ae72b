"""Handler registration: groups, order and patterns in one place.

Every CallbackQueryHandler pattern comes from the callback types' own grammars
(``Type.pattern()``), the same objects the handlers parse with.

Groups (lower runs first; each group handles an update at most once):

* -20  the pre-checkout query of a top-up (it has no chat: before the gate).
* -10  access gate: private chats, allowlist, ``ensure_user``; stops the rest.
* -5   a successful payment (credited before any conversation sees the message).
* 0    the key conversation (``/key``; waits for the key message) — or, when the
       operator pays, ``/key`` saying no key is needed.
* 1    own-key mode: a message that is just an API key, in any other state, is
       deleted and linked (never reaches a filter or a catch-all).
* 2    the buy conversation (``/buy``, ``menu:buy``, ``buy:*``; text filters).
* 3    stateless commands and buttons; catch-alls for stale data, unknown commands
       and unknown text.

Both conversations leave silently (END) on any other command or button so the
update reaches group 3; ``/cancel`` inside a flow stops propagation.
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    PreCheckoutQueryHandler,
    TypeHandler,
    filters,
)

from bot.telegram.access import gate
from bot.telegram.admin.ban import ban_command, unban_command
from bot.telegram.admin.broadcast import broadcast_callback, broadcast_command
from bot.telegram.admin.callbacks import BroadcastCb
from bot.telegram.admin.handlers import adjust_command, admin_command
from bot.telegram.admin.pricing import price_command, prices_command
from bot.telegram.buy.callbacks import BUY_TYPES
from bot.telegram.buy.handlers import build_buy_conversation
from bot.telegram.common.callbacks import CallbackData
from bot.telegram.common.handlers import stop_propagation
from bot.telegram.context import BotContext, DaisyApp
from bot.telegram.errors import on_error
from bot.telegram.history.callbacks import HistCb
from bot.telegram.history.handlers import HISTORY_PATTERN, history_callback, history_command
from bot.telegram.keys.callbacks import KeyCb
from bot.telegram.keys.handlers import (
    KEY_ENTRY_PATTERN,
    KEY_PATTERN,
    build_key_conversation,
    key_callback,
    key_paste,
    operator_key_command,
)
from bot.telegram.menu.callbacks import LangCb, MenuCb, Noop
from bot.telegram.menu.handlers import (
    cancel_command,
    help_command,
    language_callback,
    language_command,
    menu_callback,
    noop_callback,
    stale_callback,
    start_command,
    unknown_command,
    unknown_message,
)
from bot.telegram.orders.callbacks import OrderCb
from bot.telegram.orders.handlers import ORDER_PATTERN, active_command, order_callback
from bot.telegram.topup.callbacks import TOPUP_TYPES, TopListCb, TopPackCb
from bot.telegram.topup.handlers import (
    ignore_update,
    pre_checkout,
    refund_command,
    successful_payment,
    topup_list_callback,
    topup_pack_callback,
)
from bot.telegram.wallet.handlers import wallet_command

__all__ = ["BUY_GROUP", "CALLBACK_TYPES", "GATE_GROUP", "KEY_GROUP", "MAIN_GROUP", "register"]

PRE_CHECKOUT_GROUP = -20  # before the gate: a pre_checkout_query has no chat
GATE_GROUP = -10
PAYMENT_GROUP = -5  # after the gate, before the conversations
KEY_GROUP = 0
KEY_PASTE_GROUP = 1
BUY_GROUP = 2
MAIN_GROUP = 3

Handler = BaseHandler[Update, BotContext, Any]


def register(application: DaisyApp, *, users_bring_keys: bool) -> None:
    """Add every handler and the error handler. ``users_bring_keys`` (decided once,
    by the composition root, from the engine): the key feature's handlers."""
    settings = application.bot_data.settings
    timeout = settings.conversation_timeout_seconds if settings is not None else 600.0
    private = filters.ChatType.PRIVATE
    not_edited = ~filters.UpdateType.EDITED

    application.add_handler(PreCheckoutQueryHandler(pre_checkout), group=PRE_CHECKOUT_GROUP)
    application.add_handler(TypeHandler(Update, gate), group=GATE_GROUP)
    application.add_handler(
        MessageHandler(filters.SUCCESSFUL_PAYMENT, successful_payment), group=PAYMENT_GROUP
    )
    # Telegram's own "refunded" service message: the bot already told the user.
    application.add_handler(
        MessageHandler(filters.StatusUpdate.REFUNDED_PAYMENT, stop_propagation(ignore_update)),
        group=PAYMENT_GROUP,
    )
    key_main: list[Handler]
    if users_bring_keys:
        application.add_handler(build_key_conversation(timeout), group=KEY_GROUP)
        application.add_handler(
            MessageHandler(private & filters.TEXT & ~filters.COMMAND & not_edited, key_paste),
            group=KEY_PASTE_GROUP,
        )
        key_main = [CallbackQueryHandler(key_callback, pattern=KEY_PATTERN)]
    else:
        # No keys to link: /key (and a key sent with it, deleted) and the key
        # buttons of older messages say so, taking the place of the conversation.
        operator_key = stop_propagation(operator_key_command)
        application.add_handler(CommandHandler("key", operator_key), group=KEY_GROUP)
        application.add_handler(
            CallbackQueryHandler(operator_key, pattern=KEY_ENTRY_PATTERN), group=KEY_GROUP
        )
        key_main = [CallbackQueryHandler(operator_key_command, pattern=KEY_PATTERN)]
    application.add_handler(build_buy_conversation(timeout), group=BUY_GROUP)

    main: list[Handler] = [
        CommandHandler("start", start_command, filters=private),
        CommandHandler("help", help_command, filters=private),
        CommandHandler("active", active_command, filters=private),
        CommandHandler("wallet", wallet_command, filters=private),
        CommandHandler("history", history_command, filters=private),
        CommandHandler("cancel", cancel_command, filters=private),
        CommandHandler("language", language_command, filters=private),
        CommandHandler("admin", admin_command, filters=private),
        CommandHandler(["credit", "debit"], adjust_command, filters=private),
        CommandHandler("price", price_command, filters=private),  # h-ops
        CommandHandler("prices", prices_command, filters=private),  # h-ops
        # --- h-admin: broadcasts and bans (issue 13) ---
        CommandHandler("broadcast", broadcast_command, filters=private & not_edited),
        CommandHandler("ban", ban_command, filters=private & not_edited),
        CommandHandler("unban", unban_command, filters=private & not_edited),
        CallbackQueryHandler(broadcast_callback, pattern=BroadcastCb.pattern()),
        CommandHandler("refund", refund_command, filters=private),
        CallbackQueryHandler(topup_list_callback, pattern=TopListCb.pattern()),
        CallbackQueryHandler(topup_pack_callback, pattern=TopPackCb.pattern()),
        CallbackQueryHandler(menu_callback, pattern=MenuCb.pattern()),
        CallbackQueryHandler(language_callback, pattern=LangCb.pattern()),
        CallbackQueryHandler(order_callback, pattern=ORDER_PATTERN),
        CallbackQueryHandler(history_callback, pattern=HISTORY_PATTERN),
        *key_main,
        CallbackQueryHandler(noop_callback, pattern=Noop.pattern()),
        CallbackQueryHandler(stale_callback),
        MessageHandler(private & filters.COMMAND & not_edited, unknown_command),
        MessageHandler(private & not_edited, unknown_message),
    ]
    for handler in main:
        application.add_handler(handler, group=MAIN_GROUP)
    application.add_error_handler(on_error)


# Every callback type the bot builds and routes (tests round-trip each one).
CALLBACK_TYPES: tuple[type[CallbackData], ...] = (
    MenuCb, LangCb, Noop, *BUY_TYPES, OrderCb, HistCb, KeyCb, *TOPUP_TYPES, BroadcastCb
)
