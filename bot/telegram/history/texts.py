"""The history's texts: title, filters, one-line statuses.

English, HTML (see :mod:`bot.telegram.texts`, the one entry point). Key names
are stable message ids: never rename one.
"""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
    "history_title": "📜 <b>History</b> · {filter} · page {page}/{pages} · {total}",
    "history_utc": "<i>Times in UTC.</i>",
    "history_count_one": "1 order",
    "history_count_many": "{n} orders",
    "history_empty": "Nothing here yet.",
    "history_line": "{date} · {name} · <code>{phone}</code> · {price} · {status}",
    "hist_all": "All",
    "hist_completed": "Completed",
    "hist_waiting": "Waiting",
    "hist_cancelled": "Cancelled",
    "hist_selected": "• {label} •",
    "st_purchasing": "buying",
    "st_waiting": "waiting",
    "st_completed": "code {code}",
    "st_cancelling": "cancelling",
    "st_expired": "no SMS in time · refunding",
    "st_refunded": "refunded · cancelled by you",
    "st_refunded_expired": "refunded · no SMS in time",
    "st_failed": "failed · nothing charged",
    "st_failed_refunded": "refunded · order failed",
}
