"""Operator alerts (migration 0009): whether each alert kind has fired since it was
last armed (``operator_alerts``), and one delivery row per admin and alert
(``alert_deliveries``), marked sent once Telegram took the message."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from storage.base import money
from storage.db import Database
from storage.rows import dec_or_none

__all__ = ["AlertDeliveryRow", "AlertRepo"]


@dataclass(frozen=True, slots=True)
class AlertDeliveryRow:
    id: int
    kind: str
    admin_id: int
    balance: Decimal | None
    threshold: Decimal | None
    created_at: float
    attempts: int


class AlertRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def fired(self, kind: str) -> bool:
        value = await self.db.fetchval(
            "SELECT fired FROM operator_alerts WHERE kind = ?", (kind,)
        )
        return bool(value)

    async def fire(self, kind: str, balance: Decimal | None, now: float) -> bool:
        """Mark ``kind`` fired iff it was armed (or never seen). True: this call
        fired it (the caller writes the deliveries in the same transaction)."""
        await self.db.execute(
            "INSERT INTO operator_alerts (kind, fired, changed_at) VALUES (?, 0, ?)"
            " ON CONFLICT (kind) DO NOTHING",
            (kind, now),
        )
        return (
            await self.db.execute(
                "UPDATE operator_alerts SET fired = 1, balance = ?, changed_at = ?"
                " WHERE kind = ? AND fired = 0",
                (money(balance), now, kind),
            )
            > 0
        )

    async def rearm(self, kind: str, balance: Decimal | None, now: float) -> bool:
        """Arm ``kind`` again; True if it had fired."""
        return (
            await self.db.execute(
                "UPDATE operator_alerts SET fired = 0, balance = ?, changed_at = ?"
                " WHERE kind = ? AND fired = 1",
                (money(balance), now, kind),
            )
            > 0
        )

    async def add_delivery(
        self, *, kind: str, admin_id: int, balance: Decimal | None,
        threshold: Decimal | None, now: float,
    ) -> None:
        await self.db.insert(
            "INSERT INTO alert_deliveries (kind, admin_id, balance, threshold, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind, admin_id, money(balance), money(threshold), now),
        )

    async def unsent(self, limit: int = 100) -> list[AlertDeliveryRow]:
        rows = await self.db.fetchall(
            "SELECT * FROM alert_deliveries WHERE sent_at IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            AlertDeliveryRow(
                int(r["id"]), str(r["kind"]), int(r["admin_id"]), dec_or_none(r["balance"]),
                dec_or_none(r["threshold"]), float(r["created_at"]), int(r["attempts"]),
            )
            for r in rows
        ]

    async def mark_sent(self, delivery_id: int, now: float) -> None:
        await self.db.execute(
            "UPDATE alert_deliveries SET sent_at = ? WHERE id = ? AND sent_at IS NULL",
            (now, delivery_id),
        )

    async def mark_failed(self, delivery_id: int, *, give_up: bool, now: float) -> None:
        """A failed attempt; ``give_up`` (the admin blocked the bot...): no more tries."""
        await self.db.execute(
            "UPDATE alert_deliveries SET attempts = attempts + 1,"
            " sent_at = CASE WHEN ? = 1 THEN ? ELSE sent_at END WHERE id = ?",
            (1 if give_up else 0, now, delivery_id),
        )
