"""Every user-facing text of the bot, per language.

Texts are HTML (the bot sends with ``parse_mode=HTML``). Placeholders use
``str.format`` syntax; :func:`t` escapes every value with :func:`html.escape`
unless it is wrapped in :class:`Raw` (already-safe HTML built from this
catalogue). English is complete; add a language by adding a dict with the same
keys to :data:`CATALOGUE` (``tests/e2e/test_texts.py`` checks keys and
placeholders match English).
"""

from __future__ import annotations

import html
import math
import re
import string
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

__all__ = [
    "CATALOGUE",
    "DEFAULT_LANG",
    "Raw",
    "fmt_clock",
    "fmt_duration",
    "fmt_lock",
    "fmt_time",
    "fmt_wait",
    "label",
    "money",
    "pick_lang",
    "placeholders",
    "plain",
    "seconds_until",
    "strip_html",
    "t",
]

DEFAULT_LANG: Final = "en"


class Raw(str):
    """A string that is already safe HTML (not escaped again by :func:`t`)."""

    __slots__ = ()


EN: dict[str, str] = {
    # ------------------------------------------------------------------ menu
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
    "btn_buy": "🛒 Buy a number",
    "btn_active": "📱 Active numbers",
    "btn_wallet": "💰 Wallet",
    "btn_history": "📜 History",
    "btn_key": "🔑 API key",
    "btn_help": "❓ Help",
    "btn_home": "🏠 Menu",
    "btn_back": "⬅️ Back",
    "btn_prev": "◀️ Prev",
    "btn_next": "Next ▶️",
    "btn_page": "{page}/{pages}",
    "cancelled": "Okay, stopped. /start opens the menu.",
    "flow_cancelled": "✖️ Cancelled.",
    "nothing_to_cancel": "There is nothing to cancel. /start opens the menu.",
    "unknown_text": "I didn't get that. Use the buttons below or /help.",
    "unknown_command": "🤷 Unknown command {command}.\n\n{commands}",
    # ---------------------------------------------------------------- access
    "access_denied": (
        "⛔ This bot is private. Your Telegram id is <code>{user_id}</code> — "
        "ask the operator to allow it."
    ),
    "group_refusal": "I only work in private chats. Open a direct chat with me to buy numbers.",
    "not_allowed": "⛔ You are not allowed to do that.",
    # ------------------------------------------------------------------- buy
    "buy_list_title": "🛒 <b>Choose a service</b>\nPrices in USD. Type part of a name to filter.",
    "buy_list_filtered": (
        "🛒 <b>Services matching “{query}”</b>\nType another name to search again."
    ),
    "buy_list_empty": (
        "No service matches “{query}”. Type another name, or tap “All services”."
    ),
    "btn_all_services": "⬅️ All services",
    "btn_pick_another": "⬅️ Pick another service",
    "buy_no_services": "No services are available right now. Please try again later.",
    "btn_service": "{name} · {price}",
    "btn_service_recent": "🕘 {name} · {price}",
    "btn_service_multi": "{name} · from {price}",
    "btn_service_multi_recent": "🕘 {name} · from {price}",
    "buy_pools_title": (
        "<b>{name}</b>\nChoose a pool. ⚡ <i>Cheapest available</i> takes the cheapest pool "
        "that has numbers right now."
    ),
    "btn_cheapest": "⚡ Cheapest available · {price}",
    "btn_pool": "Pool {pool} · {price} · {count} left",
    "btn_pool_empty": "Pool {pool} · {price} · sold out",
    "buy_confirm": (
        "<b>Confirm your purchase</b>\n\n"
        "Service: <b>{name}</b>\n"
        "{pool_line}"
        "Price: <b>{price}</b>\n"
        "{balance_line}\n"
        "If no SMS arrives, you can cancel for a full refund {lock} after purchase."
    ),
    "buy_confirm_pool_line": "Pool: {pool}\n",
    "buy_confirm_cheapest_line": "Pool: cheapest available\n",
    "buy_confirm_cheapest_pool_line": "Pool: {pool} (cheapest available)\n",
    "buy_confirm_balance_line": "Balance: {balance} → <b>{balance_after}</b> after purchase\n",
    "buy_confirm_balance_unknown": "",
    "btn_confirm": "✅ Confirm · {price}",
    "buy_buying": "⏳ Buying a <b>{name}</b> number…",
    "cb_buying": "Buying…",
    "cb_confirm_again": "Please check the current price and confirm again.",
    "cb_already_buying": "This purchase is already being made — one tap is enough.",
    "buy_duplicate_done": "This purchase was already made — here is the order:",
    "buy_timeout": "⌛ This menu timed out. Use /buy to start again.",
    # ------------------------------------------------------------- the order
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
    "notify_expired": (
        "⌛ No SMS arrived for <b>{name}</b> (<code>{phone}</code>) in time — "
        "the number is being cancelled and refunded."
    ),
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
    "cb_stale": "This button is no longer valid. Use /start for a fresh menu.",
    # A user sent far more than the bot could answer while busy with their request
    # (bot/telegram/flood.py): the excess was skipped. Sent once per burst.
    "flood_note": (
        "⏳ I'm still working on your earlier request and couldn't queue everything you "
        "sent meanwhile, so I skipped some of it. Please repeat anything you still need "
        "once I've answered."
    ),
    "flood_toast": "⏳ Still working on your earlier request — one moment, please.",
    "cb_done": "OK",
    # ---------------------------------------------------------------- errors
    "err_out_of_stock_pool": (
        "😕 Pool {pool} of <b>{name}</b> has no numbers right now. Pick another pool:"
    ),
    "err_out_of_stock": (
        "😕 <b>{name}</b> has no numbers right now. Try again in a little while, or pick "
        "another service."
    ),
    "err_out_of_stock_all": (
        "😕 No pool of <b>{name}</b> has numbers right now. Try again in a little while."
    ),
    "err_insufficient": (
        "💸 <b>Not enough balance</b>: you have {balance}, this costs {price}.\n\n{next_step}"
    ),
    "err_insufficient_unknown": "💸 <b>Not enough balance</b>: this costs {price}.\n\n{next_step}",
    "err_insufficient_own_key": "Top up your DaisySim wallet, then try again.",
    "err_insufficient_operator": "Ask an admin to top up your wallet, then try again.",
    "err_insufficient_operator_id": (
        "Ask an admin to top up your wallet — your ID is <code>{user_id}</code>."
    ),
    "err_price_changed": (
        "💱 The price of <b>{name}</b> changed to <b>{price}</b>.\n{pool_line}{balance_line}\n"
        "Confirm the new price?"
    ),
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
    # ---------------------------------------------------------------- wallet
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
    # ---------------------------------------------------------------- active
    "active_title": "📱 <b>Active numbers</b> ({count})",
    "active_empty": "You have no active numbers. Tap Buy to get one.",
    "active_line": "• {name} <code>{phone}</code> — {status}",
    "btn_open_order": "{name} · {phone}",
    "order_reopened": "Here is your order:",
    # --------------------------------------------------------------- history
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
    # ------------------------------------------------------------------- key
    "key_prompt": (
        "🔑 Send me your <b>DaisySim API key</b> as a message.\n\n"
        "I delete your message right away, check the key with DaisySim and store it "
        "encrypted. /cancel to stop."
    ),
    "key_current": "🔑 Linked key: <code>{masked}</code>",
    "key_prompt_replace": "Send a new key to replace it, or /cancel.",
    "key_checking": "⏳ Checking the key with DaisySim…",
    "key_linked": (
        "✅ Key linked: <code>{masked}</code>\nDaisySim balance: <b>{balance}</b>\nAccount: {email}"
    ),
    "key_invalid": "❌ DaisySim rejected that key. Send another one, or /cancel.",
    "key_malformed": "That doesn't look like an API key. Send just the key, or /cancel.",
    "key_delete_failed": (
        "⚠️ I couldn't delete your message with the key — please delete it yourself."
    ),
    "key_remove_confirm": (
        "Remove the linked key <code>{masked}</code>? Numbers you already bought keep working."
    ),
    "key_removed": "🗑 Key removed. Use /key to link one again.",
    "key_kept": "Okay, the key stays linked.",
    "key_none": "No key is linked.",
    "key_operator_mode": (
        "This bot pays with the operator's DaisySim account — you don't need a key."
    ),
    "key_timeout": "⌛ I stopped waiting for the key. Use /key to try again.",
    "key_paste_deleted": (
        "🔑 That looks like a DaisySim API key — I deleted your message so it doesn't stay "
        "in the chat, and I'm linking the key to your account."
    ),
    "key_paste_intro": (
        "🔑 That looks like a DaisySim API key — I'm linking it to your account."
    ),
    "key_paste_invalid": (
        "❌ DaisySim rejected that key, so nothing was linked. Use /key to try another one."
    ),
    "btn_remove_key": "🗑 Remove key",
    "btn_remove_yes": "Yes, remove it",
    "btn_remove_no": "No, keep it",
    # ----------------------------------------------------------------- admin
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
    # -------------------------------------------------------------- commands
    "cmd_start": "Main menu",
    "cmd_buy": "Buy a number",
    "cmd_active": "Active numbers",
    "cmd_wallet": "Balance and spending",
    "cmd_history": "Past orders",
    "cmd_key": "Link or remove your DaisySim key",
    "cmd_help": "How it works",
    "cmd_cancel": "Leave the current step",
}

