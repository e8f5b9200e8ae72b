"""The history's filter and page buttons: ``hist:all|completed|waiting|cancelled:<page>``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from bot.telegram.common.callbacks import CallbackData, Choice, Grammar, Number

__all__ = ["HistCb", "HistName", "hist"]

HistName = Literal["all", "completed", "waiting", "cancelled"]


@dataclass(frozen=True, slots=True)
class HistCb(CallbackData):
    GRAMMAR: ClassVar = Grammar("hist", (Choice(get_args(HistName)), Number(4)))
    filter: HistName
    page: int


def hist(filter: HistName, page: int = 1) -> str:
    return HistCb(filter, page).data
