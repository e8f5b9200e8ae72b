"""Screens: (HTML text, keyboard) rendered from engine values. No I/O here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from telegram import InlineKeyboardMarkup

from bot.services.api import (
    AccountUnavailable,
    Activation,
    ActivationNotFound,
    ActivationState,
    EngineError,
    HistoryFilter,
    InsufficientFunds,
    InvalidKey,
    KeyRequired,
    LedgerEntry,
    NotAllowed,
    OrderPage,
    PriceChanged,
    PurchasePending,
    Quote,
    RefundReason,
    Service,
    ServiceStat,
    ServiceUnavailable,
    SoldOut,
    Stats,
    TooBusy,
    WalletView,
)
from bot.telegram import callbacks as cb
from bot.telegram import keyboards as kb
from bot.telegram.texts import (
    Raw,
    fmt_clock,
    fmt_lock,
    fmt_time,
    fmt_wait,
    label,
    money,
    plain,
    t,
)

__all__ = ["Screen"]


@dataclass(frozen=True, slots=True)
class Screen:
    text: str
    markup: InlineKeyboardMarkup | None = None


def _join(*lines: str) -> Raw:
    return Raw("\n".join(line for line in lines if line))


# ------------------------------------------------------------------- menu


def main_menu(lang: str, *, own_key: bool, first_name: str | None = None) -> Screen:
    text = (
        _join(t(lang, "welcome", name=first_name or "there"), "", t(lang, "menu_title"))
        if first_name is not None
        else t(lang, "menu_title")
    )
    return Screen(text, kb.main_menu_kb(lang, own_key=own_key))


def commands_text(lang: str, *, own_key: bool, is_admin: bool = False) -> Raw:
    """The command list (in /help and after an unknown command)."""
    key_line = t(lang, "help_key_line") if own_key else Raw("")
    admin_lines = Raw("")
    if is_admin:
        admin_lines = t(lang, "help_admin_lines")
        if not own_key:
            admin_lines = Raw(admin_lines + t(lang, "help_admin_wallet_lines"))
    return t(lang, "commands", key_line=key_line, admin_lines=admin_lines)


def help_screen(
    lang: str,
    *,
    own_key: bool,
    give_up_minutes: float,
    cancel_lock_seconds: float,
    is_admin: bool = False,
) -> Screen:
    minutes = f"{give_up_minutes:g}"
    return Screen(
        t(
            lang,
            "help",
            give_up=minutes,
            commands=commands_text(lang, own_key=own_key, is_admin=is_admin),
            lock=fmt_lock(cancel_lock_seconds),
        ),
        kb.main_menu_kb(lang, own_key=own_key),
    )


def unknown_command(lang: str, command: str, *, own_key: bool, is_admin: bool = False) -> Screen:
    return Screen(
        t(
            lang,
            "unknown_command",
            command=command,
            commands=commands_text(lang, own_key=own_key, is_admin=is_admin),
        ),
        kb.main_menu_kb(lang, own_key=own_key),
    )


# -------------------------------------------------------------------- buy


def filter_services(services: Sequence[Service], query: str | None) -> list[Service]:
    if not query:
        return list(services)
    q = query.casefold().strip()
    return [s for s in services if q in s.name.casefold() or q in s.code.casefold()]


def order_services(services: Sequence[Service], recent: Sequence[str]) -> list[Service]:
    """Recently bought first (in recency order), then the rest by name."""
    rank = {code: i for i, code in enumerate(recent)}
    first = sorted((s for s in services if s.code in rank), key=lambda s: rank[s.code])
    rest = sorted((s for s in services if s.code not in rank), key=lambda s: s.name.casefold())
    return first + rest


def service_list(
    lang: str,
    services: Sequence[Service],
    recent: Sequence[str],
    page: int,
    query: str | None = None,
) -> Screen:
    ordered = order_services(filter_services(services, query), recent)
    if not ordered:
        if query:
            return Screen(t(lang, "buy_list_empty", query=query), kb.no_match_kb(lang))
        return Screen(t(lang, "buy_no_services"), kb.back_home_kb(lang))
    pages = max(1, math.ceil(len(ordered) / kb.SERVICES_PER_PAGE))
    page = min(max(1, page), pages)
    chunk = ordered[(page - 1) * kb.SERVICES_PER_PAGE : page * kb.SERVICES_PER_PAGE]
    title = t(lang, "buy_list_filtered", query=query) if query else t(lang, "buy_list_title")
    return Screen(title, kb.services_kb(lang, chunk, set(recent), page, pages))


def pools(lang: str, service: Service) -> Screen:
    return Screen(t(lang, "buy_pools_title", name=service.name), kb.pools_kb(lang, service))


def _balance_line(lang: str, quote: Quote) -> Raw:
    if quote.balance is None or quote.balance_after is None:
        return t(lang, "buy_confirm_balance_unknown")
    return t(lang, "buy_confirm_balance_line", balance=quote.balance,
             balance_after=quote.balance_after)


def can_afford(quote: Quote) -> bool:
    """False when the known balance is below the price (unknown balance: let the
    purchase decide)."""
    return quote.balance is None or quote.balance >= quote.price


def insufficient(
    lang: str,
    price: Decimal,
    balance: Decimal | None,
    *,
    own_key: bool,
    user_id: int | None = None,
    service: Service | None = None,
) -> Screen:
    """Not enough balance: what it costs, what the user has, how to top up. No Confirm."""
    if own_key:
        step = t(lang, "err_insufficient_own_key")
    elif user_id is not None:
        step = t(lang, "err_insufficient_operator_id", user_id=user_id)
    else:
        step = t(lang, "err_insufficient_operator")
    if balance is None:
        text = t(lang, "err_insufficient_unknown", price=price, next_step=step)
    else:
        text = t(lang, "err_insufficient", price=price, balance=balance, next_step=step)
    return Screen(text, kb.insufficient_kb(lang, service))


def _pool_line(lang: str, quote: Quote) -> Raw:
    if not quote.service.multi_pool:
        return Raw("")
    if quote.provider_id is None:  # cheapest available: say which pool it is now
        if quote.pool is None:
            return t(lang, "buy_confirm_cheapest_line")
        return t(lang, "buy_confirm_cheapest_pool_line", pool=quote.pool)
    return t(lang, "buy_confirm_pool_line", pool=quote.provider_id)


def confirm(
    lang: str,
    quote: Quote,
    nonce: str,
    *,
    cancel_lock_seconds: float,
    own_key: bool = False,
    user_id: int | None = None,
) -> Screen:
    """The confirmation screen, or the "not enough balance" screen (no Confirm)
    when the known balance is below the price."""
    service = quote.service
    if not can_afford(quote):
        return insufficient(lang, quote.price, quote.balance, own_key=own_key, user_id=user_id,
                            service=service)
    text = t(
        lang,
        "buy_confirm",
        name=service.name,
        pool_line=_pool_line(lang, quote),
        price=quote.price,
        balance_line=_balance_line(lang, quote),
        lock=fmt_lock(cancel_lock_seconds),
    )
    return Screen(text, kb.confirm_kb(lang, service, quote.provider_id, quote.price, nonce))


def price_changed(
    lang: str, quote: Quote, nonce: str, *, own_key: bool = False, user_id: int | None = None
) -> Screen:
    if not can_afford(quote):
        return insufficient(lang, quote.price, quote.balance, own_key=own_key, user_id=user_id,
                            service=quote.service)
    text = t(
        lang,
        "err_price_changed",
        name=quote.service.name,
        price=quote.price,
        pool_line=_pool_line(lang, quote),
        balance_line=_balance_line(lang, quote),
    )
    return Screen(
        text, kb.confirm_kb(lang, quote.service, quote.provider_id, quote.price, nonce)
    )


# ------------------------------------------------------------------ order


def _status(lang: str, a: Activation, now: float) -> Raw:
    state = a.state
    if state == ActivationState.WAITING:
        return t(lang, "status_waiting", at=fmt_time(a.expires_at))
    if state == ActivationState.REFUNDED:
        amount = a.refund_amount if a.refund_amount is not None else a.price
        key = (
            "status_refunded_expired"
            if a.refund_reason == RefundReason.EXPIRED
            else "status_refunded"
        )
        return t(lang, key, amount=amount)
    if state == ActivationState.FAILED:
        if a.refund_amount:
            return t(lang, "status_failed_refunded", amount=a.refund_amount)
        if a.remote_id is None:
            return t(lang, "status_not_bought")
        return t(lang, "status_failed")
    return t(lang, f"status_{state.value}")


def order(lang: str, a: Activation, now: float) -> Screen:
    lines: list[str] = [t(lang, "order_title", name=a.service_name)]
    if a.provider_id:
        lines.append(t(lang, "order_pool", pool=a.provider_id))
    lines.append(
        t(lang, "order_number", phone=a.phone) if a.phone else t(lang, "order_number_pending")
    )
    lines.append(t(lang, "order_price", price=a.price))
    lines.append(t(lang, "order_status", status=_status(lang, a, now)))
    if a.state == ActivationState.COMPLETED and a.code:
        lines.append(t(lang, "order_code", code=a.code))
    if a.state == ActivationState.PURCHASING:
        lines.append("")
        lines.append(t(lang, "order_pending"))
    if a.state == ActivationState.WAITING:
        lines.append("")
        if a.cancel_available(now):
            lines.append(t(lang, "order_cancel_open"))
        else:
            at, left, as_of = fmt_wait(a.cancel_after, now)
            lines.append(t(lang, "order_cancel_locked", at=at, left=left, now=as_of))
    return Screen(Raw("\n".join(lines)), kb.order_kb(lang, a, now))


def order_moved(lang: str) -> Screen:
    """What an order message says once the order moved to a newer message."""
    return Screen(t(lang, "order_moved"))


def otp(lang: str, a: Activation) -> Screen:
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
        key = "notify_not_bought_own_key" if own_key else "notify_not_bought"
        return t(lang, key, name=a.service_name)
    outcome = (
        t(lang, "notify_failed_refunded", amount=a.refund_amount)
        if a.refund_amount
        else t(lang, "notify_failed_nothing")
    )
    return t(lang, "notify_failed", name=a.service_name, outcome=outcome)


def expired_notice(lang: str, a: Activation) -> Raw:
    return t(lang, "notify_expired", name=a.service_name, phone=a.phone or "")


# --------------------------------------------------------- lists and wallet


def _short_status(lang: str, a: Activation) -> Raw:
    """One vocabulary with the order message: "refunded · cancelled by you"..."""
    if a.state == ActivationState.COMPLETED:
        return t(lang, "st_completed", code=a.code or "")
    if a.state == ActivationState.REFUNDED:
        if a.refund_reason == RefundReason.EXPIRED:
            return t(lang, "st_refunded_expired")
        return t(lang, "st_refunded")
    if a.state == ActivationState.FAILED:
        return t(lang, "st_failed_refunded" if a.refund_amount else "st_failed")
    return t(lang, f"st_{a.state.value}")


def active_list(lang: str, items: Sequence[Activation], now: float) -> Screen:
    if not items:
        return Screen(t(lang, "active_empty"), kb.activation_list_kb(lang, ()))
    lines = [t(lang, "active_title", count=len(items)), ""]
    for a in items:
        lines.append(
            t(lang, "active_line", name=a.service_name, phone=a.phone or "…",
              status=_status(lang, a, now))
        )
    return Screen(Raw("\n".join(lines)), kb.activation_list_kb(lang, items))


def history(lang: str, page: OrderPage, current: HistoryFilter | None = None) -> Screen:
    current = current or page.filter
    title = t(
        lang,
        "history_title",
        filter=label(lang, f"hist_{current}"),
        page=page.page,
        pages=page.pages,
        total=plain(
            lang,
            "history_count_one" if page.total == 1 else "history_count_many",
            n=page.total,
        ),
    )
    lines = [title, t(lang, "history_utc"), ""]
    if not page.items:
        lines.append(t(lang, "history_empty"))
    for a in page.items:
        lines.append(
            t(
                lang,
                "history_line",
                date=fmt_clock(a.purchased_at),
                name=a.service_name,
                phone=a.phone or "—",
                price=a.price,
                status=_short_status(lang, a),
            )
        )
    return Screen(Raw("\n".join(lines)), kb.history_kb(lang, current, page.page, page.pages))


def wallet(lang: str, view: WalletView, *, has_key: bool, user_id: int | None = None) -> Screen:
    lines = [t(lang, "wallet_title"), ""]
    own_key = view.mode == "own_key"
    if own_key:
        if not has_key:
            lines.append(t(lang, "wallet_no_key"))
        elif view.balance is None:
            lines.append(t(lang, "wallet_own_key_unknown", email=view.email or "—"))
        else:
            lines.append(t(lang, "wallet_own_key", balance=view.balance, email=view.email or "—"))
    else:
        lines.append(
            t(
                lang,
                "wallet_operator",
                balance=view.balance or Decimal("0"),
                user_id=user_id if user_id is not None else "—",
            )
        )
        lines.append("")
        lines.append(t(lang, "wallet_ledger_title"))
        if not view.ledger:
            lines.append(t(lang, "wallet_ledger_empty"))
        for entry in view.ledger:
            lines.append(
                t(
                    lang,
                    "wallet_ledger_line",
                    date=fmt_clock(entry.created_at),
                    amount=Raw(_signed(entry.amount)),
                    what=ledger_label(lang, entry),
                )
            )
    lines.append("")
    lines.append(
        t(lang, "wallet_summary", active=view.active_count, spent=view.spent_this_month)
    )
    return Screen(Raw("\n".join(lines)), kb.wallet_kb(lang, own_key=own_key, has_key=has_key))


_LEDGER_KINDS = frozenset(
    f"ledger_{k}" for k in ("credit", "debit", "hold", "release", "charge", "refund")
)
# Refund notes written by older versions of the engine (before LedgerEntry carried
# the reason): internal codes, never shown as such.
_REFUND_NOTES: dict[str, RefundReason] = {
    "refund (user_cancel)": RefundReason.USER_CANCEL,
    "refund (expired)": RefundReason.EXPIRED,
    "refund (failed)": RefundReason.FAILED,
    "not found": RefundReason.FAILED,
}


def ledger_label(lang: str, entry: LedgerEntry) -> str:
    """A wallet movement in words: "WhatsApp 3 · purchase", "Signal · refund · you
    cancelled", "top-up · bank transfer". Internal notes are never shown."""
    kind_key = f"ledger_{entry.kind}"
    what = label(lang, kind_key) if kind_key in _LEDGER_KINDS else entry.kind
    if entry.kind == "refund":
        reason = entry.refund_reason or _REFUND_NOTES.get(entry.note.strip().casefold())
        if reason is not None:
            what = label(lang, f"ledger_refund_{reason.value}")
    if entry.kind in ("credit", "debit") or kind_key not in _LEDGER_KINDS:
        note = " ".join(entry.note.split())
        if note and note.casefold() != what.casefold():
            what = label(lang, "ledger_with_note", what=what, note=note)
    if entry.service_name:
        what = label(lang, "ledger_with_name", name=entry.service_name, what=what)
    return what


