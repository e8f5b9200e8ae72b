"""An order's buttons: ``order:open|ref|cancel:<activation id>``.

Older versions wrote ``act:open|ref|cancel:<id>`` ("act" also named the Active
numbers list, ``menu:act``): those buttons are still in users' chats, so they are
parsed as the same :class:`OrderCb`; new buttons carry ``order:``. The id is
never trusted: the engine checks the activation belongs to the presser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal, get_args

from bot.telegram.common.callbacks import CallbackData, Choice, Grammar, Number

__all__ = ["OrderAction", "OrderCb", "order"]

OrderAction = Literal["open", "ref", "cancel"]

_FIELDS: Final = (Choice(get_args(OrderAction)), Number(12))


@dataclass(frozen=True, slots=True)
class OrderCb(CallbackData):
    GRAMMAR: ClassVar = Grammar("order", _FIELDS)
    LEGACY: ClassVar = (Grammar("act", _FIELDS),)
    action: OrderAction
    activation_id: int


def order(action: OrderAction, activation_id: int) -> str:
    return OrderCb(action, activation_id).data
