"""Written-off purchases still watched, and the ``stray_orders`` table."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from bot.domain.activation import ActivationState
from storage.base import literals, marks, money
from storage.db import Database
from storage.rows import ActivationRow, StrayRow, dec

__all__ = ["STRAY_OPEN", "StrayRepo"]

# The one non-final state of a stray order: still to be cancelled for the refund.
STRAY_OPEN = "cancelling"
_OPEN = literals([STRAY_OPEN])
_PURCHASING = literals([ActivationState.PURCHASING])

_STRAY_COLUMNS = frozenset(
    {"code", "refund", "next_attempt_at", "attempts", "finished_at"}
)


class StrayRepo:
    """Written-off purchases still watched for a late order, and the upstream
    orders no activation owns (``stray_orders``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def watches(self, account_id: int, now: float) -> list[ActivationRow]:
        """Purchases whose outcome was in doubt (written off without proof, or
        matched to an order by reconciliation, which may have taken another
        purchase's order), still inside their watch window and not matched to a
        stray order yet; oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM activations a WHERE a.account_id = ?"
            " AND a.watch_until IS NOT NULL AND a.watch_until > ?"
            " AND NOT EXISTS (SELECT 1 FROM stray_orders s WHERE s.activation_id = a.id)"
            " ORDER BY a.purchase_sent_at, a.id",
            (account_id, now),
        )
        return [ActivationRow.from_row(r) for r in rows]

    async def accounts_to_sweep(self, now: float) -> list[int]:
        """Accounts with a watched purchase or an order still to cancel."""
        rows = await self.db.fetchall(
            "SELECT account_id FROM activations WHERE watch_until IS NOT NULL"
            " AND watch_until > ?"
            f" UNION SELECT account_id FROM stray_orders WHERE state = {_OPEN}",
            (now,),
        )
        return sorted({int(r[0]) for r in rows})

    async def purchasing_labels(self, account_id: int) -> dict[str, float]:
        """Service code and name of every purchase of the account still in doubt or
        on the wire (their orders may not be known yet) -> the earliest time such a
        purchase was sent."""
        rows = await self.db.fetchall(
            "SELECT service_code, service_name, purchase_sent_at FROM activations"
            f" WHERE account_id = ? AND state = {_PURCHASING}",
            (account_id,),
        )
        out: dict[str, float] = {}
        for r in rows:
            for label in (str(r[0]), str(r[1])):
                out[label] = min(out.get(label, float(r[2])), float(r[2]))
        return out

    async def known_ids(self, account_id: int) -> set[str]:
        """Every upstream id of the account the bot owns: activations and strays."""
        rows = await self.db.fetchall(
            "SELECT remote_id FROM activations WHERE account_id = ? AND remote_id IS NOT NULL"
            " UNION SELECT remote_id FROM stray_orders WHERE account_id = ?",
            (account_id, account_id),
        )
        return {str(r[0]) for r in rows}

    async def ids(self, account_id: int) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT remote_id FROM stray_orders WHERE account_id = ?", (account_id,)
        )
        return [str(r[0]) for r in rows]

    async def insert(
        self,
        *,
        account_id: int,
        remote_id: str,
        activation_id: int | None,
        service: str,
        phone: str | None,
        amount: Decimal,
        ordered_at: float,
        now: float,
        state: str,
        code: str | None = None,
        next_attempt_at: float | None = None,
    ) -> int | None:
        """Record an order once (None if this order or this attempt is recorded)."""
        return await self.db.insert(
            "INSERT INTO stray_orders (account_id, remote_id, activation_id, service, phone,"
            " amount, ordered_at, found_at, state, code, next_attempt_at, finished_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                account_id, remote_id, activation_id, service, phone, money(amount),
                ordered_at, now, state, code, next_attempt_at,
                now if state != STRAY_OPEN else None,
            ),
        )

    async def get(self, stray_id: int) -> StrayRow | None:
        row = await self.db.fetchone("SELECT * FROM stray_orders WHERE id = ?", (stray_id,))
        return None if row is None else StrayRow.from_row(row)

    async def open(self, account_id: int | None = None) -> list[StrayRow]:
        """Orders still to cancel (all accounts if ``account_id`` is None)."""
        sql = f"SELECT * FROM stray_orders WHERE state = {_OPEN}"
        params: list[Any] = []
        if account_id is not None:
            sql += " AND account_id = ?"
            params.append(account_id)
        rows = await self.db.fetchall(sql + " ORDER BY id", params)
        return [StrayRow.from_row(r) for r in rows]

    async def all(self) -> list[StrayRow]:
        rows = await self.db.fetchall("SELECT * FROM stray_orders ORDER BY id")
        return [StrayRow.from_row(r) for r in rows]

    async def transition(
        self, stray_id: int, from_states: Iterable[str], to_state: str, **fields: Any
    ) -> bool:
        """Guarded: ``state := to_state`` iff the state is one of ``from_states``."""
        unknown = set(fields) - _STRAY_COLUMNS
        if unknown:
            raise ValueError(f"not updatable stray columns: {sorted(unknown)}")
        allowed = tuple(from_states)
        names = sorted(fields)
        sets = "".join(f", {n} = ?" for n in names)
        return (
            await self.db.execute(
                f"UPDATE stray_orders SET state = ?{sets}"
                f" WHERE id = ? AND state IN ({marks(len(allowed))})",
                [to_state, *(money(fields[n]) for n in names), stray_id, *allowed],
            )
            > 0
        )

    async def summary(self) -> dict[str, tuple[int, Decimal]]:
        """state -> (count, sum of amounts charged upstream), exact."""
        rows = await self.db.fetchall("SELECT state, amount FROM stray_orders")
        out: dict[str, tuple[int, Decimal]] = {}
        for r in rows:
            n, total = out.get(str(r[0]), (0, Decimal(0)))
            out[str(r[0])] = (n + 1, total + dec(r[1]))
        return out
