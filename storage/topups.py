"""The ``topups`` table: one row per top-up invoice (see :mod:`bot.domain.topups`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from storage.base import money
from storage.db import Database
from storage.rows import dec

__all__ = ["TopUpRepo", "TopUpRow"]


@dataclass(frozen=True, slots=True)
class TopUpRow:
    id: int
    user_id: int
    method: str
    currency: str
    amount: Decimal
    price: int
    state: str
    created_at: float
    expires_at: float
    chat_id: int | None
    message_id: int | None
    charge_id: str | None
    provider_charge_id: str | None
    paid_at: float | None
    paid_price: int | None
    notified_at: float | None
    refund_actor: int | None
    refund_at: float | None
    next_refund_at: float | None
    refund_attempts: int
    refund_error: str | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TopUpRow:
        values = dict(row)
        values["amount"] = dec(values["amount"])
        return cls(**values)


class TopUpRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        user_id: int,
        method: str,
        currency: str,
        amount: Decimal,
        price: int,
        now: float,
        expires_at: float,
    ) -> int:
        rowid = await self.db.insert(
            "INSERT INTO topups (user_id, method, currency, amount, price, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, method, currency, money(amount), price, now, expires_at),
        )
        assert rowid is not None
        return rowid

    async def create_paid(
        self,
        *,
        user_id: int,
        method: str,
        currency: str,
        amount: Decimal,
        price: int,
        now: float,
        charge_id: str,
        provider_charge_id: str | None,
    ) -> int | None:
        """A payment that names no row of ours (the money was taken all the same):
        recorded as paid. None if that charge is recorded already."""
        return await self.db.insert(
            "INSERT INTO topups (user_id, method, currency, amount, price, state, created_at,"
            " expires_at, charge_id, provider_charge_id, paid_at, paid_price)"
            " VALUES (?, ?, ?, ?, ?, 'paid', ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (charge_id) WHERE charge_id IS NOT NULL DO NOTHING",
            (user_id, method, currency, money(amount), price, now, now, charge_id,
             provider_charge_id, now, price),
        )

    async def get(self, topup_id: int) -> TopUpRow | None:
        row = await self.db.fetchone("SELECT * FROM topups WHERE id = ?", (topup_id,))
        return None if row is None else TopUpRow.from_row(row)

    async def by_charge(self, charge_id: str) -> TopUpRow | None:
        row = await self.db.fetchone("SELECT * FROM topups WHERE charge_id = ?", (charge_id,))
        return None if row is None else TopUpRow.from_row(row)

    async def known_charges(self, charge_ids: list[str]) -> set[str]:
        if not charge_ids:
            return set()
        marks = ", ".join("?" * len(charge_ids))
        rows = await self.db.fetchall(
            f"SELECT charge_id FROM topups WHERE charge_id IN ({marks})", charge_ids
        )
        return {str(r[0]) for r in rows}

    async def set_message(self, topup_id: int, chat_id: int, message_id: int) -> None:
        await self.db.execute(
            "UPDATE topups SET chat_id = ?, message_id = ? WHERE id = ?",
            (chat_id, message_id, topup_id),
        )

    async def mark_paid(
        self,
        topup_id: int,
        *,
        charge_id: str,
        provider_charge_id: str | None,
        paid_price: int,
        now: float,
    ) -> bool:
        """open → paid with its charge id (guarded: False if not open)."""
        changed = await self.db.execute(
            "UPDATE topups SET state = 'paid', charge_id = ?, provider_charge_id = ?,"
            " paid_price = ?, paid_at = ? WHERE id = ? AND state = 'open'",
            (charge_id, provider_charge_id, paid_price, now, topup_id),
        )
        return changed == 1

    async def claim_notice(self, topup_id: int, now: float) -> bool:
        """True once per row: the caller tells the user about the credit."""
        changed = await self.db.execute(
            "UPDATE topups SET notified_at = ? WHERE id = ? AND notified_at IS NULL",
            (now, topup_id),
        )
        return changed == 1

    async def set_amount(self, topup_id: int, amount: Decimal) -> None:
        await self.db.execute(
            "UPDATE topups SET amount = ? WHERE id = ?", (money(amount), topup_id)
        )

    async def begin_refund(
        self, topup_id: int, *, actor_id: int, now: float, retry_at: float
    ) -> bool:
        """paid → refunding (guarded); ``retry_at``: when a retry may run if this
        attempt does not finish."""
        changed = await self.db.execute(
            "UPDATE topups SET state = 'refunding', refund_actor = ?, refund_at = ?,"
            " next_refund_at = ? WHERE id = ? AND state = 'paid'",
            (actor_id, now, retry_at, topup_id),
        )
        return changed == 1

    async def refund_retry(self, topup_id: int, *, at: float, error: str) -> None:
        await self.db.execute(
            "UPDATE topups SET next_refund_at = ?, refund_attempts = refund_attempts + 1,"
            " refund_error = ? WHERE id = ? AND state = 'refunding'",
            (at, error[:200], topup_id),
        )

    async def finish_refund(
        self, topup_id: int, state: str, *, now: float, error: str | None = None
    ) -> bool:
        """refunding → refunded / refund_failed (guarded)."""
        changed = await self.db.execute(
            "UPDATE topups SET state = ?, finished_at = ?, next_refund_at = NULL,"
            " refund_error = COALESCE(?, refund_error) WHERE id = ? AND state = 'refunding'",
            (state, now, None if error is None else error[:200], topup_id),
        )
        return changed == 1

    async def refunding(self, due_by: float | None = None) -> list[TopUpRow]:
        sql = "SELECT * FROM topups WHERE state = 'refunding'"
        params: list[object] = []
        if due_by is not None:
            sql += " AND next_refund_at <= ?"
            params.append(due_by)
        rows = await self.db.fetchall(sql + " ORDER BY id", params)
        return [TopUpRow.from_row(r) for r in rows]

    async def for_user(self, user_id: int, limit: int = 20) -> list[TopUpRow]:
        rows = await self.db.fetchall(
            "SELECT * FROM topups WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit)
        )
        return [TopUpRow.from_row(r) for r in rows]

    async def all(self) -> list[TopUpRow]:
        rows = await self.db.fetchall("SELECT * FROM topups ORDER BY id")
        return [TopUpRow.from_row(r) for r in rows]
