"""reply_markup checks: inline keyboards (callback_data <= 64 bytes, exactly one action
per button, URL rules), reply keyboards, remove / force reply."""

from __future__ import annotations

import json
from typing import Any

from bot.sandbox.fake_telegram.errors import JSON, bad
from bot.sandbox.fake_telegram.urls import check_url

_INLINE_ACTIONS = (
    "callback_data",
    "url",
    "copy_text",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
    "pay",
)


def require_bool(obj: JSON, name: str, prefix: str = "") -> None:
    if name in obj and not isinstance(obj[name], bool):
        raise bad(f'{prefix}field "{name}" must be of type Boolean')


def _validate_inline_button(button: Any, allow_pay: bool = False) -> JSON:
    prefix = "can't parse inline keyboard button: "
    if not isinstance(button, dict):
        raise bad(prefix + "InlineKeyboardButton must be an Object")
    if "text" not in button:
        raise bad(prefix + 'Can\'t find field "text"')
    text = button["text"]
    if not isinstance(text, str):
        raise bad(prefix + 'Field "text" must be of type String')
    present = [
        k
        for k in _INLINE_ACTIONS
        if k in button and button[k] is not None and not (k == "callback_data" and button[k] == "")
    ]
    if not present:
        raise bad(prefix + "Text buttons are unallowed in the inline keyboard")
    if len(present) > 1:
        raise bad(
            prefix
            + "exactly one of the optional fields must be used (got "
            + ", ".join(present)
            + ")"
        )
    action = present[0]
    value = button[action]
    clean: JSON = {"text": text}
    if action == "callback_data":
        if not isinstance(value, str):
            raise bad(prefix + 'Field "callback_data" must be of type String')
        if len(value.encode("utf-8")) > 64:
            raise bad("BUTTON_DATA_INVALID")
    elif action == "url":
        if not isinstance(value, str):
            raise bad(prefix + 'Field "url" must be of type String')
        try:
            value = check_url(value)
        except ValueError as exc:
            raise bad(f"inline keyboard button URL '{button[action]}' is invalid: {exc}") from exc
    elif action == "copy_text":
        if not isinstance(value, dict):
            raise bad(prefix + 'Field "copy_text" must be of type Object')
        ct = value.get("text")
        if not isinstance(ct, str) or not 1 <= len(ct) <= 256:
            raise bad("BUTTON_COPY_TEXT_INVALID")
        value = {"text": ct}
    elif action == "web_app":
        url = value.get("url") if isinstance(value, dict) else None
        if not isinstance(url, str) or not url.lower().startswith("https://"):
            raise bad(
                f"inline keyboard button Web App URL '{url}' is invalid: "
                "Only HTTPS links are allowed"
            )
    elif action == "pay" and allow_pay:
        require_bool(button, "pay", prefix)
        value = True
    elif action in ("callback_game", "pay"):
        raise bad("BUTTON_TYPE_INVALID")
    elif action == "login_url":
        if not isinstance(value, dict) or not isinstance(value.get("url"), str):
            raise bad(prefix + 'Field "login_url" must be of type Object')
        require_bool(value, "request_write_access", prefix)
    elif action == "switch_inline_query_chosen_chat":
        if not isinstance(value, dict):
            raise bad(prefix + 'Field "switch_inline_query_chosen_chat" must be of type Object')
        for flag in (
            "allow_user_chats",
            "allow_bot_chats",
            "allow_group_chats",
            "allow_channel_chats",
        ):
            require_bool(value, flag, prefix)
    elif not isinstance(value, str):
        raise bad(prefix + f'Field "{action}" must be of type String')
    clean[action] = value
    return clean


def _validate_keyboard_button(button: Any) -> JSON:
    prefix = "can't parse keyboard button: "
    if isinstance(button, str):
        return {"text": button}
    if not isinstance(button, dict):
        raise bad(prefix + "KeyboardButton must be a String or an Object")
    if not isinstance(button.get("text"), str):
        raise bad(prefix + 'Can\'t find field "text"')
    for flag in ("request_contact", "request_location"):
        require_bool(button, flag, prefix)
    for req in ("request_chat", "request_users"):
        if req in button:
            sub = button[req]
            if not isinstance(sub, dict) or "request_id" not in sub:
                raise bad(prefix + 'Can\'t find field "request_id"')
            for k, v in sub.items():
                if (
                    k.startswith(("chat_is_", "user_is_", "bot_is_", "request_"))
                    and k != "request_id"
                ):
                    if not isinstance(v, bool):
                        raise bad(prefix + f'Field "{k}" must be of type Boolean')
    if "web_app" in button:
        url = button["web_app"].get("url") if isinstance(button["web_app"], dict) else None
        if not isinstance(url, str) or not url.lower().startswith("https://"):
            raise bad(
                f"keyboard button Web App URL '{url}' is invalid: Only HTTPS links are allowed"
            )
    return dict(button)


def validate_reply_markup(
    raw: Any, *, inline_only: bool = False, allow_pay: bool = False
) -> tuple[str, JSON] | None:
    """Validate ``reply_markup``; returns (kind, normalised markup) or None if absent.

    kind is one of "inline", "keyboard", "remove", "force_reply". ``allow_pay``: Pay
    buttons are allowed (invoices; the caller checks that one comes first).
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise bad("can't parse reply keyboard markup JSON object") from exc
    if not isinstance(raw, dict):
        raise bad("Object expected as reply markup")
    if "inline_keyboard" in raw:
        rows = raw["inline_keyboard"]
        if not isinstance(rows, list):
            raise bad('field "inline_keyboard" must be of type Array')
        clean_rows: list[list[JSON]] = []
        total = 0
        for row in rows:
            if not isinstance(row, list):
                raise bad('field "inline_keyboard" must be an Array of Arrays')
            clean_rows.append([_validate_inline_button(b, allow_pay) for b in row])
            total += len(row)
        if total > 100:
            raise bad("REPLY_MARKUP_TOO_LONG")
        return "inline", {"inline_keyboard": [r for r in clean_rows if r]}
    if inline_only:
        raise bad("inline keyboard expected")
    if "keyboard" in raw:
        rows = raw["keyboard"]
        if not isinstance(rows, list):
            raise bad('field "keyboard" must be of type Array')
        for flag in ("resize_keyboard", "one_time_keyboard", "selective", "is_persistent"):
            require_bool(raw, flag)
        clean: JSON = {k: v for k, v in raw.items() if k != "keyboard"}
        kb_rows: list[list[JSON]] = []
        for row in rows:
            if not isinstance(row, list):
                raise bad('field "keyboard" must be an Array of Arrays')
            kb_rows.append([_validate_keyboard_button(b) for b in row])
        clean["keyboard"] = kb_rows
        return "keyboard", clean
    if "remove_keyboard" in raw:
        require_bool(raw, "remove_keyboard")
        require_bool(raw, "selective")
        return "remove", dict(raw)
    if "force_reply" in raw:
        require_bool(raw, "force_reply")
        require_bool(raw, "selective")
        return "force_reply", dict(raw)
    raise bad("can't parse reply keyboard markup JSON object")
