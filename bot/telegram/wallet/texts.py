"""The wallet's texts: balance, ledger lines.

English, HTML (see :mod:`bot.telegram.texts`, the one entry point). Key names
are stable message ids: never rename one.
"""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
    "wallet_title": "💰 <b>Wallet</b>",
    "wallet_own_key": "DaisySim balance: <b>{balance}</b>\nAccount: {email}",
    "wallet_own_key_unknown": "DaisySim balance: unavailable right now.\nAccount: {email}",
    "wallet_no_key": "No DaisySim key linked yet. Use /key to link one.",
    "wallet_operator": "Balance: <b>{balance}</b>\nYour ID: <code>{user_id}</code>",
    "wallet_ledger_title": "<b>Recent movements</b> (times in UTC)",
    "wallet_ledger_line": "{date} · {amount} · {what}",
    "wallet_ledger_empty": "No movements yet.",
    "wallet_summary": "Active numbers: {active}\nSpent this month: {spent}",
    "ledger_with_name": "{name} · {what}",
    "ledger_with_note": "{what} · {note}",
    "ledger_credit": "top-up",
    "ledger_debit": "adjustment",
    "ledger_hold": "on hold (buying)",
    "ledger_release": "released",
    "ledger_charge": "purchase",
    "ledger_refund": "refund",
    "ledger_refund_user_cancel": "refund · you cancelled",
    "ledger_refund_expired": "refund · no SMS in time",
    "ledger_refund_failed": "refund · order failed",
}
