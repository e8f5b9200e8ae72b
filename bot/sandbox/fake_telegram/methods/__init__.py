"""The Bot API methods the fake implements, by concern, and the table that routes a
request to one of them (method names are case-insensitive, like Telegram's).

Each method is a function ``(state, params) -> result`` (or a coroutine); a
:class:`~bot.sandbox.fake_telegram.errors.TelegramApiError` is the error reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bot.sandbox.fake_telegram.errors import JSON
from bot.sandbox.fake_telegram.methods import bot_settings, chat, messages, payments, updates
from bot.sandbox.fake_telegram.state import BotState

Method = Callable[[BotState, JSON], Any]

METHODS: dict[str, Method] = {
    "getMe": chat.get_me,
    "logOut": chat.log_out,
    "close": chat.close,
    "getUpdates": updates.get_updates,
    "setWebhook": updates.set_webhook,
    "deleteWebhook": updates.delete_webhook,
    "getWebhookInfo": updates.get_webhook_info,
    "sendMessage": messages.send_message,
    "editMessageText": messages.edit_message_text,
    "editMessageReplyMarkup": messages.edit_message_reply_markup,
    "deleteMessage": messages.delete_message,
    "deleteMessages": messages.delete_messages,
    "answerCallbackQuery": chat.answer_callback_query,
    "sendChatAction": chat.send_chat_action,
    "getChat": chat.get_chat,
    "setMyCommands": bot_settings.set_my_commands,
    "getMyCommands": bot_settings.get_my_commands,
    "deleteMyCommands": bot_settings.delete_my_commands,
    "setMyDescription": bot_settings.set_my_description,
    "getMyDescription": bot_settings.get_my_description,
    "setMyShortDescription": bot_settings.set_my_short_description,
    "getMyShortDescription": bot_settings.get_my_short_description,
    "setMyName": bot_settings.set_my_name,
    "getMyName": bot_settings.get_my_name,
    "setChatMenuButton": bot_settings.set_chat_menu_button,
    "getChatMenuButton": bot_settings.get_chat_menu_button,
    "sendInvoice": payments.send_invoice,
    "createInvoiceLink": payments.create_invoice_link,
    "answerPreCheckoutQuery": payments.answer_pre_checkout_query,
    "refundStarPayment": payments.refund_star_payment,
    "getStarTransactions": payments.get_star_transactions,
}

_BY_LOWER = {name.lower(): name for name in METHODS}

# sendMessage -> _m_send_message: the facade's per-method hooks (see fake.py)
HOOK_NAMES = {name: "_m_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in METHODS}


def canonical_name(method: str) -> str:
    """``sendmessage`` -> ``sendMessage``; an unknown name is returned as given."""
    return _BY_LOWER.get(method.lower(), method)


def find_method(method: str) -> Method | None:
    name = _BY_LOWER.get(method.lower())
    return None if name is None else METHODS[name]
