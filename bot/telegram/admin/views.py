"""The admin screens: statistics, the /credit, /debit answers, /price, /prices and
the operator alerts."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from bot.services.api import OperatorAlert, PriceLine, ServiceStat, Stats
from bot.telegram.common.views import Screen, notice
from bot.telegram.texts import N_, Raw, label, t

__all__ = [
    "adjust_refused",
    "adjusted",
    "operator_alert",
    "price_line",
    "price_refused",
    "price_set",
    "prices",
    "stats",
]


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
        rate=format(rate * 100, ".0f"),
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
            + "\n\n"
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


def adjust_refused(
    lang: str, reason: Literal["usage", "user_id", "amount"], *, debit: bool
) -> Screen:
    """Why ``/credit`` / ``/debit`` arguments were refused, and the usage."""
    usage = t(lang, N_("admin_usage_debit") if debit else N_("admin_usage_credit"))
    if reason == "user_id":
        return notice(lang, "admin_bad_user_id", usage=usage)
    if reason == "amount":
        return notice(lang, "admin_bad_amount", usage=usage)
    return Screen(usage)


def adjusted(lang: str, amount: Decimal, user_id: int, balance: Decimal, *, debit: bool) -> Screen:
    key = N_("admin_debited") if debit else N_("admin_credited")
    return notice(lang, key, amount=amount, user_id=user_id, balance=balance)


# --- h-ops: /price, /prices and the operator alerts ---
_SOURCES: dict[str, str] = {
    "admin": N_("admin_price_source_admin"),
    "settings": N_("admin_price_source_settings"),
    "default": N_("admin_price_source_default"),
}


def _range(lang: str, low: Decimal | None, high: Decimal | None) -> object:
    if low is None:
        return "—"
    if high is None or high == low:
        return low
    return t(lang, "admin_price_range", low=low, high=high)


def price_line(lang: str, line: PriceLine) -> Raw:
    source = label(lang, _SOURCES[line.source])
    if line.name is None:
        return t(lang, "admin_prices_line_unknown", code=line.code, rule=line.rule,
                 source=source)
    return t(
        lang, "admin_prices_line", code=line.code, name=line.name, rule=line.rule,
        source=source, cost=_range(lang, line.cost, line.max_cost),
        price=_range(lang, line.price, line.max_price),
    )


def prices(lang: str, default: PriceLine, lines: list[PriceLine]) -> Screen:
    body = [price_line(lang, line) for line in lines] or [t(lang, "admin_prices_none")]
    text = t(lang, "admin_prices_title", rule=default.rule, lines=Raw("\n".join(body)))
    return Screen(text)


def price_set(lang: str, line: PriceLine, *, reset: bool) -> Screen:
    key = N_("admin_price_reset") if reset else N_("admin_price_set")
    return notice(lang, key, line=price_line(lang, line))


def price_refused(
    lang: str, reason: Literal["usage", "rule", "service", "cost"], *, value: str = "",
    price: Decimal | None = None, cost: Decimal | None = None, codes: str = "",
) -> Screen:
    usage = t(lang, "admin_usage_price")
    if reason == "rule":
        return notice(lang, "admin_price_bad_rule", rule=value, usage=usage)
    if reason == "service":
        return notice(lang, "admin_price_unknown_service", code=value, codes=codes)
    if reason == "cost":
        return notice(lang, "admin_price_below_cost", price=price, cost=cost)
    return Screen(usage)


def operator_alert(lang: str, alert: OperatorAlert) -> str:
    if alert.kind == "low_balance":
        return t(lang, "admin_alert_low_balance", balance=alert.balance,
                 threshold=alert.threshold)
    return t(lang, "admin_alert_operator_empty")
