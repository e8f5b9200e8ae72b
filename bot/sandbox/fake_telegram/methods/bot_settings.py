"""The bot's commands (scopes and languages), description, short description, name and
menu button."""

from __future__ import annotations

import re

from bot.sandbox.fake_telegram.errors import JSON, bad
from bot.sandbox.fake_telegram.params import as_int_safe, as_json
from bot.sandbox.fake_telegram.state import BotState

_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


def _command_key(p: JSON) -> tuple[str, str]:
    scope = as_json(p, "scope")
    lang = p.get("language_code") or ""
    if not isinstance(lang, str) or (lang and not re.fullmatch(r"[a-z]{2}", lang)):
        raise bad("invalid language code specified")
    if scope in (None, ""):
        return "default", lang
    if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
        raise bad("can't parse BotCommandScope JSON object")
    stype = scope["type"]
    if stype in ("default", "all_private_chats", "all_group_chats", "all_chat_administrators"):
        return stype, lang
    if stype in ("chat", "chat_administrators", "chat_member"):
        cid = as_int_safe(scope.get("chat_id"))
        if cid is None:
            raise bad("chat not found")
        if stype == "chat_member":
            return f"chat_member:{cid}:{scope.get('user_id')}", lang
        return f"{stype}:{cid}", lang
    raise bad("unsupported bot command scope type")


def set_my_commands(state: BotState, p: JSON) -> bool:
    commands = as_json(p, "commands")
    if commands is None:
        raise bad('parameter "commands" is required')
    if not isinstance(commands, list):
        raise bad('field "commands" must be of type Array')
    if len(commands) > 100:
        raise bad("BOT_COMMANDS_TOO_MUCH")
    clean: list[JSON] = []
    for cmd in commands:
        if not isinstance(cmd, dict):
            raise bad("can't parse BotCommand: Object expected")
        name, desc = cmd.get("command"), cmd.get("description")
        if not isinstance(name, str) or not isinstance(desc, str):
            raise bad('can\'t parse BotCommand: Field "command" must be of type String')
        if name == "":
            raise bad("command must be non-empty")
        if desc.strip() == "":
            raise bad("command description must be non-empty")
        if not _COMMAND_RE.match(name):
            raise bad("BOT_COMMAND_INVALID")
        if len(desc) > 256:
            raise bad("BOT_COMMAND_DESCRIPTION_INVALID")
        clean.append({"command": name, "description": desc})
    key = _command_key(p)
    if clean:
        state.commands[key] = clean
    else:
        state.commands.pop(key, None)
    state.emit(None, "commands", None, {"scope": key[0], "language_code": key[1]})
    return True


def get_my_commands(state: BotState, p: JSON) -> list[JSON]:
    return [dict(c) for c in state.commands.get(_command_key(p), [])]


def delete_my_commands(state: BotState, p: JSON) -> bool:
    key = _command_key(p)
    if state.commands.pop(key, None) is not None:
        state.emit(None, "commands", None, {"scope": key[0], "language_code": key[1]})
    return True


def _setting(state: BotState, name: str, p: JSON, field_name: str, limit: int) -> bool:
    value = p.get(field_name) or ""
    if not isinstance(value, str):
        value = str(value)
    if len(value) > limit:
        raise bad(f"{field_name} is too long")
    state.bot_settings[(name, p.get("language_code") or "")] = value
    return True


def set_my_description(state: BotState, p: JSON) -> bool:
    return _setting(state, "description", p, "description", 512)


def get_my_description(state: BotState, p: JSON) -> JSON:
    return {
        "description": state.bot_settings.get(("description", p.get("language_code") or ""), "")
    }


def set_my_short_description(state: BotState, p: JSON) -> bool:
    return _setting(state, "short_description", p, "short_description", 120)


def get_my_short_description(state: BotState, p: JSON) -> JSON:
    key = ("short_description", p.get("language_code") or "")
    return {"short_description": state.bot_settings.get(key, "")}


def set_my_name(state: BotState, p: JSON) -> bool:
    return _setting(state, "name", p, "name", 64)


def get_my_name(state: BotState, p: JSON) -> JSON:
    name = state.bot_settings.get(("name", p.get("language_code") or "")) or state.bot_first_name
    return {"name": name}


def set_chat_menu_button(state: BotState, p: JSON) -> bool:
    button = as_json(p, "menu_button") or {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in (
        "default",
        "commands",
        "web_app",
    ):
        raise bad("can't parse MenuButton JSON object")
    state.bot_settings[("menu_button", str(p.get("chat_id") or ""))] = button
    return True


def get_chat_menu_button(state: BotState, p: JSON) -> JSON:
    key = ("menu_button", str(p.get("chat_id") or ""))
    value = state.bot_settings.get(key) or {"type": "commands"}
    return dict(value)
