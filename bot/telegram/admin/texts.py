"""The admin texts: stats, /credit and /debit.

English, HTML (see :mod:`bot.telegram.texts`, the one entry point). Key names
are stable message ids: never rename one.
"""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
    "admin_stats": (
        "📊 <b>Stats</b>\n"
        "Users: {users}\n"
        "Spent on completed orders: {completed_spend}\n"
        "Charged for open orders (refunded if no SMS comes): {open_spend}\n\n"
        "<b>Orders by state</b>\n{states}\n\n"
        "<b>Success rate per service and pool</b>\n"
        "<i>completed / finished (completed, refunded or failed); open orders apart</i>\n"
        "{services}"
    ),
    "admin_strays": (
        "\n\n<b>Orders nobody got</b> (DaisySim finished them after the bot gave up)\n"
        "• cancelled and refunded: {refunded_count} ({refunded})\n"
        "• refund pending: {open_count} ({open})\n"
        "• lost, the code came first: {lost_count} ({lost})"
    ),
    "admin_state_line": "• {state}: {count}",
    "admin_service_line": "• {name}{pool}: {completed}/{finished} ({rate}%){open}",
    "admin_service_line_unfinished": "• {name}{pool}: no finished order yet{open}",
    "admin_service_open": " · {count} waiting",
    "admin_pool": " [{pool}]",
    "admin_pool_cheapest": "cheapest",
    "admin_none": "—",
    "admin_usage_credit": (
        "Usage: <code>/credit USER_ID AMOUNT [note]</code>\n"
        "Example: <code>/credit 123456789 10.50 bank transfer</code>"
    ),
    "admin_usage_debit": (
        "Usage: <code>/debit USER_ID AMOUNT [note]</code>\n"
        "Example: <code>/debit 123456789 2.00 correction</code>"
    ),
    "admin_credited": "✅ Credited {amount} to <code>{user_id}</code>. New balance: {balance}.",
    "admin_debited": "✅ Debited {amount} from <code>{user_id}</code>. New balance: {balance}.",
    "admin_operator_only": "Wallet adjustments exist only in operator mode.",
    "admin_bad_user_id": "❌ The user id must be a number, e.g. 123456789.\n\n{usage}",
    "admin_bad_amount": (
        "❌ The amount must be a positive number with at most 2 decimals (at most "
        "1,000,000), e.g. 5 or 2.50.\n\n{usage}"
    ),
    "admin_unknown_user": (
        "❌ Unknown user id <code>{user_id}</code> — they must /start the bot first."
    ),
    "admin_credit_notice": (
        "💰 {amount} was added to your wallet by an admin. Balance: <b>{balance}</b>"
    ),
    "admin_debit_too_much": (
        "❌ Can't debit {amount}: the wallet of <code>{user_id}</code> would go negative."
    ),
}
