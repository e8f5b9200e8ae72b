"""The broadcast preview's and progress message's buttons: ``bc:send|cancel|stop:<id>``.

The id is never trusted: the engine checks the presser is an admin (and, for
Send / Cancel, the one who wrote the broadcast)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal, get_args

from bot.telegram.common.callbacks import CallbackData, Choice, Grammar, Number

__all__ = ["BroadcastAction", "BroadcastCb", "broadcast_cb"]

BroadcastAction = Literal["send", "cancel", "stop"]

_FIELDS: Final = (Choice(get_args(BroadcastAction)), Number(12))


@dataclass(frozen=True, slots=True)
class BroadcastCb(CallbackData):
    GRAMMAR: ClassVar = Grammar("bc", _FIELDS)
    action: BroadcastAction
    broadcast_id: int


def broadcast_cb(action: BroadcastAction, broadcast_id: int) -> str:
    return BroadcastCb(action, broadcast_id).data
