"""The main menu's callback data: ``menu:home|buy|act|wal|hist|key|help|lang``,
``lang:<code>`` (the language picker) and ``noop``
(a button that does nothing, e.g. the page counter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from bot.telegram.common.callbacks import CallbackData, Choice, Grammar

__all__ = ["LangCb", "MenuCb", "MenuName", "Noop", "choose_lang", "menu", "noop"]

# The shipped languages (bot.telegram.catalogues.LANGUAGES), spelled out here so
# callback types stay leaves of the import graph; a test checks they agree.
LANG_CODES: tuple[str, ...] = ("en", "ru", "es", "pt_BR", "fa")

# "act" is the Active numbers list (an activation's own buttons are orders.OrderCb).
MenuName = Literal["home", "buy", "act", "wal", "hist", "key", "help", "lang"]


@dataclass(frozen=True, slots=True)
class MenuCb(CallbackData):
    GRAMMAR: ClassVar = Grammar("menu", (Choice(get_args(MenuName)),))
    name: MenuName


@dataclass(frozen=True, slots=True)
class Noop(CallbackData):
    GRAMMAR: ClassVar = Grammar("noop")


@dataclass(frozen=True, slots=True)
class LangCb(CallbackData):
    """``lang:<code>``: the /language picker's choice."""

    GRAMMAR: ClassVar = Grammar("lang", (Choice(LANG_CODES),))
    code: str


def choose_lang(code: str) -> str:
    return LangCb(code).data


def menu(name: MenuName) -> str:
    return MenuCb(name).data


def noop() -> str:
    return Noop().data
