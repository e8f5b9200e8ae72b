"""The top-up buttons: ``top`` (the packs) and ``top:p:<n>`` (pack n, 1-based: an
index into ``TOPUP_PACKS_USD``; the amount itself is never carried)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bot.telegram.common.callbacks import CallbackData, Grammar, Number

__all__ = ["TOPUP_TYPES", "TopListCb", "TopPackCb", "topup_list", "topup_pack"]


@dataclass(frozen=True, slots=True)
class TopListCb(CallbackData):
    GRAMMAR: ClassVar = Grammar("top")


@dataclass(frozen=True, slots=True)
class TopPackCb(CallbackData):
    GRAMMAR: ClassVar = Grammar("top:p", (Number(1),))
    number: int  # 1-based


def topup_list() -> str:
    return TopListCb().data


def topup_pack(index: int) -> str:
    return TopPackCb(index + 1).data


TOPUP_TYPES: tuple[type[CallbackData], ...] = (TopListCb, TopPackCb)