CATALOGUE: dict[str, dict[str, str]] = {"en": EN}


def pick_lang(code: str | None, default: str = DEFAULT_LANG) -> str:
    """The catalogue language for a Telegram ``language_code`` (``"en-US"`` → ``"en"``)."""
    if code:
        base = code.split("-")[0].lower()
        if base in CATALOGUE:
            return base
    return default if default in CATALOGUE else DEFAULT_LANG


def _escape(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Decimal):
        return html.escape(money(value))
    return html.escape(str(value), quote=False)


def t(lang: str, key: str, /, **values: object) -> Raw:
    """Render text ``key`` in ``lang`` (English fallback), HTML-escaping every value."""
    table = CATALOGUE.get(lang, EN)
    template = table.get(key)
    if template is None:
        template = EN[key]  # KeyError for a missing key: a programming error
    return Raw(template.format(**{name: _escape(v) for name, v in values.items()}))


def label(lang: str, key: str, /, **values: object) -> str:
    """Render a button label or plain (non-HTML) text: values are not escaped."""
    table = CATALOGUE.get(lang, EN)
    template = table.get(key)
    if template is None:
        template = EN[key]
    return template.format(
        **{n: (money(v) if isinstance(v, Decimal) else str(v)) for n, v in values.items()}
    )


_TAG = re.compile(r"<[^>]+>")


