"""sendMessage, editMessageText, editMessageReplyMarkup, deleteMessage(s): text and
markup checks, "message is not modified", the 48-hour edit window, replies, link
previews and the reply keyboard."""

from __future__ import annotations

import json

from bot.sandbox.fake_telegram.entities import format_text
from bot.sandbox.fake_telegram.errors import JSON, NOT_MODIFIED, TelegramApiError, bad
from bot.sandbox.fake_telegram.markup import require_bool, validate_reply_markup
from bot.sandbox.fake_telegram.methods.common import (
    EDIT_WINDOW,
    check_can_send,
    resolve_chat,
    resolve_message_id,
)
from bot.sandbox.fake_telegram.methods.payments import check_pay_buttons
from bot.sandbox.fake_telegram.params import as_bool, as_int, as_int_safe, as_json
from bot.sandbox.fake_telegram.state import BotState, Chat, Stored
from bot.sandbox.fake_telegram.urls import check_url


def send_message(state: BotState, p: JSON) -> JSON:
    text, entities = format_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
    markup = validate_reply_markup(as_json(p, "reply_markup"))
    lpo = _link_preview(p)
    chat = resolve_chat(state, p)
    if p.get("message_thread_id") not in (None, "", 0):
        raise bad("message thread not found")
    if p.get("business_connection_id"):
        raise bad("business connection not found")
    reply_to: JSON | None = None
    rp = as_json(p, "reply_parameters")
    reply_mid: int | None = None
    allow_without = as_bool(p, "allow_sending_without_reply")
    if rp is not None:
        if not isinstance(rp, dict):
            raise bad("can't parse reply parameters JSON object")
        if "message_id" not in rp:
            raise bad('can\'t find field "message_id"')
        reply_mid = as_int_safe(rp["message_id"])
        allow_without = bool(rp.get("allow_sending_without_reply", allow_without))
    elif p.get("reply_to_message_id") not in (None, ""):
        reply_mid = as_int(p, "reply_to_message_id")
    if reply_mid is not None:
        target = chat.messages.get(reply_mid)
        if target is None or target.deleted:
            if not allow_without:
                raise bad("message to be replied not found")
        else:
            reply_to = json.loads(json.dumps(target.data))
            reply_to.pop("reply_to_message", None)
    check_can_send(state, chat)
    inline = _reply_markup_effect(state, chat, markup)
    msg: JSON = {
        "message_id": state.new_message_id(chat),
        "from": state.bot_user,
        "chat": chat.user.to_chat_json(),
        "date": int(state.now()),
        "text": text,
    }
    if entities:
        msg["entities"] = entities
    if lpo:
        msg["link_preview_options"] = lpo
    if inline is not None:
        msg["reply_markup"] = inline
    if reply_to is not None:
        msg["reply_to_message"] = reply_to
    if state.chat_rate_limit is not None:
        chat.send_times.append(state.now())
    stored = Stored(data=msg, from_bot=True)
    chat.messages[msg["message_id"]] = stored
    state.emit(
        chat.user.id,
        "message",
        msg["message_id"],
        {"message": state.snapshot(stored).to_json()},
    )
    return json.loads(json.dumps(msg))


def edit_message_text(state: BotState, p: JSON) -> JSON:
    text, entities = format_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
    markup = validate_reply_markup(as_json(p, "reply_markup"), inline_only=True)
    lpo = _link_preview(p)
    chat, stored = _editable(state, p)
    old = stored.data
    if "text" not in old:
        raise bad("there is no text in the message to edit")
    inline = markup[1] if markup and markup[1]["inline_keyboard"] else None
    if (
        old.get("text") == text
        and old.get("entities", []) == entities
        and old.get("reply_markup") == inline
    ):
        raise bad(NOT_MODIFIED)
    new = {
        k: v
        for k, v in old.items()
        if k not in ("text", "entities", "reply_markup", "edit_date", "link_preview_options")
    }
    new["text"] = text
    if entities:
        new["entities"] = entities
    if lpo:
        new["link_preview_options"] = lpo
    if inline is not None:
        new["reply_markup"] = inline
    return _apply_edit(state, chat, stored, new)


