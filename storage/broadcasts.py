"""Broadcasts (tables ``broadcasts`` and ``broadcast_recipients``, migration 0008).

A broadcast is a draft until an admin presses Send; :meth:`BroadcastRepo.start`
then fixes its recipients (registered users, not banned, not blocked; for the
``active`` audience only those seen or buying since a given time) in the same
transaction. Each recipient row goes ``pending`` → ``sending`` (committed before
the message is sent) → ``delivered`` | ``blocked`` | ``failed``; a row found in
``sending`` after a crash is failed, never sent again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final, Literal

from storage.db import Database

__all__ = [
    "AUDIENCES", "BLOCKED", "DELIVERED", "FAILED", "IN_FLIGHT", "PENDING", "Audience",
    "BroadcastRepo", "BroadcastRow", "Outcome",
]

Audience = Literal["all", "active"]
AUDIENCES: tuple[Audience, ...] = ("all", "active")
Outcome = Literal["delivered", "blocked", "failed", "pending"]
# A recipient row's states (the CHECK of migration 0008).
PENDING: Final = "pending"
IN_FLIGHT: Final = "sending"
DELIVERED: Final = "delivered"
BLOCKED: Final = "blocked"
FAILED: Final = "failed"

# Both backends: the bare "? IS NULL" has no type PostgreSQL can infer (hence the
# CAST), and a subquery in FROM needs an alias there ("AS r" below).
_RECIPIENTS = (
    "SELECT id FROM users u WHERE u.banned_at IS NULL AND u.blocked_at IS NULL "
    "AND (CAST(? AS DOUBLE PRECISION) IS NULL OR u.last_seen_at >= ? "
    "OR EXISTS (SELECT 1 FROM activations a WHERE a.user_id = u.id AND a.purchase_sent_at >= ?))"
)


@dataclass(frozen=True, slots=True)
class BroadcastRow:
    id: int
    admin_id: int
    audience: Audience
    text: str
    state: str
    chat_id: int
    message_id: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> BroadcastRow:
        return cls(
            id=int(row["id"]),
            admin_id=int(row["admin_id"]),
            audience=row["audience"],
            text=str(row["text"]),
            state=str(row["state"]),
            chat_id=int(row["chat_id"]),
            message_id=None if row["message_id"] is None else int(row["message_id"]),
            created_at=float(row["created_at"]),
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )


class BroadcastRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def audience_size(self, active_since: float | None) -> int:
        """How many users a broadcast would reach now (``active_since`` None: all)."""
        return int(await self.db.fetchval(
            f"SELECT COUNT(*) FROM ({_RECIPIENTS}) AS r", (active_since, active_since, active_since)
        ))

    async def create(
        self, admin_id: int, audience: Audience, text: str, chat_id: int, now: float
    ) -> int:
        rowid = await self.db.insert(
            "INSERT INTO broadcasts (admin_id, audience, text, chat_id, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (admin_id, audience, text, chat_id, now),
        )
        assert rowid is not None
        return rowid

    async def get(self, broadcast_id: int) -> BroadcastRow | None:
        row = await self.db.fetchone("SELECT * FROM broadcasts WHERE id = ?", (broadcast_id,))
        return None if row is None else BroadcastRow.from_row(row)

    async def start(
        self, broadcast_id: int, message_id: int, now: float, active_since: float | None
    ) -> bool:
        """Draft → running, with its recipients fixed now (one transaction); False if
        it was no longer a draft (a second Send press)."""
        async with self.db.transaction():
            changed = await self.db.execute(
                "UPDATE broadcasts SET state = 'running', started_at = ?, message_id = ? "
                "WHERE id = ? AND state = 'draft'",
                (now, message_id, broadcast_id),
            )
            if not changed:
                return False
            await self.db.execute(
                "INSERT INTO broadcast_recipients (broadcast_id, user_id, updated_at) "
                "SELECT CAST(? AS BIGINT), id, CAST(? AS DOUBLE PRECISION)"
                f" FROM ({_RECIPIENTS}) AS r",
                (broadcast_id, now, active_since, active_since, active_since),
            )
        return True

    async def end(self, broadcast_id: int, now: float, *, from_state: str, to_state: str) -> bool:
        """A guarded state change (draft → cancelled, running → done | stopped)."""
        changed = await self.db.execute(
            "UPDATE broadcasts SET state = ?, finished_at = ? WHERE id = ? AND state = ?",
            (to_state, now, broadcast_id, from_state),
        )
        return changed > 0

    async def running(self) -> list[BroadcastRow]:
        rows = await self.db.fetchall(
            "SELECT * FROM broadcasts WHERE state = 'running' ORDER BY id"
        )
        return [BroadcastRow.from_row(r) for r in rows]

    async def claim(self, broadcast_id: int, limit: int, now: float) -> list[int]:
        """Up to ``limit`` pending recipients, now ``sending`` (committed)."""
        async with self.db.transaction():
            rows = await self.db.fetchall(
                "SELECT user_id FROM broadcast_recipients WHERE broadcast_id = ? "
                "AND state = 'pending' ORDER BY user_id LIMIT ?",
                (broadcast_id, limit),
            )
            ids: list[int] = []
            for r in rows:
                # Only the rows this guarded UPDATE moved are ours: correct on its own,
                # even where another process's claim was not serialized with this one.
                if await self.db.execute(
                    "UPDATE broadcast_recipients SET state = 'sending', updated_at = ? "
                    "WHERE broadcast_id = ? AND user_id = ? AND state = 'pending'",
                    (now, broadcast_id, int(r["user_id"])),
                ):
                    ids.append(int(r["user_id"]))
        return ids

    async def record(self, broadcast_id: int, user_id: int, outcome: Outcome, now: float) -> bool:
        """A claimed recipient's outcome (``pending``: not sent, try again later)."""
        changed = await self.db.execute(
            "UPDATE broadcast_recipients SET state = ?, updated_at = ? "
            "WHERE broadcast_id = ? AND user_id = ? AND state = 'sending'",
            (outcome, now, broadcast_id, user_id),
        )
        return changed > 0

    async def fail_in_doubt(self, broadcast_id: int, now: float) -> int:
        """After a restart: rows left ``sending`` may have been delivered; they are
        failed so that nobody gets the message twice. Returns how many."""
        return await self.db.execute(
            "UPDATE broadcast_recipients SET state = 'failed', updated_at = ? "
            "WHERE broadcast_id = ? AND state = 'sending'",
            (now, broadcast_id),
        )

    async def counts(self, broadcast_id: int) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT state, COUNT(*) AS n FROM broadcast_recipients WHERE broadcast_id = ? "
            "GROUP BY state",
            (broadcast_id,),
        )
        return {str(r["state"]): int(r["n"]) for r in rows}
