"""Helpers the Bot API methods share: resolving chat_id / message_id, and whether the
bot may send to a chat (started, not blocked, per-chat rate limit)."""

from __future__ import annotations

import math

from bot.sandbox.fake_telegram.errors import JSON, TelegramApiError, bad
from bot.sandbox.fake_telegram.params import as_int_safe
from bot.sandbox.fake_telegram.state import BotState, Chat

EDIT_WINDOW = 48 * 3600.0


def resolve_chat(state: BotState, params: JSON) -> Chat:
    raw = params.get("chat_id")
    if raw is None or raw == "":
        raise bad("chat_id is empty")
    chat_id = as_int_safe(raw)
    if chat_id is None or chat_id not in state.chats:
        raise bad("chat not found")
    return state.chats[chat_id]


def resolve_message_id(params: JSON, name: str = "message_id") -> int:
    mid = params.get(name)
    if mid is None or mid == "":
        raise bad("message identifier is not specified")
    value = as_int_safe(mid)
    if value is None:
        raise bad("message identifier is not specified")
    return value


def check_can_send(state: BotState, chat: Chat) -> None:
    if chat.blocked:
        raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
    if not chat.started:
        raise TelegramApiError(403, "Forbidden: bot can't initiate conversation with a user")
    if state.chat_rate_limit is not None:
        limit, window = state.chat_rate_limit
        now = state.now()
        while chat.send_times and chat.send_times[0] <= now - window:
            chat.send_times.popleft()
        if len(chat.send_times) >= limit:
            retry = max(1, math.ceil(chat.send_times[0] + window - now))
            raise TelegramApiError(
                429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}
            )