def edit_message_reply_markup(state: BotState, p: JSON) -> JSON:
    markup = validate_reply_markup(as_json(p, "reply_markup"), inline_only=True, allow_pay=True)
    chat, stored = _editable(state, p)
    old = stored.data
    inline = check_pay_buttons(None if markup is None else markup[1], invoice="invoice" in old)
    if old.get("reply_markup") == inline:
        raise bad(NOT_MODIFIED)
    new = {k: v for k, v in old.items() if k not in ("reply_markup", "edit_date")}
    if inline is not None:
        new["reply_markup"] = inline
    return _apply_edit(state, chat, stored, new)


def delete_message(state: BotState, p: JSON) -> bool:
    chat = resolve_chat(state, p)
    mid = resolve_message_id(p)
    stored = chat.messages.get(mid)
    if stored is None or stored.deleted:
        raise bad("message to delete not found")
    if state.now() - stored.data["date"] > EDIT_WINDOW:
        raise bad("message can't be deleted for everyone")
    return _delete(state, chat, mid)


def delete_messages(state: BotState, p: JSON) -> bool:
    chat = resolve_chat(state, p)
    ids = as_json(p, "message_ids")
    if not isinstance(ids, list) or not ids:
        raise bad("message identifiers are not specified")
    if len(ids) > 100:
        raise bad("too many message identifiers specified")
    for raw in ids:
        mid = as_int_safe(raw)
        if mid is None:
            raise bad("message identifiers are not specified")
        stored = chat.messages.get(mid)
        if stored is not None and state.now() - stored.data["date"] <= EDIT_WINDOW:
            _delete(state, chat, mid)
    return True


def _reply_markup_effect(
    state: BotState, chat: Chat, markup: tuple[str, JSON] | None
) -> JSON | None:
    """Apply a validated reply_markup; returns the inline markup to store, if any."""
    if markup is None:
        return None
    kind, data = markup
    if kind == "inline":
        return data if data["inline_keyboard"] else None
    if kind == "keyboard":
        chat.reply_keyboard = data
        state.emit(chat.user.id, "reply_keyboard", None, {"keyboard": data})
    elif kind == "remove":
        if chat.reply_keyboard is not None:
            chat.reply_keyboard = None
            state.emit(chat.user.id, "reply_keyboard", None, {"keyboard": None})
    return None


def _link_preview(p: JSON) -> JSON | None:
    lpo = as_json(p, "link_preview_options")
    if lpo is not None:
        if not isinstance(lpo, dict):
            raise bad("can't parse link preview options JSON object")
        for flag in (
            "is_disabled",
            "prefer_small_media",
            "prefer_large_media",
            "show_above_text",
        ):
            require_bool(lpo, flag)
        if "url" in lpo:
            try:
                check_url(str(lpo["url"]))
            except ValueError as exc:
                raise bad("WEBPAGE_URL_INVALID") from exc
        return lpo or None
    if as_bool(p, "disable_web_page_preview"):
        return {"is_disabled": True}
    return None


def _editable(state: BotState, p: JSON) -> tuple[Chat, Stored]:
    if p.get("inline_message_id"):
        raise bad("MESSAGE_ID_INVALID")
    chat = resolve_chat(state, p)
    mid = resolve_message_id(p)
    stored = chat.messages.get(mid)
    if stored is None or stored.deleted:
        raise bad("message to edit not found")
    if not stored.from_bot:
        raise bad("message can't be edited")
    if state.now() - stored.data["date"] > EDIT_WINDOW:
        raise bad("message can't be edited")
    if chat.blocked:
        raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
    return chat, stored


def _apply_edit(state: BotState, chat: Chat, stored: Stored, new: JSON) -> JSON:
    old = stored.data
    stored.history.append(json.loads(json.dumps(old)))
    new["edit_date"] = max(int(state.now()), old["date"])
    stored.data = new
    stored.edits += 1
    state.emit(
        chat.user.id, "edited", new["message_id"], {"message": state.snapshot(stored).to_json()}
    )
    return json.loads(json.dumps(new))


def _delete(state: BotState, chat: Chat, mid: int) -> bool:
    stored = chat.messages.get(mid)
    if stored is None or stored.deleted:
        return False
    stored.deleted = True
    state.emit(chat.user.id, "deleted", mid, {"message": state.snapshot(stored).to_json()})
    return True
