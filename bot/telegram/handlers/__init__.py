"""Handler registration: groups, order and patterns in one place.

Groups (lower runs first; each group handles an update at most once):

* -10  access gate: private chats, allowlist, ``ensure_user``; stops the rest.
* 0    the key conversation (``/key``; waits for the key message).
* 1    own-key mode: a message that is just an API key, in any other state, is
       deleted and linked (never reaches a filter or a catch-all).
* 2    the buy conversation (``/buy``, ``menu:buy``, ``buy:*``; text filters).
* 3    stateless commands and buttons; catch-alls for stale data, unknown commands
       and unknown text.

Both conversations leave silently (END) on any other command or button so the
update reaches group 2; ``/cancel`` inside a flow stops propagation.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler, TypeHandler, filters

from bot.telegram.context import DaisyApp
from bot.telegram.handlers.admin import adjust_command, admin_command
from bot.telegram.handlers.buy import build_buy_conversation
from bot.telegram.handlers.errors import on_error
from bot.telegram.handlers.key import build_key_conversation, key_callback, key_paste
from bot.telegram.handlers.menu import (
    cancel_command,
    help_command,
    menu_callback,
    noop_callback,
    stale_callback,
    start_command,
    unknown_command,
    unknown_message,
)
from bot.telegram.handlers.orders import active_command, order_callback
from bot.telegram.handlers.wallet import history_callback, history_command, wallet_command

__all__ = ["GATE_GROUP", "MAIN_GROUP", "register_handlers"]

GATE_GROUP = -10
KEY_GROUP = 0
KEY_PASTE_GROUP = 1
BUY_GROUP = 2
MAIN_GROUP = 3


def register_handlers(application: DaisyApp) -> None:
    from bot.telegram.handlers.common import gate

    settings = application.bot_data.settings
    timeout = settings.conversation_timeout_seconds if settings is not None else 600.0
    private = filters.ChatType.PRIVATE

    application.add_handler(TypeHandler(Update, gate), group=GATE_GROUP)
    application.add_handler(build_key_conversation(timeout), group=KEY_GROUP)
    application.add_handler(
        MessageHandler(private & filters.TEXT & ~filters.COMMAND & ~filters.UpdateType.EDITED,
                       key_paste),
        group=KEY_PASTE_GROUP,
    )
    application.add_handler(build_buy_conversation(timeout), group=BUY_GROUP)

    main = [
        CommandHandler("start", start_command, filters=private),
        CommandHandler("help", help_command, filters=private),
        CommandHandler("active", active_command, filters=private),
        CommandHandler("wallet", wallet_command, filters=private),
        CommandHandler("history", history_command, filters=private),
        CommandHandler("cancel", cancel_command, filters=private),
        CommandHandler("admin", admin_command, filters=private),
        CommandHandler(["credit", "debit"], adjust_command, filters=private),
        CallbackQueryHandler(menu_callback, pattern=r"^menu:"),
        CallbackQueryHandler(order_callback, pattern=r"^act:"),
        CallbackQueryHandler(history_callback, pattern=r"^hist:"),
        CallbackQueryHandler(key_callback, pattern=r"^key:"),
        CallbackQueryHandler(noop_callback, pattern=r"^noop$"),
        CallbackQueryHandler(stale_callback),
        MessageHandler(private & filters.COMMAND & ~filters.UpdateType.EDITED, unknown_command),
        MessageHandler(private & ~filters.UpdateType.EDITED, unknown_message),
    ]
    for handler in main:
        application.add_handler(handler, group=MAIN_GROUP)
    application.add_error_handler(on_error)
