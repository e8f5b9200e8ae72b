"""The ``ledger`` table: operator-mode wallets as signed, exact Decimal entries."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from storage.base import money
from storage.db import Database
from storage.rows import LedgerRow, dec

__all__ = ["LedgerLine", "LedgerRepo"]

_ONCE_KINDS = ("hold", "charge", "release", "refund")


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """A ledger entry with what the wallet shows of its order (None: no order)."""

    entry: LedgerRow
    service_name: str | None
    refund_reason: str | None


class LedgerRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        user_id: int,
        amount: Decimal,
        kind: str,
        now: float,
        activation_id: int | None = None,
        note: str = "",
        actor_id: int | None = None,
        charge_id: str | None = None,
        charge_entry: str | None = None,
    ) -> int | None:
        """Append an entry. For ``hold``/``charge``/``release``/``refund`` at most
        one per activation exists, and at most one ``charge_entry`` per top-up
        ``charge_id``: a second one is not written and None is returned."""
        if charge_id is not None:
            return await self.db.insert(
                "INSERT INTO ledger (user_id, amount, kind, note, actor_id, created_at,"
                " charge_id, charge_entry) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (charge_id, charge_entry) WHERE charge_id IS NOT NULL"
                " DO NOTHING",
                (user_id, money(amount), kind, note, actor_id, now, charge_id, charge_entry),
            )
        if kind in _ONCE_KINDS:
            return await self.db.insert(
                "INSERT INTO ledger (user_id, amount, kind, activation_id, note, actor_id,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (activation_id, kind)"
                " WHERE kind IN ('hold', 'charge', 'release', 'refund') DO NOTHING",
                (user_id, money(amount), kind, activation_id, note, actor_id, now),
            )
        return await self.db.insert(
            "INSERT INTO ledger (user_id, amount, kind, activation_id, note, actor_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, money(amount), kind, activation_id, note, actor_id, now),
        )

    async def balance(self, user_id: int) -> Decimal:
        """Exact: the Decimal sum of the user's entries (never SQL float sums).
        PostgreSQL: a NUMERIC SUM in SQL (exact; one row over the wire). SQLite: the
        amounts are text, summed here."""
        if self.db.dialect == "postgresql":
            total = await self.db.fetchval(
                "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE user_id = ?", (user_id,)
            )
            return dec(total)
        rows = await self.db.fetchall("SELECT amount FROM ledger WHERE user_id = ?", (user_id,))
        return sum((dec(r[0]) for r in rows), Decimal(0))

    async def entries(self, user_id: int, limit: int | None = None) -> list[LedgerRow]:
        """Newest first."""
        sql = "SELECT * FROM ledger WHERE user_id = ? ORDER BY id DESC"
        params: list[Any] = [user_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self.db.fetchall(sql, params)
        return [LedgerRow.from_row(r) for r in rows]

    async def lines(self, user_id: int, limit: int) -> list[LedgerLine]:
        """Newest first, each with its order's service name and refund reason:
        one statement for the wallet screen (not one order read per entry)."""
        rows = await self.db.fetchall(
            "SELECT ledger.*, activations.service_name AS order_service_name,"
            " activations.refund_reason AS order_refund_reason"
            " FROM ledger LEFT JOIN activations ON activations.id = ledger.activation_id"
            " WHERE ledger.user_id = ? ORDER BY ledger.id DESC LIMIT ?",
            (user_id, limit),
        )
        return [
            LedgerLine(LedgerRow.from_row(r), r["order_service_name"], r["order_refund_reason"])
            for r in rows
        ]

    async def for_activation(self, activation_id: int) -> list[LedgerRow]:
        rows = await self.db.fetchall(
            "SELECT * FROM ledger WHERE activation_id = ? ORDER BY id", (activation_id,)
        )
        return [LedgerRow.from_row(r) for r in rows]

    async def get(self, activation_id: int, kind: str) -> LedgerRow | None:
        row = await self.db.fetchone(
            "SELECT * FROM ledger WHERE activation_id = ? AND kind = ? ORDER BY id LIMIT 1",
            (activation_id, kind),
        )
        return None if row is None else LedgerRow.from_row(row)

    async def for_charge(self, charge_id: str) -> list[LedgerRow]:
        """The entries of one top-up payment (credit, refund, refund given back)."""
        rows = await self.db.fetchall(
            "SELECT * FROM ledger WHERE charge_id = ? ORDER BY id", (charge_id,)
        )
        return [LedgerRow.from_row(r) for r in rows]

    async def all(self) -> list[LedgerRow]:
        rows = await self.db.fetchall("SELECT * FROM ledger ORDER BY id")
        return [LedgerRow.from_row(r) for r in rows]
