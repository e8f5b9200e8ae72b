"""Reports: an order, the active list, history pages, the wallet screen, recent
services, and the admin's wallet adjustments and stats. All SQL is in storage
(:mod:`storage.reports` for the stats)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from bot.daisysim import errors as ds
from bot.domain.activation import OPEN_STATES, ActivationState
from bot.domain.funding import Funds
from bot.domain.strays import StrayState
from bot.services.accounts import Accounts
from bot.services.api import (
    Activation,
    ActivationNotFound,
    HistoryFilter,
    KeyRequired,
    LedgerEntry,
    OrderPage,
    RefundReason,
    ServiceStat,
    Stats,
    WalletView,
)
from bot.services.errors import map_error
from bot.services.runtime import Runtime
from storage.ledger import LedgerLine
from storage.reports import ReportRepo
from storage.rows import ActivationRow

__all__ = ["HISTORY_STATES", "Reports"]

logger = logging.getLogger("bot.services")

S = ActivationState
HISTORY_STATES: dict[str, tuple[ActivationState, ...] | None] = {
    "all": None,
    "completed": (S.COMPLETED,),
    "waiting": OPEN_STATES,
    "cancelled": (S.REFUNDED, S.FAILED),
}
LEDGER_SHOWN = 20


def _month_start(now: float) -> float:
    dt = datetime.fromtimestamp(now, UTC)
    return datetime(dt.year, dt.month, 1, tzinfo=UTC).timestamp()


def _refund_reason(value: str | None) -> RefundReason | None:
    if value is None:
        return None
    try:
        return RefundReason(value)
    except ValueError:
        return None


def _ledger_entry(line: LedgerLine) -> LedgerEntry:
    e = line.entry
    return LedgerEntry(
        e.id, e.amount, e.kind, e.note, e.activation_id, e.created_at,
        service_name=line.service_name,
        refund_reason=_refund_reason(line.refund_reason) if e.kind == "refund" else None,
        charge_id=e.charge_id, charge_entry=e.charge_entry,
    )


class Reports:
    def __init__(self, rt: Runtime, accounts: Accounts) -> None:
        self.rt = rt
        self.accounts = accounts
        self.sql = ReportRepo(rt.db)

    # ------------------------------------------------------------------ orders
    async def _own(self, user_id: int, activation_id: int) -> ActivationRow:
        row = await self.rt.repos.activations.get_for_user(user_id, activation_id)
        if row is None:
            raise ActivationNotFound("no such activation")
        return row

    async def set_message(
        self, user_id: int, activation_id: int, chat_id: int, message_id: int
    ) -> None:
        await self._own(user_id, activation_id)
        await self.rt.repos.activations.update(
            activation_id, chat_id=chat_id, message_id=message_id
        )

    async def get_activation(self, user_id: int, activation_id: int) -> Activation:
        return self.rt.to_activation(await self._own(user_id, activation_id))

    async def active(self, user_id: int) -> list[Activation]:
        rows = await self.rt.repos.activations.list_for_user(user_id, OPEN_STATES, limit=1000)
        return [self.rt.to_activation(r) for r in rows]

    async def history(
        self, user_id: int, filter: HistoryFilter = "all", page: int = 1, per_page: int = 5
    ) -> OrderPage:
        if filter not in HISTORY_STATES:
            raise ValueError(f"unknown history filter {filter!r}")
        repo = self.rt.repos.activations
        per_page = max(1, min(int(per_page), 100))
        states = HISTORY_STATES[filter]
        total = await repo.count_for_user(user_id, states)
        pages = max(1, math.ceil(total / per_page))
        page = max(1, min(int(page), pages))
        rows = await repo.list_for_user(
            user_id, states, limit=per_page, offset=(page - 1) * per_page
        )
        return OrderPage(
            items=tuple(self.rt.to_activation(r) for r in rows),
            page=page, pages=pages, total=total, filter=filter,
        )

    async def recent_services(self, user_id: int, limit: int = 3) -> list[str]:
        return await self.rt.repos.activations.recent_service_codes(user_id, max(0, limit))

    # ------------------------------------------------------------------ wallet
    async def wallet(self, user_id: int) -> WalletView:
        rt = self.rt
        now = rt.clock.now()
        figures = await self.sql.wallet_figures(user_id, _month_start(now), now + 1)
        try:
            acc = await self.accounts.funding_account(user_id)
        except KeyRequired:  # no key linked (yet)
            funds = Funds(None, None)
        else:
            try:
                funds = await rt.policy.funds(user_id, acc.client)
            except ds.DaisySimError as err:
                raise map_error(err) from None
        ledger = await self._ledger(user_id) if rt.policy.shows_ledger else ()
        return WalletView(
            mode=rt.policy.name, balance=funds.balance, email=funds.email, ledger=ledger,
            active_count=figures.active_count, spent_this_month=figures.spent,
        )

    async def _ledger(self, user_id: int) -> tuple[LedgerEntry, ...]:
        rt = self.rt
        # One statement: the entries with their orders' names and refund reasons.
        lines = await rt.repos.ledger.lines(user_id, limit=200)
        open_ids = {
            t.id for t in rt.tracks.values()
            if t.user_id == user_id and t.state == S.PURCHASING
        }
        visible = [
            line for line in lines
            # Hold/release pairs are bookkeeping; show only holds still open.
            if line.entry.kind not in ("hold", "release")
            or (line.entry.kind == "hold" and line.entry.activation_id in open_ids)
        ][:LEDGER_SHOWN]
        return tuple(_ledger_entry(line) for line in visible)

    # ------------------------------------------------------------------ admin
    async def admin_adjust(
        self, admin_id: int, user_id: int, amount: Decimal, note: str
    ) -> Decimal:
        self.accounts.require_admin(admin_id)
        note = (note or "").strip()[:500]
        balance = await self.rt.policy.adjust(admin_id, user_id, amount, note)
        logger.info("admin %d adjusted user %d by %s", admin_id, user_id, amount)
        return balance

    async def stats(self, admin_id: int) -> Stats:
        self.accounts.require_admin(admin_id)
        repos = self.rt.repos
        groups: dict[tuple[str, str | None], dict[str, int]] = {}
        multi: set[str] = set()
        for c in await self.sql.service_state_counts():
            counts = groups.setdefault((c.service_name, c.provider_id), {})
            counts[c.state] = counts.get(c.state, 0) + c.count
            if c.provider_id is not None or c.multi_pool:
                multi.add(c.service_name)
        per_service = [
            ServiceStat(
                service_name=name,
                provider_id=pid,
                total=sum(counts.values()),
                completed=counts.get(S.COMPLETED, 0),
                open=_count(counts, OPEN_STATES),
                refunded=counts.get(S.REFUNDED, 0),
                failed=counts.get(S.FAILED, 0),
                multi_pool=name in multi,
            )
            for (name, pid), counts in groups.items()
        ]
        per_service.sort(key=lambda st: (-st.total, st.service_name, st.provider_id or ""))
        spend = await self.sql.spend_by_state()
        completed_spend = sum((p for s, p in spend if s == S.COMPLETED), Decimal(0))
        open_spend = sum((p for s, p in spend if s != S.COMPLETED), Decimal(0))
        strays = await repos.strays.summary()
        none = (0, Decimal(0))
        return Stats(
            users=await repos.users.count(),
            activations_by_state=await repos.activations.counts_by_state(),
            spend=sum(await repos.activations.settled_prices(), Decimal(0)),
            per_service=tuple(per_service),
            completed_spend=completed_spend,
            open_spend=open_spend,
            strays_cancelling=strays.get(StrayState.CANCELLING, none),
            strays_refunded=strays.get(StrayState.REFUNDED, none),
            strays_lost=strays.get(StrayState.LOST, none),
        )


def _count(counts: dict[str, int], states: Sequence[ActivationState]) -> int:
    return sum(counts.get(s, 0) for s in states)

