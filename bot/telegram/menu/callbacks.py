"""The main menu's callback data: ``menu:home|buy|act|wal|hist|key|help`` and ``noop``
(a button that does nothing, e.g. the page counter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from bot.telegram.common.callbacks import CallbackData, Choice, Grammar

__all__ = ["MenuCb", "MenuName", "Noop", "menu", "noop"]

# "act" is the Active numbers list (an activation's own buttons are orders.OrderCb).
MenuName = Literal["home", "buy", "act", "wal", "hist", "key", "help"]


@dataclass(frozen=True, slots=True)
class MenuCb(CallbackData):
    GRAMMAR: ClassVar = Grammar("menu", (Choice(get_args(MenuName)),))
    name: MenuName


@dataclass(frozen=True, slots=True)
class Noop(CallbackData):
    GRAMMAR: ClassVar = Grammar("noop")


def menu(name: MenuName) -> str:
    return MenuCb(name).data


def noop() -> str:
    return Noop().data
