"""An order's screens: the order message, the code push, the notices the engine's
events push (refunded, failed, bought after all, expired), the cancel toasts and
the Active numbers list. No I/O here."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.services.api import (
    Activation,
    ActivationState,
    CancelOutcome,
    Event,
    EventKind,
    RefundReason,
)
from bot.telegram.common.views import Screen
from bot.telegram.orders import keyboards as kb
from bot.telegram.texts import (
    N_,
    Raw,
    date_time_entities,
    fmt_duration,
    fmt_lock,
    fmt_wait,
    label,
    plain,
    relative_entity,
    seconds_until,
    t,
    time_entity,
)

__all__ = [
    "active_list",
    "cancel_toast",
    "event_notice",
    "failed_notice",
    "order",
    "order_moved",
    "otp",
    "purchased_notice",
    "refund_notice",
    "status",
]

# States whose status line takes no value (the others are worded below).
_STATUS_KEYS: dict[ActivationState, str] = {
    ActivationState.PURCHASING: N_("status_purchasing"),
    ActivationState.COMPLETED: N_("status_completed"),
    ActivationState.CANCELLING: N_("status_cancelling"),
    ActivationState.EXPIRED: N_("status_expired"),
}


def status(lang: str, a: Activation, now: float) -> Raw:
    """The order's status line (also on the Active numbers list)."""
    state = a.state
    if state == ActivationState.WAITING:
        if date_time_entities():  # "expires in 17 minutes (08:20)", live in the app
            return t(lang, "status_waiting_live", at=time_entity(a.expires_at),
                     when=_relative(lang, a.expires_at, now, round_up=False))
        return t(lang, "status_waiting", at=time_entity(a.expires_at))
    if state == ActivationState.REFUNDED:
        amount = a.refund_amount if a.refund_amount is not None else a.price
        key = (
            N_("status_refunded_expired")
            if a.refund_reason == RefundReason.EXPIRED
            else N_("status_refunded")
        )
        return t(lang, key, amount=amount)
    if state == ActivationState.FAILED:
        if a.refund_amount:
            return t(lang, "status_failed_refunded", amount=a.refund_amount)
        if a.remote_id is None:
            return t(lang, "status_not_bought")
        return t(lang, "status_failed")
    return t(lang, _STATUS_KEYS[state])


def _relative(lang: str, moment: float, now: float, *, round_up: bool) -> Raw:
    """``moment`` relative to the reader's now (Telegram keeps it live); the fallback
    is exact as of sending ("in 2:41"), rounded the way the absolute time beside it is."""
    if round_up:
        left = seconds_until(moment, now)
    else:  # the second it falls in, as the absolute time beside it
        left = max(0, math.floor(moment + 1e-6) - math.floor(now + 1e-6))
    return relative_entity(moment, label(lang, "time_in", left=fmt_duration(left)),
                           round_up=round_up)


def order(lang: str, a: Activation, now: float) -> Screen:
    lines: list[str] = [t(lang, "order_title", name=a.service_name)]
    if a.provider_id:
        lines.append(t(lang, "order_pool", pool=a.provider_id))
    lines.append(
        t(lang, "order_number", phone=a.phone) if a.phone else t(lang, "order_number_pending")
    )
    lines.append(t(lang, "order_price", price=a.price))
    lines.append(t(lang, "order_status", status=status(lang, a, now)))
    if a.state == ActivationState.COMPLETED and a.code:
        lines.append(t(lang, "order_code", code=a.code))
    if a.state == ActivationState.PURCHASING:
        lines.append("")
        lines.append(t(lang, "order_pending"))
    if a.state == ActivationState.WAITING:
        lines.append("")
        if a.cancel_available(now):
            lines.append(t(lang, "order_cancel_open"))
        elif date_time_entities():  # "opens in 3 minutes, at 08:03", live in the app
            lines.append(t(lang, "order_cancel_locked_live",
                           when=_relative(lang, a.cancel_after, now, round_up=True),
                           at=time_entity(a.cancel_after, round_up=True)))
        else:
            _, left, _ = fmt_wait(a.cancel_after, now)  # the same seconds as these two:
            lines.append(t(lang, "order_cancel_locked", left=left,
                           at=time_entity(a.cancel_after, round_up=True),
                           now=time_entity(now)))
    return Screen(Raw("\n".join(lines)), kb.order_kb(lang, a, now))


