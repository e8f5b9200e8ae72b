"""The API key screens (own-key mode). No I/O here."""

from __future__ import annotations

from bot.services.api import KeyInfo
from bot.telegram.common.keyboards import back_home_kb
from bot.telegram.common.views import Screen
from bot.telegram.keys.keyboards import key_kb, key_remove_kb
from bot.telegram.texts import Raw, t

__all__ = [
    "key_linked",
    "key_status",
    "operator_mode",
    "pasted",
    "remove_confirm",
    "with_home",
]


def key_status(lang: str, masked: str | None) -> Screen:
    """``/key``: the linked key (masked) and the prompt for a new one."""
    if masked:
        text = Raw(t(lang, "key_current", masked=masked) + "\n\n" + t(lang, "key_prompt_replace"))
    else:
        text = t(lang, "key_prompt")
    return Screen(text, key_kb(lang, linked=bool(masked)))


def key_linked(lang: str, info: KeyInfo) -> Screen:
    text = t(lang, "key_linked", masked=info.masked, balance=info.balance, email=info.email)
    return Screen(text, key_kb(lang, linked=True))


def with_home(lang: str, key: str, /, **values: object) -> Screen:
    """One text and the Home button."""
    return Screen(t(lang, key, **values), back_home_kb(lang))


def operator_mode(lang: str) -> Screen:
    return with_home(lang, "key_operator_mode")


def remove_confirm(lang: str, masked: str) -> Screen:
    return Screen(t(lang, "key_remove_confirm", masked=masked), key_remove_kb(lang))


def pasted(lang: str, *, deleted: bool, then: Screen) -> Screen:
    """A key pasted outside the /key prompt: say what happened to the message first."""
    intro = t(lang, "key_paste_deleted") if deleted else Raw(
        t(lang, "key_paste_intro") + "\n" + t(lang, "key_delete_failed")
    )
    return Screen(Raw(intro + "\n\n" + then.text), then.markup)
