"""The Buy flow's texts: service list, pools, confirmation, buy errors.

English, HTML (see :mod:`bot.telegram.texts`, the one entry point). Key names
are stable message ids: never rename one.
"""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
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
    "buy_timeout": "⌛ This menu timed out. Use /buy to start again.",
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
}