def order_moved(lang: str) -> Screen:
    """What an order message says once the order moved to a newer message."""
    return Screen(t(lang, "order_moved"))


def cancel_toast(
    lang: str, result: CancelOutcome, now: float, *, cancel_lock_seconds: float
) -> tuple[str, bool]:
    """What a Cancel press answers (toast text, shown as an alert?)."""
    activation = result.activation
    if result.outcome == "too_early":
        opens = activation.cancel_after
        if result.seconds_left is not None and result.seconds_left > seconds_until(opens, now):
            opens = now + result.seconds_left  # DaisySim said later than we knew
        at, _, _ = fmt_wait(opens, now)
        text = plain(lang, "cb_too_early", at=at, seconds=seconds_until(opens, now),
                     lock=fmt_lock(cancel_lock_seconds, lang))
        return text, True
    if result.outcome == "refunded":
        amount = result.refund if result.refund is not None else activation.price
        return plain(lang, "cb_refunded", amount=amount), False
    if result.outcome == "code_received":
        return plain(lang, "cb_code_received"), True
    if result.outcome == "already_final":
        return plain(lang, "cb_already_final"), False
    return plain(lang, "cb_cancel_pending"), False


# ------------------------------------------------------------ pushed by events


def otp(lang: str, a: Activation) -> Screen:
    """The code, pushed as a new message (so the phone notifies)."""
    text = t(lang, "otp_message", name=a.service_name, phone=a.phone or "", code=a.code or "")
    return Screen(text, kb.otp_kb(lang, a))


def refund_notice(lang: str, a: Activation) -> Raw | None:
    amount = a.refund_amount if a.refund_amount is not None else a.price
    if a.refund_reason == RefundReason.USER_CANCEL:
        return None  # the user is looking at the order: the edit says it all
    if a.refund_reason == RefundReason.EXPIRED:
        return t(lang, "notify_refunded_expired", name=a.service_name, phone=a.phone or "",
                 amount=amount)
    return t(lang, "notify_refunded", name=a.service_name, phone=a.phone or "", amount=amount)


def purchased_notice(lang: str, a: Activation) -> Raw:
    """A purchase left in doubt turned out bought (the order message shows it)."""
    return t(lang, "notify_purchased", name=a.service_name, phone=a.phone or "")


def failed_notice(lang: str, a: Activation, *, own_key: bool = False) -> Raw:
    if a.remote_id is None and not a.refund_amount:
        # A purchase left in doubt, reconciled as not bought.
        key = N_("notify_not_bought_own_key") if own_key else N_("notify_not_bought")
        return t(lang, key, name=a.service_name)
    outcome = (
        t(lang, "notify_failed_refunded", amount=a.refund_amount)
        if a.refund_amount
        else t(lang, "notify_failed_nothing")
    )
    return t(lang, "notify_failed", name=a.service_name, outcome=outcome)


def event_notice(lang: str, event: Event, *, own_key: bool) -> Raw | None:
    """The short message an event pushes besides updating the order message (none
    for a code, which is its own push, nor for a refund the user asked for)."""
    a = event.activation
    if event.kind == EventKind.REFUNDED:
        return refund_notice(lang, a)
    if event.kind == EventKind.FAILED:
        return failed_notice(lang, a, own_key=own_key)
    if event.kind == EventKind.PURCHASED and not event.interrupted:
        # The pressed message (pending, or "Buying…" before a restart) has just
        # become the order; the notice makes the phone tell the user.
        return purchased_notice(lang, a)
    return None


# ---------------------------------------------------------------- active list


def active_list(lang: str, items: Sequence[Activation], now: float) -> Screen:
    if not items:
        return Screen(t(lang, "active_empty"), kb.activation_list_kb(lang, ()))
    lines = [t(lang, "active_title", count=len(items)), ""]
    for a in items:
        lines.append(
            t(lang, "active_line", name=a.service_name, phone=a.phone or "…",
              status=status(lang, a, now))
        )
    return Screen(Raw("\n".join(lines)), kb.activation_list_kb(lang, items))
