"""The admin screens: statistics and the /credit, /debit answers."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from bot.services.api import ServiceStat, Stats
from bot.telegram.common.views import Screen, notice
from bot.telegram.texts import N_, Raw, label, t

__all__ = ["adjust_refused", "adjusted", "stats"]


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
