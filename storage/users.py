"""The ``users`` table."""

from __future__ import annotations

from storage.db import Database
from storage.rows import UserRow

__all__ = ["UserRepo"]


class UserRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure(
        self, user_id: int, now: float, locale: str | None = None, *, seen: bool = False
    ) -> UserRow:
        """Register the user; ``locale`` (Telegram's language_code) is stored unless
        the user chose a language with :meth:`choose_locale`. ``seen``: the user
        wrote or pressed now, recorded in the same statement (see :meth:`seen`)."""
        # One statement (the gate runs it for each user's first update).
        sighting = ", last_seen_at = excluded.last_seen_at, blocked_at = NULL" if seen else ""
        row = await self.db.fetchone(
            "INSERT INTO users (id, locale, created_at, last_seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET locale = CASE WHEN users.locale_chosen <> 0 "
            "THEN users.locale ELSE COALESCE(excluded.locale, users.locale) END"
            f"{sighting} RETURNING *",
            (user_id, locale, now, now if seen else None),
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

    # --- bans, blocks and activity (issue 13: admin tools) -----------------------
    async def ban(self, user_id: int, now: float, admin_id: int, reason: str) -> bool:
        """Ban a registered user; False if unknown or already banned (the first
        ban's time and reason stay)."""
        changed = await self.db.execute(
            "UPDATE users SET banned_at = ?, ban_reason = ?, banned_by = ? "
            "WHERE id = ? AND banned_at IS NULL",
            (now, reason or None, admin_id, user_id),
        )
        return changed > 0

    async def unban(self, user_id: int) -> bool:
        changed = await self.db.execute(
            "UPDATE users SET banned_at = NULL, ban_reason = NULL, banned_by = NULL "
            "WHERE id = ? AND banned_at IS NOT NULL",
            (user_id,),
        )
        return changed > 0

    async def banned_ids(self) -> set[int]:
        rows = await self.db.fetchall("SELECT id FROM users WHERE banned_at IS NOT NULL")
        return {int(r["id"]) for r in rows}

    async def ban_reason(self, user_id: int) -> tuple[bool, str | None]:
        """(banned?, reason) of a user (an unknown user is not banned)."""
        row = await self.db.fetchone(
            "SELECT banned_at, ban_reason FROM users WHERE id = ?", (user_id,)
        )
        if row is None or row["banned_at"] is None:
            return False, None
        return True, row["ban_reason"]

    async def seen(self, user_id: int, now: float) -> None:
        """The user wrote or pressed a button: active now, and no longer blocking us."""
        await self.db.execute(
            "UPDATE users SET last_seen_at = ?, blocked_at = NULL WHERE id = ?", (now, user_id)
        )

    async def set_blocked(self, user_id: int, now: float | None) -> bool:
        """Mark (``now``) or unmark (None) the user as having blocked the bot."""
        if now is None:
            return await self.db.execute(
                "UPDATE users SET blocked_at = NULL WHERE id = ? AND blocked_at IS NOT NULL",
                (user_id,),
            ) > 0
        changed = await self.db.execute(
            "UPDATE users SET blocked_at = ? WHERE id = ? AND blocked_at IS NULL", (now, user_id)
        )
        return changed > 0

    async def blocked_at(self, user_id: int) -> float | None:
        value = await self.db.fetchval("SELECT blocked_at FROM users WHERE id = ?", (user_id,))
        return None if value is None else float(value)
