"""Admin price rules (table ``price_overrides``, migration 0009): one rule per
service, stored as its text (``+20%`` / ``0.75``; parsed by
:mod:`bot.domain.pricing`)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database

__all__ = ["PriceOverrideRepo", "PriceOverrideRow"]


@dataclass(frozen=True, slots=True)
class PriceOverrideRow:
    service_key: str
    service_code: str
    rule: str
    admin_id: int
    updated_at: float


class PriceOverrideRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> list[PriceOverrideRow]:
        rows = await self.db.fetchall("SELECT * FROM price_overrides ORDER BY service_key")
        return [
            PriceOverrideRow(
                str(r["service_key"]), str(r["service_code"]), str(r["rule"]),
                int(r["admin_id"]), float(r["updated_at"]),
            )
            for r in rows
        ]

    async def put(
        self, *, service_key: str, service_code: str, rule: str, admin_id: int, now: float
    ) -> None:
        await self.db.execute(
            "INSERT INTO price_overrides (service_key, service_code, rule, admin_id, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (service_key) DO UPDATE SET"
            " service_code = excluded.service_code, rule = excluded.rule,"
            " admin_id = excluded.admin_id, updated_at = excluded.updated_at",
            (service_key, service_code, rule, admin_id, now),
        )

    async def delete(self, service_key: str) -> bool:
        return (
            await self.db.execute(
                "DELETE FROM price_overrides WHERE service_key = ?", (service_key,)
            )
            > 0
        )
