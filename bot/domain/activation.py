"""The activation state machine: one enum, one table of allowed transitions.

Every state change of an activation is one named :class:`Step` from
:data:`TRANSITIONS`. Storage applies a step as a guarded ``UPDATE … WHERE state
IN (from)``, so two racing writers can never both move the same row; the SQL
``CHECK`` constraint and the "final is final" trigger are checked against this
table in ``tests/storage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "CANCELLING_STATES",
    "FINAL_STATES",
    "OPEN_STATES",
    "POLLABLE_STATES",
    "TRANSITIONS",
    "ActivationState",
    "RefundReason",
    "Step",
    "Transition",
    "allowed",
]


class ActivationState(StrEnum):
    PURCHASING = "purchasing"  # request sent (or about to be); outcome unknown
    WAITING = "waiting"  # number assigned, no code yet
    COMPLETED = "completed"  # final: code stored
    CANCELLING = "cancelling"  # user asked to cancel; cancel call pending/retrying
    EXPIRED = "expired"  # give-up time reached; auto-cancel pending/retrying
    REFUNDED = "refunded"  # final: cancelled upstream, money returned
    FAILED = "failed"  # final: never bought, or Not Found/Invalid upstream

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_open(self) -> bool:
        """Still shown under "Active numbers"."""
        return self in OPEN_STATES


S = ActivationState

FINAL_STATES: Final = frozenset({S.COMPLETED, S.REFUNDED, S.FAILED})
OPEN_STATES: Final = (S.PURCHASING, S.WAITING, S.CANCELLING, S.EXPIRED)
# A number is assigned upstream and may still receive a code.
POLLABLE_STATES: Final = (S.WAITING, S.CANCELLING, S.EXPIRED)
# A cancel is owed upstream (by the user, or because the give-up time passed).
CANCELLING_STATES: Final = (S.CANCELLING, S.EXPIRED)


class RefundReason(StrEnum):
    USER_CANCEL = "user_cancel"
    EXPIRED = "expired"
    FAILED = "failed"  # Not Found / Invalid upstream: money held is released/refunded


class Step(StrEnum):
    """The named ways an activation may change state."""

    BOUGHT = "bought"  # DaisySim assigned a number
    PURCHASE_FAILED = "purchase_failed"  # proven (or written off as) not bought
    CODE = "code"  # a code arrived: final, whatever was pending
    CANCEL = "cancel"  # the user pressed Cancel & refund
    CANCEL_TOO_EARLY = "cancel_too_early"  # DaisySim said the lock has not passed yet
    EXPIRE = "expire"  # the give-up time passed without a code
    REFUND = "refund"  # the cancel went through upstream
    UNRESOLVABLE = "unresolvable"  # DaisySim no longer knows the number


@dataclass(frozen=True, slots=True)
class Transition:
    sources: tuple[ActivationState, ...]
    target: ActivationState


TRANSITIONS: Final[dict[Step, Transition]] = {
    Step.BOUGHT: Transition((S.PURCHASING,), S.WAITING),
    Step.PURCHASE_FAILED: Transition((S.PURCHASING,), S.FAILED),
    Step.CODE: Transition(POLLABLE_STATES, S.COMPLETED),
    Step.CANCEL: Transition((S.WAITING,), S.CANCELLING),
    Step.CANCEL_TOO_EARLY: Transition((S.CANCELLING,), S.WAITING),
    Step.EXPIRE: Transition((S.WAITING,), S.EXPIRED),
    Step.REFUND: Transition(CANCELLING_STATES, S.REFUNDED),
    Step.UNRESOLVABLE: Transition((S.WAITING,), S.FAILED),
}


def allowed() -> frozenset[tuple[ActivationState, ActivationState]]:
    """Every (from, to) pair the table allows."""
    return frozenset(
        (source, t.target) for t in TRANSITIONS.values() for source in t.sources
    )
