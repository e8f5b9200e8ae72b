"""Read-only queries for reports (admin stats). State groups come from the domain
(:mod:`bot.domain.activation`), never from literals here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain.activation import POLLABLE_STATES, ActivationState
from storage.db import Database
from storage.rows import dec

__all__ = ["ReportRepo", "ServiceStateCount"]

# Bought (a number was assigned) and not refunded/failed: what was spent.
_SPENT_STATES: tuple[str, ...] = (
    ActivationState.COMPLETED.value, *(s.value for s in POLLABLE_STATES)
)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


@dataclass(frozen=True, slots=True)
class ServiceStateCount:
    service_name: str
    provider_id: str | None
    state: str
    count: int
    multi_pool: bool  # an ``sb_*`` service code (several pools)


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
