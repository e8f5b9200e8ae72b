"""The API key screens' buttons: ``key:set|rm|rmyes|rmno``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from bot.telegram.common.callbacks import CallbackData, Choice, Grammar

__all__ = ["KeyAction", "KeyCb", "key"]

KeyAction = Literal["set", "rm", "rmyes", "rmno"]


@dataclass(frozen=True, slots=True)
class KeyCb(CallbackData):
    GRAMMAR: ClassVar = Grammar("key", (Choice(get_args(KeyAction)),))
    action: KeyAction


def key(action: KeyAction) -> str:
    return KeyCb(action).data
