"""The ``events`` table: the outbox of user-visible events (each at most once)."""

from __future__ import annotations

from storage.db import Database
from storage.rows import EventRow

__all__ = ["EventRepo"]


class EventRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, activation_id: int, kind: str, payload: str, now: float) -> int | None:
        """Write the event unless this (activation, kind) already exists (then None)."""
        return await self.db.insert(
            "INSERT INTO events (activation_id, kind, payload, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (activation_id, kind) DO NOTHING",
            (activation_id, kind, payload, now),
        )

    async def get(self, event_id: int) -> EventRow | None:
        row = await self.db.fetchone("SELECT * FROM events WHERE id = ?", (event_id,))
        return None if row is None else EventRow.from_row(row)

    async def pending(self) -> list[EventRow]:
        """Undelivered events, oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM events WHERE delivered_at IS NULL ORDER BY id"
        )
        return [EventRow.from_row(r) for r in rows]

    async def next_attempt(self) -> float | None:
        value = await self.db.fetchval(
            "SELECT MIN(COALESCE(next_attempt_at, created_at)) FROM events"
            " WHERE delivered_at IS NULL"
        )
        return None if value is None else float(value)

    async def mark_delivered(self, event_id: int, now: float) -> bool:
        return (
            await self.db.execute(
                "UPDATE events SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
                (now, event_id),
            )
            > 0
        )

    async def mark_dispatching(self, event_id: int) -> None:
        """Count a delivery as started (committed before the handler runs)."""
        await self.db.execute(
            "UPDATE events SET dispatches = dispatches + 1 WHERE id = ? AND delivered_at IS NULL",
            (event_id,),
        )

    async def mark_failed(self, event_id: int, next_attempt_at: float, error: str) -> None:
        await self.db.execute(
            "UPDATE events SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
            " WHERE id = ? AND delivered_at IS NULL",
            (next_attempt_at, error[:500], event_id),
        )

    async def mark_deferred(self, event_id: int, next_attempt_at: float, reason: str) -> None:
        """The handler delivered nothing and asked to be called again later (a flood
        pause): undo the dispatch mark, so the redelivery is not taken as
        interrupted, and count no failed attempt."""
        # The larger of the two as a CASE: SQLite's scalar MAX(a, b) is PostgreSQL's
        # GREATEST(a, b), and neither has the other's.
        await self.db.execute(
            "UPDATE events SET dispatches = CASE WHEN dispatches - 1 > attempts"
            " THEN dispatches - 1 ELSE attempts END, next_attempt_at = ?,"
            " last_error = ? WHERE id = ? AND delivered_at IS NULL",
            (next_attempt_at, reason[:500], event_id),
        )

    async def for_activation(self, activation_id: int) -> list[EventRow]:
        rows = await self.db.fetchall(
            "SELECT * FROM events WHERE activation_id = ? ORDER BY id", (activation_id,)
        )
        return [EventRow.from_row(r) for r in rows]

    async def all(self) -> list[EventRow]:
        rows = await self.db.fetchall("SELECT * FROM events ORDER BY id")
        return [EventRow.from_row(r) for r in rows]
