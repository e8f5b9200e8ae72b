"""Read-only queries for reports (admin stats). State groups come from the domain
(:mod:`bot.domain.activation`), never from literals here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain.activation import OPEN_STATES, POLLABLE_STATES, ActivationState
from storage.db import Database
from storage.rows import dec

__all__ = ["ReportRepo", "ServiceStateCount", "WalletFigures"]

# Bought (a number was assigned) and not refunded/failed: what was spent.
_SPENT_STATES: tuple[str, ...] = (
    ActivationState.COMPLETED.value, *(s.value for s in POLLABLE_STATES)
)

_OPEN: tuple[str, ...] = tuple(s.value for s in OPEN_STATES)
_NOT_SPENT: tuple[str, ...] = (ActivationState.REFUNDED.value, ActivationState.FAILED.value)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


@dataclass(frozen=True, slots=True)
class ServiceStateCount:
    service_name: str
    provider_id: str | None
    state: str
    count: int
    multi_pool: bool  # an ``sb_*`` service code (several pools)


@dataclass(frozen=True, slots=True)
class WalletFigures:
    active_count: int  # the user's open orders
    spent: Decimal  # bought (not refunded/failed) in the period asked for


class ReportRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def service_state_counts(self) -> list[ServiceStateCount]:
        """Bought orders (a number was assigned) per service, pool and state."""
        rows = await self.db.fetchall(
            "SELECT service_name, provider_id, state, COUNT(*) AS n,"
            " MAX(CASE WHEN substr(service_code, 1, 3) = 'sb_' THEN 1 ELSE 0 END) AS sb"
            " FROM activations WHERE remote_id IS NOT NULL"
            " GROUP BY service_name, provider_id, state"
        )
        return [
            ServiceStateCount(
                str(r["service_name"]), r["provider_id"], str(r["state"]), int(r["n"]),
                bool(int(r["sb"])),
            )
            for r in rows
        ]

    async def spend_by_state(self) -> list[tuple[str, Decimal]]:
        """(state, price) of every bought order that is completed or still open."""
        rows = await self.db.fetchall(
            "SELECT state, price FROM activations WHERE remote_id IS NOT NULL"
            f" AND state IN ({_marks(len(_SPENT_STATES))})",
            _SPENT_STATES,
        )
        return [(str(r["state"]), dec(r["price"])) for r in rows]

    async def wallet_figures(self, user_id: int, since: float, until: float) -> WalletFigures:
        """The wallet screen's order figures in one statement: open orders (as
        the active list counts them) and the prices of orders bought in
        [since, until) and not refunded or failed (summed exactly, in Decimal)."""
        rows = await self.db.fetchall(
            "SELECT 0 AS part, COUNT(*) AS v FROM activations WHERE user_id = ?"
            f" AND state IN ({_marks(len(_OPEN))})"
            " UNION ALL"
            " SELECT 1, price FROM activations WHERE user_id = ? AND remote_id IS NOT NULL"
            f" AND state NOT IN ({_marks(len(_NOT_SPENT))})"
            " AND purchased_at >= ? AND purchased_at < ?",
            (user_id, *_OPEN, user_id, *_NOT_SPENT, since, until),
        )
        count = sum(int(r["v"]) for r in rows if r["part"] == 0)
        spent = sum((dec(r["v"]) for r in rows if r["part"] == 1), Decimal(0))
        return WalletFigures(count, spent)
