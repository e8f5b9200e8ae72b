"""The history screen: one line per order, in the order message's vocabulary."""

from __future__ import annotations

from bot.services.api import Activation, ActivationState, OrderPage, RefundReason
from bot.telegram.common.views import Screen
from bot.telegram.history.callbacks import HistName
from bot.telegram.history.keyboards import FILTER_LABELS, history_kb
from bot.telegram.texts import (
    N_,
    Raw,
    clock_entity,
    date_time_entities,
    label,
    nt,
    strip_html,
    t,
)

__all__ = ["history", "short_status"]

# States whose short status takes no value (the others are worded below).
_SHORT_STATUS_KEYS: dict[ActivationState, str] = {
    ActivationState.PURCHASING: N_("st_purchasing"),
    ActivationState.WAITING: N_("st_waiting"),
    ActivationState.CANCELLING: N_("st_cancelling"),
    ActivationState.EXPIRED: N_("st_expired"),
}


def short_status(lang: str, a: Activation) -> Raw:
    """One vocabulary with the order message: "refunded · cancelled by you"..."""
    if a.state == ActivationState.COMPLETED:
        return t(lang, "st_completed", code=a.code or "")
    if a.state == ActivationState.REFUNDED:
        if a.refund_reason == RefundReason.EXPIRED:
            return t(lang, "st_refunded_expired")
        return t(lang, "st_refunded")
    if a.state == ActivationState.FAILED:
        return t(lang, N_("st_failed_refunded") if a.refund_amount else N_("st_failed"))
    return t(lang, _SHORT_STATUS_KEYS[a.state])


def history(lang: str, page: OrderPage, current: HistName | None = None) -> Screen:
    current = current or page.filter
    title = t(
        lang,
        "history_title",
        filter=label(lang, FILTER_LABELS[current]),
        page=page.page,
        pages=page.pages,
        total=strip_html(nt(lang, "history_count", "history_count_plural", page.total)),
    )
    # With date_time entities each reader sees their own time zone; only the plain
    # UTC text needs saying so.
    lines = [title, "" if date_time_entities() else t(lang, "history_utc"), ""]
    if not lines[1]:
        del lines[1]
    if not page.items:
        lines.append(t(lang, "history_empty"))
    for a in page.items:
        lines.append(
            t(
                lang,
                "history_line",
                date=clock_entity(a.purchased_at),
                name=a.service_name,
                phone=a.phone or "—",
                price=a.price,
                status=short_status(lang, a),
            )
        )
    return Screen(Raw("\n".join(lines)), history_kb(lang, current, page.page, page.pages))
