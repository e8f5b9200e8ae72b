"""The main menu's texts: welcome, help, the command list, bot commands.

English, HTML (see :mod:`bot.telegram.texts`, the one entry point). Key names
are stable message ids: never rename one.
"""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
    "welcome": (
        "👋 Hi {name}!\n\n"
        "I buy <b>US virtual numbers</b> for SMS verification through DaisySim. "
        "Pick a service, get a number, and I send you the code as soon as it arrives."
    ),
    "menu_title": "What would you like to do?",
    "help": (
        "<b>How it works</b>\n"
        "1. 🛒 <b>Buy</b>: pick a service (some services let you pick a supplier pool), "
        "confirm the price.\n"
        "2. Use the number where you need the code. I send the code here the moment it "
        "arrives.\n"
        "3. No SMS? {lock} after purchase you can <b>Cancel &amp; refund</b>. "
        "After {give_up} minutes without a code the number is cancelled and refunded "
        "automatically.\n"
        "All times are shown in UTC.\n\n"
        "{commands}"
    ),
    "commands": (
        "<b>Commands</b>\n"
        "/buy – buy a number\n"
        "/active – your active numbers\n"
        "/wallet – balance and spending\n"
        "/history – past orders\n"
        "{key_line}"
        "/cancel – leave the current step\n"
        "/help – how it works"
        "{admin_lines}"
    ),
    "help_key_line": "/key – link or remove your DaisySim API key\n",
    "help_admin_lines": "\n\n<b>Admin</b>\n/admin – statistics",
    "help_admin_wallet_lines": (
        "\n/credit USER_ID AMOUNT [note] – add money to a user's wallet\n"
        "/debit USER_ID AMOUNT [note] – take money out of a user's wallet"
    ),
    "btn_key": "🔑 API key",
    "btn_help": "❓ Help",
    "nothing_to_cancel": "There is nothing to cancel. /start opens the menu.",
    "unknown_text": "I didn't get that. Use the buttons below or /help.",
    "unknown_command": "🤷 Unknown command {command}.\n\n{commands}",
    "cmd_start": "Main menu",
    "cmd_buy": "Buy a number",
    "cmd_active": "Active numbers",
    "cmd_wallet": "Balance and spending",
    "cmd_history": "Past orders",
    "cmd_key": "Link or remove your DaisySim key",
    "cmd_help": "How it works",
    "cmd_cancel": "Leave the current step",
}
