"""The ``users`` table."""

from __future__ import annotations

from storage.db import Database
from storage.rows import UserRow

__all__ = ["UserRepo"]


class UserRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure(self, user_id: int, now: float, locale: str | None = None) -> UserRow:
        await self.db.execute(
            "INSERT INTO users (id, locale, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET locale = COALESCE(excluded.locale, users.locale)",
            (user_id, locale, now),
        )
        row = await self.get(user_id)
        assert row is not None
        return row

    async def get(self, user_id: int) -> UserRow | None:
        row = await self.db.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
        return None if row is None else UserRow.from_row(row)

    async def count(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM users"))
