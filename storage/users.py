"""The ``users`` table."""

from __future__ import annotations

from storage.db import Database
from storage.rows import UserRow

__all__ = ["UserRepo"]


class UserRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure(self, user_id: int, now: float, locale: str | None = None) -> UserRow:
        """Register the user; ``locale`` (Telegram's language_code) is stored unless
        the user chose a language with :meth:`choose_locale`."""
        # One statement (the gate runs it for each user's first update).
        row = await self.db.fetchone(
            "INSERT INTO users (id, locale, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET locale = CASE WHEN users.locale_chosen "
            "THEN users.locale ELSE COALESCE(excluded.locale, users.locale) END "
            "RETURNING *",
            (user_id, locale, now),
        )
        assert row is not None
        return UserRow.from_row(row)

    async def choose_locale(self, user_id: int, now: float, locale: str) -> None:
        """The user's explicit choice: stored, and kept over later language_codes."""
        await self.db.execute(
            "INSERT INTO users (id, locale, locale_chosen, created_at) VALUES (?, ?, 1, ?) "
            "ON CONFLICT (id) DO UPDATE SET locale = excluded.locale, locale_chosen = 1",
            (user_id, locale, now),
        )

    async def locale(self, user_id: int) -> str | None:
        value = await self.db.fetchval("SELECT locale FROM users WHERE id = ?", (user_id,))
        return None if value is None else str(value)

    async def get(self, user_id: int) -> UserRow | None:
        row = await self.db.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
        return None if row is None else UserRow.from_row(row)

    async def count(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM users"))
