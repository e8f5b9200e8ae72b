"""getMe, logOut, close, answerCallbackQuery (once per query, within its lifetime),
sendChatAction and getChat."""

from __future__ import annotations

from bot.sandbox.fake_telegram.errors import JSON, QUERY_TOO_OLD, TelegramApiError, bad
from bot.sandbox.fake_telegram.methods.common import resolve_chat
from bot.sandbox.fake_telegram.params import as_bool, as_int
from bot.sandbox.fake_telegram.snapshots import CallbackAnswer
from bot.sandbox.fake_telegram.state import BotState

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


def get_me(state: BotState, p: JSON) -> JSON:
    return {
        **state.bot_user,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def log_out(state: BotState, p: JSON) -> bool:
    return True


def close(state: BotState, p: JSON) -> bool:
    return True


def answer_callback_query(state: BotState, p: JSON) -> bool:
    qid = p.get("callback_query_id")
    q = state.queries.get(str(qid)) if qid not in (None, "") else None
    if q is None or q.answer is not None:
        raise bad(QUERY_TOO_OLD)
    if state.callback_query_ttl is not None and state.now() - q.created > state.callback_query_ttl:
        raise bad(QUERY_TOO_OLD)
    text = p.get("text")
    if text is not None and not isinstance(text, str):
        text = str(text)
    if text is not None and len(text) > 200:
        raise bad("MESSAGE_TOO_LONG")
    url = p.get("url") or None
    if url is not None:
        raise bad("URL_INVALID")
    cache_time = as_int(p, "cache_time", 0) or 0
    q.answer = CallbackAnswer(
        query_id=q.id,
        text=text or None,
        show_alert=as_bool(p, "show_alert"),
        url=None,
        cache_time=cache_time,
    )
    state.emit(
        q.chat_id,
        "callback_answer",
        q.message_id,
        {"query_id": q.id, "text": q.answer.text, "show_alert": q.answer.show_alert},
    )
    return True


def send_chat_action(state: BotState, p: JSON) -> bool:
    chat = resolve_chat(state, p)
    action = p.get("action")
    if not action:
        raise bad("action is empty")
    if action not in _CHAT_ACTIONS:
        raise bad("wrong parameter action in request")
    if chat.blocked:
        raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
    state.emit(chat.user.id, "chat_action", None, {"action": action})
    return True


def get_chat(state: BotState, p: JSON) -> JSON:
    chat = resolve_chat(state, p)
    return {
        **chat.user.to_chat_json(),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": True,
            "limited_gifts": True,
            "unique_gifts": True,
            "premium_subscription": True,
            "gifts_from_channels": True,
        },
    }