def _signed(amount: Decimal) -> str:
    return money(amount, signed=True)


# ------------------------------------------------------------------- admin


def _stat_line(lang: str, st: ServiceStat) -> Raw:
    if st.provider_id:
        pool = t(lang, "admin_pool", pool=st.provider_id)
    elif st.multi_pool:
        pool = t(lang, "admin_pool", pool=label(lang, "admin_pool_cheapest"))
    else:
        pool = Raw("")
    waiting = t(lang, "admin_service_open", count=st.open) if st.open else Raw("")
    rate = st.finished_success_rate
    if rate is None:
        return t(lang, "admin_service_line_unfinished", name=st.service_name, pool=pool,
                 open=waiting)
    return t(
        lang,
        "admin_service_line",
        name=st.service_name,
        pool=pool,
        completed=st.completed,
        finished=st.finished,
        rate=f"{rate * 100:.0f}",
        open=waiting,
    )


def stats(lang: str, s: Stats) -> Screen:
    states = [
        t(lang, "admin_state_line", state=name, count=count)
        for name, count in sorted(s.activations_by_state.items())
    ]
    services = [_stat_line(lang, st) for st in s.per_service]
    none = t(lang, "admin_none")
    text = t(
        lang,
        "admin_stats",
        users=s.users,
        completed_spend=s.completed_spend,
        open_spend=s.open_spend,
        states=Raw("\n".join(states) or none),
        services=Raw("\n".join(services) or none),
    )
    if s.strays_cancelling[0] or s.strays_refunded[0] or s.strays_lost[0]:
        text = Raw(
            text
            + t(
                lang,
                "admin_strays",
                refunded_count=s.strays_refunded[0],
                refunded=s.strays_refunded[1],
                open_count=s.strays_cancelling[0],
                open=s.strays_cancelling[1],
                lost_count=s.strays_lost[0],
                lost=s.strays_lost[1],
            )
        )
    return Screen(text)


