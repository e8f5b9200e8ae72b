"""The ``activations`` table: one row per purchase, and its state.

Every state change is a guarded ``UPDATE … WHERE id = ? AND state IN (from)``
that reports whether it happened (a lost race is visible and harmless), and is
first checked against :data:`bot.domain.activation.TRANSITIONS`: a move the
state machine does not allow is refused before the database is touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from bot.domain.activation import OPEN_STATES, ActivationState, allowed
from storage.base import literals, marks, money, raise_duplicate, values
from storage.db import Database
from storage.errors import IntegrityError
from storage.rows import ActivationRow, dec

__all__ = ["ActivationRepo", "check_transition"]

S = ActivationState

_ACTIVATION_COLUMNS = frozenset(
    {
        "remote_id",
        "phone",
        "price",
        "cost",
        "code",
        "purchased_at",
        "cancel_after",
        "expires_at",
        "next_cancel_at",
        "cancel_attempts",
        "chat_id",
        "message_id",
        "refund_amount",
        "refund_reason",
        "finished_at",
        "failure_reason",
        "cancel_available_emitted",
        "provider_id",
        "service_name",
        "watch_until",
    }
)

_ALLOWED = allowed()
_OPEN = literals(OPEN_STATES)
_FAILED = literals([S.FAILED])
# Bought and kept: what a user or the operator actually spent on.
_NOT_SPENT = (S.REFUNDED, S.FAILED)


def check_transition(from_states: Iterable[str], to_state: str) -> tuple[ActivationState, ...]:
    """The ``from_states`` as states, if every ``(from, to_state)`` is a move of
    the state machine; otherwise ValueError (also for an unknown state)."""
    target = ActivationState(to_state)
    sources = tuple(ActivationState(s) for s in from_states)
    if not sources:
        raise ValueError("a transition needs at least one source state")
    refused = [s for s in sources if (s, target) not in _ALLOWED]
    if refused:
        names = ", ".join(str(s) for s in refused)
        raise ValueError(f"transition not allowed by the state machine: {names} -> {target}")
    return sources


class ActivationRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_purchasing(
        self,
        *,
        user_id: int,
        account_id: int,
        service_code: str,
        service_name: str,
        provider_id: str | None,
        price: Decimal,
        request_id: str,
        sent_at: float,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> int:
        """The durable intent to buy, written (and committed) before the request
        is sent. A repeated ``request_id`` raises :class:`DuplicateError`."""
        try:
            rowid = await self.db.insert(
                "INSERT INTO activations (user_id, account_id, service_code, service_name,"
                " provider_id, price, state, request_id, purchase_sent_at, chat_id, message_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    account_id,
                    service_code,
                    service_name,
                    provider_id,
                    money(price),
                    str(S.PURCHASING),
                    request_id,
                    sent_at,
                    chat_id,
                    message_id,
                ),
            )
        except IntegrityError as exc:
            raise_duplicate(exc)
        assert rowid is not None
        return rowid

    async def get(self, activation_id: int) -> ActivationRow | None:
        row = await self.db.fetchone("SELECT * FROM activations WHERE id = ?", (activation_id,))
        return None if row is None else ActivationRow.from_row(row)

    async def get_for_user(self, user_id: int, activation_id: int) -> ActivationRow | None:
        row = await self.db.fetchone(
            "SELECT * FROM activations WHERE id = ? AND user_id = ?", (activation_id, user_id)
        )
        return None if row is None else ActivationRow.from_row(row)

    async def by_request_id(self, request_id: str) -> ActivationRow | None:
        row = await self.db.fetchone(
            "SELECT * FROM activations WHERE request_id = ?", (request_id,)
        )
        return None if row is None else ActivationRow.from_row(row)

    async def list_open(self) -> list[ActivationRow]:
        rows = await self.db.fetchall(
            f"SELECT * FROM activations WHERE state IN ({_OPEN}) ORDER BY id"
        )
        return [ActivationRow.from_row(r) for r in rows]

    async def list_all(self) -> list[ActivationRow]:
        rows = await self.db.fetchall("SELECT * FROM activations ORDER BY id")
        return [ActivationRow.from_row(r) for r in rows]

    @staticmethod
    def _user_filter(user_id: int, states: Sequence[str] | None) -> tuple[str, list[Any]]:
        # Never-bought attempts (failed without a number) are not shown to users.
        clause = f"user_id = ? AND NOT (state = {_FAILED} AND remote_id IS NULL)"
        params: list[Any] = [user_id]
        if states:
            clause += f" AND state IN ({marks(len(states))})"
            params.extend(values(states))
        return clause, params

    async def list_for_user(
        self,
        user_id: int,
        states: Sequence[str] | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[ActivationRow]:
        clause, params = self._user_filter(user_id, states)
        order = "DESC" if newest_first else "ASC"
        rows = await self.db.fetchall(
            f"SELECT * FROM activations WHERE {clause} ORDER BY id {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [ActivationRow.from_row(r) for r in rows]

    async def count_for_user(self, user_id: int, states: Sequence[str] | None = None) -> int:
        clause, params = self._user_filter(user_id, states)
        return int(
            await self.db.fetchval(f"SELECT COUNT(*) FROM activations WHERE {clause}", params)
        )

    async def transition(
        self, activation_id: int, from_states: Iterable[str], to_state: str, **fields: Any
    ) -> bool:
        """``state := to_state`` (and ``fields``) iff the current state is one of
        ``from_states``. Returns whether the row changed. A move the state machine
        (:data:`~bot.domain.activation.TRANSITIONS`) does not allow raises
        ValueError before anything is written."""
        sources = check_transition(from_states, to_state)
        sets, params = self._sets(fields)
        sql = (
            f"UPDATE activations SET state = ?{', ' if sets else ''}{sets}"
            f" WHERE id = ? AND state IN ({marks(len(sources))})"
        )
        return (
            await self.db.execute(
                sql, [str(to_state), *params, activation_id, *values(sources)]
            )
            > 0
        )

    async def update(
        self, activation_id: int, *, only_states: Iterable[str] | None = None, **fields: Any
    ) -> bool:
        """Update non-state columns, optionally only while in ``only_states``."""
        sets, params = self._sets(fields)
        if not sets:
            return False
        sql = f"UPDATE activations SET {sets} WHERE id = ?"
        args: list[Any] = [*params, activation_id]
        if only_states is not None:
            states = values(only_states)
            sql += f" AND state IN ({marks(len(states))})"
            args.extend(states)
        return await self.db.execute(sql, args) > 0

    @staticmethod
    def _sets(fields: dict[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(fields) - _ACTIVATION_COLUMNS
        if unknown:
            raise ValueError(f"not updatable activation columns: {sorted(unknown)}")
        names = sorted(fields)
        sets = ", ".join(f"{name} = ?" for name in names)
        params = []
        for name in names:
            value = fields[name]
            if isinstance(value, bool):
                value = int(value)
            params.append(money(value))
        return sets, params

    async def known_remote_ids(self, account_id: int, since: float) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT remote_id FROM activations WHERE account_id = ? AND remote_id IS NOT NULL"
            " AND purchase_sent_at >= ?",
            (account_id, since),
        )
        return [str(r[0]) for r in rows]

    async def count_open_for_account(self, account_id: int) -> int:
        return int(
            await self.db.fetchval(
                "SELECT COUNT(*) FROM activations WHERE account_id = ?"
                f" AND state IN ({_OPEN})",
                (account_id,),
            )
        )

    async def recent_service_codes(self, user_id: int, limit: int) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT service_code, MAX(id) AS last FROM activations"
            " WHERE user_id = ? AND remote_id IS NOT NULL"
            " GROUP BY service_code ORDER BY last DESC LIMIT ?",
            (user_id, limit),
        )
        return [str(r["service_code"]) for r in rows]

    async def prices_between(self, user_id: int, start: float, end: float) -> list[Decimal]:
        """Prices of bought, not refunded/failed activations purchased in [start, end)."""
        rows = await self.db.fetchall(
            "SELECT price FROM activations WHERE user_id = ? AND remote_id IS NOT NULL"
            f" AND state NOT IN ({literals(_NOT_SPENT)})"
            " AND purchased_at >= ? AND purchased_at < ?",
            (user_id, start, end),
        )
        return [dec(r[0]) for r in rows]

    async def counts_by_state(self) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT state, COUNT(*) FROM activations GROUP BY state ORDER BY state"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def settled_prices(self) -> list[Decimal]:
        """Prices of activations bought and not refunded/failed (the spend)."""
        rows = await self.db.fetchall(
            "SELECT price FROM activations WHERE remote_id IS NOT NULL"
            f" AND state NOT IN ({literals((*_NOT_SPENT, S.PURCHASING))})"
        )
        return [dec(r[0]) for r in rows]
