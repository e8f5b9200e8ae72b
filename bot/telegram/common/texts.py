"""Texts shared by every feature: navigation buttons, access, errors, flood notes.

English, HTML (see :mod:`bot.telegram.texts`, the one entry point). Key names
are stable message ids: never rename one.
"""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
    "btn_buy": "🛒 Buy a number",
    "btn_active": "📱 Active numbers",
    "btn_wallet": "💰 Wallet",
    "btn_history": "📜 History",
    "btn_home": "🏠 Menu",
    "btn_back": "⬅️ Back",
    "btn_prev": "◀️ Prev",
    "btn_next": "Next ▶️",
    "btn_page": "{page}/{pages}",
    "cancelled": "Okay, stopped. /start opens the menu.",
    "flow_cancelled": "✖️ Cancelled.",
    "access_denied": (
        "⛔ This bot is private. Your Telegram id is <code>{user_id}</code> — "
        "ask the operator to allow it."
    ),
    "group_refusal": "I only work in private chats. Open a direct chat with me to buy numbers.",
    "not_allowed": "⛔ You are not allowed to do that.",
    "cb_stale": "This button is no longer valid. Use /start for a fresh menu.",
    # A user sent far more than the bot could answer while busy with their request
    # (bot/telegram/flood.py): the excess was skipped. Sent once per burst.
    "flood_note": (
        "⏳ I'm still working on your earlier request and couldn't queue everything you "
        "sent meanwhile, so I skipped some of it. Please repeat anything you still need "
        "once I've answered."
    ),
    "flood_toast": "⏳ Still working on your earlier request — one moment, please.",
    "err_service_gone": "😕 That service is not available anymore. Please pick another one.",
    "err_rate_limited": "⏱ Too many requests to DaisySim. Please try again in {seconds} s.",
    "err_key_required": (
        "🔑 You need to link your DaisySim API key first. Use /key (it takes a minute)."
    ),
    "err_invalid_key": "🔑 DaisySim rejected your API key. Link a new one with /key.",
    "err_account_locked": "🔒 The DaisySim account is temporarily locked. Please try again later.",
    "err_account_suspended": (
        "⛔ The DaisySim account is suspended. Contact DaisySim support (or the operator)."
    ),
    "err_upstream": (
        "📡 DaisySim is not responding right now. Nothing was charged. "
        "Please try again in a minute."
    ),
    "err_purchase_pending": (
        "⏳ DaisySim did not answer. Checking whether the purchase went through — your "
        "money is held, not spent. I'll tell you here as soon as I know."
    ),
    "err_not_found": "🔎 I can't find that order.",
    "err_generic": (
        "⚠️ Something went wrong on our side. Please try again; if it keeps happening, "
        "contact the operator."
    ),
    "btn_try_again": "🔁 Try again",
    "btn_link_key": "🔑 Link a key",
}
