"""An order's texts: the order message, its buttons, pushes and toasts, Active numbers.

English, HTML (see :mod:`bot.telegram.texts`, the one entry point). Key names
are stable message ids: never rename one.
"""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
    "order_title": "📱 <b>{name}</b>",
    "order_pool": "Pool: {pool}",
    "order_number": "Number: <code>{phone}</code>",
    "order_number_pending": "Number: <i>being assigned…</i>",
    "order_price": "Price: {price}",
    "order_status": "Status: {status}",
    "status_purchasing": "⏳ buying…",
    "order_pending": (
        "⏳ Checking whether the purchase went through — your money is held, not spent. "
        "I'll tell you here as soon as I know."
    ),
    "status_not_bought": "⚠️ not bought",
    "status_waiting": "⏳ waiting for the SMS · expires {at}",
    "status_completed": "✅ code received",
    "status_cancelling": "⏳ cancelling…",
    "status_expired": "⌛ no SMS in time · refund in progress…",
    "status_refunded": "↩️ {amount} refunded · cancelled by you",
    "status_refunded_expired": "⌛ {amount} refunded · no SMS in time",
    "status_failed": "⚠️ failed · nothing charged",
    "status_failed_refunded": "⚠️ {amount} refunded · order failed",
    "order_code": "Code: <code>{code}</code>",
    "order_cancel_locked": (
        "🔒 Cancel &amp; refund available from {at} (in {left} as of {now})."
    ),
    "order_moved": "⬇️ This order continues below.",
    "order_cancel_open": "No SMS yet? You can cancel for a full refund.",
    "btn_copy_number": "📋 Copy number",
    "btn_copy_code": "📋 Copy code",
    "btn_cancel_refund": "❌ Cancel & refund",
    "btn_cancel_locked": "🔒 Cancel from {at}",
    "btn_refresh": "🔄 Refresh",
    "btn_buy_again": "🔁 Buy again",
    "otp_message": "🔑 Code for <b>{name}</b> (<code>{phone}</code>):\n\n<code>{code}</code>",
    "notify_refunded_expired": (
        "⌛ No SMS arrived for <b>{name}</b> (<code>{phone}</code>) in time. "
        "{amount} refunded."
    ),
    "notify_refunded": "↩️ <b>{name}</b> (<code>{phone}</code>) cancelled. {amount} refunded.",
    "notify_failed": "⚠️ The <b>{name}</b> purchase failed. {outcome}",
    "notify_failed_refunded": "{amount} refunded.",
    "notify_failed_nothing": "Nothing was charged.",
    "notify_purchased": (
        "✅ Your <b>{name}</b> purchase went through. Your number: <code>{phone}</code>"
    ),
    "notify_not_bought": (
        "⚠️ The <b>{name}</b> purchase did not go through: not bought, the hold on your "
        "money is released."
    ),
    "notify_not_bought_own_key": (
        "⚠️ The <b>{name}</b> purchase did not go through: not bought. If DaisySim still "
        "charges for it later, I cancel it for a refund."
    ),
    "cb_refunded": "Cancelled. {amount} refunded.",
    "cb_too_early": (
        "You can cancel from {at} ({seconds} s from now; cancelling opens {lock} after "
        "purchase)."
    ),
    "cb_code_received": "Too late to cancel — the code has just arrived!",
    "cb_already_final": "This order is already finished.",
    "cb_cancel_pending": "Cancelling… the refund will show on the order.",
    "cb_updated": "Updated.",
    "active_title": "📱 <b>Active numbers</b> ({count})",
    "active_empty": "You have no active numbers. Tap Buy to get one.",
    "active_line": "• {name} <code>{phone}</code> — {status}",
    "btn_open_order": "{name} · {phone}",
}