def strip_html(text: str) -> str:
    """HTML text → plain text (for answerCallbackQuery and alerts)."""
    return html.unescape(_TAG.sub("", text))


def plain(lang: str, key: str, /, **values: object) -> str:
    """Render text ``key`` as plain text (tags removed), at most 200 characters."""
    return strip_html(t(lang, key, **values))[:200]


def placeholders(template: str) -> set[str]:
    """Names of the ``{placeholders}`` in a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


_CENT = Decimal("0.01")
_FOUR = Decimal("0.0001")


def money(amount: Decimal | None, *, signed: bool = False) -> str:
    """``Decimal("1.0830")`` → ``"$1.083"``; at least 2 and at most 4 decimals."""
    if amount is None:
        return "—"
    value = amount.quantize(_FOUR, rounding=ROUND_HALF_UP)
    text = f"{abs(value):f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}${whole}.{frac}"


def fmt_duration(seconds: float) -> str:
    """A wait, exact to the second (rounded up: never shorter than the truth):
    ``161`` → ``"2:41"``, ``1200`` → ``"20:00"``, ``3725`` → ``"1:02:05"``."""
    secs = max(0, math.ceil(seconds - 1e-9))
    hours, rest = divmod(secs, 3600)
    if hours:
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{rest // 60}:{rest % 60:02d}"


def fmt_lock(seconds: float) -> str:
    """The cancel lock in words: ``180`` → ``"3 minutes"``, ``30`` → ``"30 seconds"``."""
    secs = max(0, round(seconds))
    if secs and secs % 60 == 0:
        minutes = secs // 60
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    return "1 second" if secs == 1 else f"{secs} seconds"


# Times are exact to the precision they show: a whole second is rounded in the
# direction that keeps the sentence true (an "available from" time up — never early;
# "now", "expires" and past events down), and the minute-only form is used only
# when the time is exactly on the minute. (Issue 9: "available at 08:03" for a
# button that opened at 08:02:11 was false.)


def _whole_second(timestamp: float, round_up: bool) -> int:
    # 1e-6: a float sum like 1000.0 + 180.0000000001 must not jump a second
    return math.ceil(timestamp - 1e-6) if round_up else math.floor(timestamp + 1e-6)


def _exact(seconds: int, minute_form: str, second_form: str) -> str:
    when = datetime.fromtimestamp(seconds, tz=UTC)
    return when.strftime(minute_form if when.second == 0 else second_form)


def fmt_clock(timestamp: float) -> str:
    """A past event's UTC date and time: ``2026-01-01 00:03`` on the whole minute,
    else ``2026-01-01 00:03:41`` (screens say once that times are UTC)."""
    return _exact(_whole_second(timestamp, False), "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def fmt_time(timestamp: float, *, round_up: bool = False) -> str:
    """A UTC time of day: ``"17:42 UTC"`` on the whole minute, else
    ``"17:42:05 UTC"``. ``round_up``: for "from" times (the whole second at or
    after ``timestamp``: never early); otherwise the second it falls in."""
    return _exact(_whole_second(timestamp, round_up), "%H:%M UTC", "%H:%M:%S UTC")


def fmt_wait(until: float, now: float) -> tuple[str, str, str]:
    """``(at, left, as_of)`` for "available from {at} (in {left} as of {as_of})":
    ``at`` rounded up, ``as_of`` down, and ``left`` exactly their difference as
    shown, so the three always agree (and none promises a moment too early)."""
    at = _whole_second(until, True)
    as_of = _whole_second(now, False)
    return fmt_time(at), fmt_duration(max(0, at - as_of)), fmt_time(as_of)


def seconds_until(until: float, now: float) -> int:
    """Whole seconds from the second ``now`` is in to the first whole second at or
    after ``until`` (what :func:`fmt_wait` shows as ``left``); at least 1."""
    return max(1, _whole_second(until, True) - _whole_second(now, False))