# ------------------------------------------------------------------ errors


def engine_error(
    lang: str,
    exc: EngineError,
    *,
    own_key: bool,
    retry: str | None = None,
    app: str | None = None,
    pool: str | None = None,
    nonce: str | None = None,
    user_id: int | None = None,
    service: Service | None = None,
) -> Screen:
    """The message and next step for every engine error (``user_id``: shown in
    operator mode so the user can ask an admin to top up)."""
    if isinstance(exc, SoldOut):
        service = exc.service
        pool = exc.pool if exc.pool is not None else pool  # the pool that has no numbers
        name = service.name if service is not None else (app or "")
        if service is not None and service.multi_pool:
            others = [p for p in service.pools if p.provider_id != pool and p.count > 0]
            if pool is not None and others:
                text = t(lang, "err_out_of_stock_pool", pool=pool, name=name)
            elif others:
                text = t(lang, "err_out_of_stock", name=name)
            else:
                text = t(lang, "err_out_of_stock_all", name=name)
            return Screen(text, kb.out_of_stock_kb(lang, service, pool, service.code))
        return Screen(
            t(lang, "err_out_of_stock", name=name),
            kb.out_of_stock_kb(lang, service, pool, app or (service.code if service else "")),
        )
    if isinstance(exc, InsufficientFunds):
        return insufficient(lang, exc.price, exc.balance, own_key=own_key, user_id=user_id,
                            service=service)
    if isinstance(exc, PriceChanged):
        if exc.quote is None:
            return Screen(t(lang, "err_service_gone"), kb.error_kb(lang, retry=cb.buy_list(1)))
        return price_changed(lang, exc.quote, nonce or cb.new_nonce(), own_key=own_key,
                             user_id=user_id)
    if isinstance(exc, TooBusy):
        seconds = max(1, math.ceil(exc.retry_after))
        return Screen(t(lang, "err_rate_limited", seconds=seconds), kb.error_kb(lang, retry=retry))
    if isinstance(exc, KeyRequired):
        return Screen(t(lang, "err_key_required"), kb.error_kb(lang, key=True))
    if isinstance(exc, InvalidKey):
        return Screen(t(lang, "err_invalid_key"), kb.error_kb(lang, key=True))
    if isinstance(exc, AccountUnavailable):
        key = "err_account_locked" if exc.locked else "err_account_suspended"
        return Screen(t(lang, key), kb.error_kb(lang))
    if isinstance(exc, ActivationNotFound):
        return Screen(t(lang, "err_not_found"), kb.error_kb(lang))
    if isinstance(exc, ServiceUnavailable):
        return Screen(t(lang, "err_service_gone"), kb.error_kb(lang, retry=cb.buy_list(1)))
    if isinstance(exc, NotAllowed):
        return Screen(t(lang, "not_allowed"), kb.error_kb(lang))
    if isinstance(exc, PurchasePending):  # never "nothing was charged": not known
        return Screen(t(lang, "err_purchase_pending"), kb.error_kb(lang))
    # UpstreamUnavailable and anything new
    return Screen(t(lang, "err_upstream"), kb.error_kb(lang, retry=retry))


def error_alert(lang: str, exc: EngineError) -> str:
    """Short plain text for an answerCallbackQuery (≤ 200 characters)."""
    screen_key = {
        ActivationNotFound: "err_not_found",
        NotAllowed: "not_allowed",
        KeyRequired: "err_key_required",
        InvalidKey: "err_invalid_key",
    }
    for cls, key in screen_key.items():
        if isinstance(exc, cls):
            return plain(lang, key)
    if isinstance(exc, TooBusy):
        return plain(lang, "err_rate_limited", seconds=max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, AccountUnavailable):
        return plain(lang, "err_account_locked" if exc.locked else "err_account_suspended")
    if isinstance(exc, PurchasePending):
        return plain(lang, "err_purchase_pending")
    return plain(lang, "err_upstream")
