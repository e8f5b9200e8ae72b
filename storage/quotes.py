"""Quotes (table ``quotes``, migration 0005): a confirmed price the user can buy
at, owned by one user, valid until ``expires_at``, consumed at most once."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from storage.db import Database
from storage.rows import dec

__all__ = ["QuoteRepo", "QuoteRow"]


@dataclass(frozen=True, slots=True)
class QuoteRow:
    id: int
    user_id: int
    service_code: str
    provider_id: str | None
    pool: str | None
    price: Decimal
    created_at: float
    expires_at: float
    activation_id: int | None
    consumed_at: float | None

    @property
    def consumed(self) -> bool:
        return self.activation_id is not None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> QuoteRow:
        return cls(
            id=int(row["id"]),
            user_id=int(row["user_id"]),
            service_code=str(row["service_code"]),
            provider_id=row["provider_id"],
            pool=row["pool"],
            price=dec(row["price"]),
            created_at=float(row["created_at"]),
            expires_at=float(row["expires_at"]),
            activation_id=row["activation_id"],
            consumed_at=row["consumed_at"],
        )


class QuoteRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self,
        *,
        user_id: int,
        service_code: str,
        provider_id: str | None,
        pool: str | None,
        price: Decimal,
        now: float,
        expires_at: float,
    ) -> int:
        if not price.is_finite():
            raise ValueError("a quoted price must be finite")
        rowid = await self.db.insert(
            "INSERT INTO quotes (user_id, service_code, provider_id, pool, price,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, service_code, provider_id, pool, str(price), now, expires_at),
        )
        assert rowid is not None
        return rowid

    async def get(self, quote_id: int) -> QuoteRow | None:
        row = await self.db.fetchone("SELECT * FROM quotes WHERE id = ?", (quote_id,))
        return None if row is None else QuoteRow.from_row(row)

    async def consume(self, quote_id: int, activation_id: int, now: float) -> bool:
        """Mark the quote used by this purchase, iff it was not used yet."""
        return (
            await self.db.execute(
                "UPDATE quotes SET activation_id = ?, consumed_at = ?"
                " WHERE id = ? AND activation_id IS NULL",
                (activation_id, now, quote_id),
            )
            > 0
        )

    async def withdraw(self, user_id: int, now: float) -> int:
        """End the lifetime of every unused quote of this user now (``/cancel``, a
        timed-out flow): a later Confirm on one of them buys nothing."""
        return await self.db.execute(
            "UPDATE quotes SET expires_at = ?"
            " WHERE user_id = ? AND activation_id IS NULL AND expires_at > ?",
            (now, user_id, now),
        )

    async def prune(self, before: float) -> int:
        """Delete quotes never used that expired before ``before``."""
        return await self.db.execute(
            "DELETE FROM quotes WHERE activation_id IS NULL AND expires_at < ?", (before,)
        )
