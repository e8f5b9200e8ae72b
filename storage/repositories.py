"""Repositories: every SQL statement of the bot lives here (and in migrations).

Each method is a single statement (or a read) on the shared :class:`Database`;
callers compose several in ``async with db.transaction():`` to make a multi-row
change atomic. State changes are *guarded* (``UPDATE … WHERE id = ? AND state IN
(…)``) and report whether they happened, so a lost race is visible and harmless.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from storage.db import Database
from storage.rows import (
    OPEN_STATES,
    AccountRow,
    ActivationRow,
    EventRow,
    LedgerRow,
    StrayRow,
    UserRow,
    dec,
)

__all__ = [
    "AccountRepo",
    "ActivationRepo",
    "DuplicateError",
    "EventRepo",
    "LedgerRepo",
    "Repositories",
    "StrayRepo",
    "UserRepo",
]

_ONCE_KINDS = ("hold", "charge", "release", "refund")


class DuplicateError(Exception):
    """A UNIQUE constraint refused the row (e.g. a repeated purchase request id)."""


def _money(value: object) -> object:
    """Decimals are stored as their exact string; other values unchanged."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("amounts must be finite")
        return str(value)
    return value


def _marks(n: int) -> str:
    if n < 1:
        raise ValueError("an IN (...) list needs at least one value")
    return ", ".join("?" * n)


# --------------------------------------------------------------------------- users


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

    async def set_role(self, user_id: int, role: str) -> bool:
        return await self.db.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id)) > 0

    async def set_settings(self, user_id: int, settings_json: str) -> bool:
        return (
            await self.db.execute(
                "UPDATE users SET settings = ? WHERE id = ?", (settings_json, user_id)
            )
            > 0
        )

    async def count(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM users"))


# --------------------------------------------------------------------------- accounts


class AccountRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, account_id: int) -> AccountRow | None:
        row = await self.db.fetchone("SELECT * FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else AccountRow.from_row(row)

    async def by_hash(self, key_hash: str) -> AccountRow | None:
        row = await self.db.fetchone("SELECT * FROM accounts WHERE key_hash = ?", (key_hash,))
        return None if row is None else AccountRow.from_row(row)

    async def active_for_user(self, user_id: int) -> AccountRow | None:
        row = await self.db.fetchone(
            "SELECT * FROM accounts WHERE owner_user_id = ? AND removed_at IS NULL",
            (user_id,),
        )
        return None if row is None else AccountRow.from_row(row)

    async def active_operator(self) -> AccountRow | None:
        row = await self.db.fetchone(
            "SELECT * FROM accounts WHERE kind = 'operator' AND removed_at IS NULL "
            "ORDER BY id DESC LIMIT 1"
        )
        return None if row is None else AccountRow.from_row(row)

    async def insert(
        self,
        *,
        kind: str,
        owner_user_id: int | None,
        key_hash: str,
        key_encrypted: str | None,
        key_masked: str,
        email: str | None,
        now: float,
    ) -> int:
        try:
            rowid = await self.db.insert(
                "INSERT INTO accounts (kind, owner_user_id, key_hash, key_encrypted, key_masked,"
                " email, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, owner_user_id, key_hash, key_encrypted, key_masked, email, now),
            )
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise DuplicateError(str(exc)) from exc
            raise
        assert rowid is not None
        return rowid

    async def relink(
        self,
        account_id: int,
        *,
        owner_user_id: int | None,
        key_encrypted: str | None,
        key_masked: str,
        email: str | None,
    ) -> bool:
        """Bring a soft-deleted account back (the same key linked again)."""
        return (
            await self.db.execute(
                "UPDATE accounts SET removed_at = NULL, owner_user_id = ?, key_encrypted = ?,"
                " key_masked = ?, email = ? WHERE id = ?",
                (owner_user_id, key_encrypted, key_masked, email, account_id),
            )
            > 0
        )

    async def set_email(self, account_id: int, email: str | None) -> None:
        await self.db.execute("UPDATE accounts SET email = ? WHERE id = ?", (email, account_id))

    async def remove(self, account_id: int, now: float) -> bool:
        """Soft delete (unlink). The encrypted key stays until :meth:`wipe_key`."""
        return (
            await self.db.execute(
                "UPDATE accounts SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
                (now, account_id),
            )
            > 0
        )

    async def wipe_key(self, account_id: int) -> bool:
        """Forget the encrypted key of a removed account (refused while active)."""
        return (
            await self.db.execute(
                "UPDATE accounts SET key_encrypted = NULL "
                "WHERE id = ? AND removed_at IS NOT NULL AND key_encrypted IS NOT NULL",
                (account_id,),
            )
            > 0
        )

    async def removed_keys_without_open_activations(
        self, now: float | None = None
    ) -> list[AccountRow]:
        """Unlinked accounts whose key is no longer needed. With ``now``, a key is
        also kept while a written-off purchase of the account is watched or one of
        its stray orders is still to be cancelled."""
        sweep = ""
        params: list[Any] = list(OPEN_STATES)
        if now is not None:
            sweep = (
                " AND NOT EXISTS (SELECT 1 FROM activations w WHERE w.account_id = a.id"
                "  AND w.watch_until > ?)"
                " AND NOT EXISTS (SELECT 1 FROM stray_orders s WHERE s.account_id = a.id"
                "  AND s.state = 'cancelling')"
            )
            params.append(now)
        rows = await self.db.fetchall(
            "SELECT * FROM accounts a WHERE a.removed_at IS NOT NULL"
            " AND a.key_encrypted IS NOT NULL AND NOT EXISTS ("
            f"  SELECT 1 FROM activations t WHERE t.account_id = a.id"
            f"  AND t.state IN ({_marks(len(OPEN_STATES))})){sweep}",
            params,
        )
        return [AccountRow.from_row(r) for r in rows]


# --------------------------------------------------------------------------- activations

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
                " VALUES (?, ?, ?, ?, ?, ?, 'purchasing', ?, ?, ?, ?)",
                (
                    user_id,
                    account_id,
                    service_code,
                    service_name,
                    provider_id,
                    _money(price),
                    request_id,
                    sent_at,
                    chat_id,
                    message_id,
                ),
            )
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise DuplicateError(str(exc)) from exc
            raise
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
            f"SELECT * FROM activations WHERE state IN ({_marks(len(OPEN_STATES))}) ORDER BY id",
            OPEN_STATES,
        )
        return [ActivationRow.from_row(r) for r in rows]

    async def list_all(self) -> list[ActivationRow]:
        rows = await self.db.fetchall("SELECT * FROM activations ORDER BY id")
        return [ActivationRow.from_row(r) for r in rows]

    @staticmethod
    def _user_filter(states: Sequence[str] | None) -> tuple[str, list[Any]]:
        # Never-bought attempts (failed without a number) are not shown to users.
        clause = "user_id = ? AND NOT (state = 'failed' AND remote_id IS NULL)"
        params: list[Any] = []
        if states:
            clause += f" AND state IN ({_marks(len(states))})"
            params.extend(states)
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
        clause, extra = self._user_filter(states)
        order = "DESC" if newest_first else "ASC"
        rows = await self.db.fetchall(
            f"SELECT * FROM activations WHERE {clause} ORDER BY id {order} LIMIT ? OFFSET ?",
            [user_id, *extra, limit, offset],
        )
        return [ActivationRow.from_row(r) for r in rows]

    async def count_for_user(self, user_id: int, states: Sequence[str] | None = None) -> int:
        clause, extra = self._user_filter(states)
        return int(
            await self.db.fetchval(
                f"SELECT COUNT(*) FROM activations WHERE {clause}", [user_id, *extra]
            )
        )

    async def transition(
        self, activation_id: int, from_states: Iterable[str], to_state: str, **fields: Any
    ) -> bool:
        """``state := to_state`` (and ``fields``) iff the current state is one of
        ``from_states``. Returns whether the row changed."""
        allowed = tuple(from_states)
        sets, params = self._sets(fields)
        sql = (
            f"UPDATE activations SET state = ?{', ' if sets else ''}{sets}"
            f" WHERE id = ? AND state IN ({_marks(len(allowed))})"
        )
        return await self.db.execute(sql, [to_state, *params, activation_id, *allowed]) > 0

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
            states = tuple(only_states)
            sql += f" AND state IN ({_marks(len(states))})"
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
            params.append(_money(value))
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
                f" AND state IN ({_marks(len(OPEN_STATES))})",
                [account_id, *OPEN_STATES],
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
            " AND state NOT IN ('refunded', 'failed')"
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
            " AND state NOT IN ('refunded', 'failed', 'purchasing')"
        )
        return [dec(r[0]) for r in rows]

    async def per_service(self) -> list[tuple[str, str | None, int, int]]:
        rows = await self.db.fetchall(
            "SELECT service_name, provider_id, COUNT(*) AS total,"
            " SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END) AS completed"
            " FROM activations WHERE remote_id IS NOT NULL"
            " GROUP BY service_name, provider_id ORDER BY total DESC, service_name"
        )
        return [
            (str(r["service_name"]), r["provider_id"], int(r["total"]), int(r["completed"]))
            for r in rows
        ]


# --------------------------------------------------------------------------- ledger


class LedgerRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        user_id: int,
        amount: Decimal,
        kind: str,
        now: float,
        activation_id: int | None = None,
        note: str = "",
        actor_id: int | None = None,
    ) -> int | None:
        """Append an entry. For ``hold``/``charge``/``release``/``refund`` at most
        one per activation exists: a second one is not written and None is
        returned."""
        if kind in _ONCE_KINDS:
            return await self.db.insert(
                "INSERT INTO ledger (user_id, amount, kind, activation_id, note, actor_id,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (activation_id, kind)"
                " WHERE kind IN ('hold', 'charge', 'release', 'refund') DO NOTHING",
                (user_id, _money(amount), kind, activation_id, note, actor_id, now),
            )
        return await self.db.insert(
            "INSERT INTO ledger (user_id, amount, kind, activation_id, note, actor_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, _money(amount), kind, activation_id, note, actor_id, now),
        )

    async def balance(self, user_id: int) -> Decimal:
        """Exact: the Decimal sum of the user's entries (never SQL float sums)."""
        rows = await self.db.fetchall("SELECT amount FROM ledger WHERE user_id = ?", (user_id,))
        return sum((dec(r[0]) for r in rows), Decimal(0))

    async def entries(self, user_id: int, limit: int | None = None) -> list[LedgerRow]:
        """Newest first."""
        sql = "SELECT * FROM ledger WHERE user_id = ? ORDER BY id DESC"
        params: list[Any] = [user_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self.db.fetchall(sql, params)
        return [LedgerRow.from_row(r) for r in rows]

    async def for_activation(self, activation_id: int) -> list[LedgerRow]:
        rows = await self.db.fetchall(
            "SELECT * FROM ledger WHERE activation_id = ? ORDER BY id", (activation_id,)
        )
        return [LedgerRow.from_row(r) for r in rows]

    async def get(self, activation_id: int, kind: str) -> LedgerRow | None:
        row = await self.db.fetchone(
            "SELECT * FROM ledger WHERE activation_id = ? AND kind = ? ORDER BY id LIMIT 1",
            (activation_id, kind),
        )
        return None if row is None else LedgerRow.from_row(row)

    async def all(self) -> list[LedgerRow]:
        rows = await self.db.fetchall("SELECT * FROM ledger ORDER BY id")
        return [LedgerRow.from_row(r) for r in rows]


# --------------------------------------------------------------------------- events


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
        await self.db.execute(
            "UPDATE events SET dispatches = MAX(dispatches - 1, attempts), next_attempt_at = ?,"
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


# --------------------------------------------------------------------------- stray orders


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
            " UNION SELECT account_id FROM stray_orders WHERE state = 'cancelling'",
            (now,),
        )
        return sorted({int(r[0]) for r in rows})

    async def purchasing_labels(self, account_id: int) -> dict[str, float]:
        """Service code and name of every purchase of the account still in doubt or
        on the wire (their orders may not be known yet) -> the earliest time such a
        purchase was sent."""
        rows = await self.db.fetchall(
            "SELECT service_code, service_name, purchase_sent_at FROM activations"
            " WHERE account_id = ? AND state = 'purchasing'",
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
                account_id, remote_id, activation_id, service, phone, _money(amount),
                ordered_at, now, state, code, next_attempt_at,
                now if state != "cancelling" else None,
            ),
        )

    async def get(self, stray_id: int) -> StrayRow | None:
        row = await self.db.fetchone("SELECT * FROM stray_orders WHERE id = ?", (stray_id,))
        return None if row is None else StrayRow.from_row(row)

    async def open(self, account_id: int | None = None) -> list[StrayRow]:
        """Orders still to cancel (all accounts if ``account_id`` is None)."""
        sql = "SELECT * FROM stray_orders WHERE state = 'cancelling'"
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
                f" WHERE id = ? AND state IN ({_marks(len(allowed))})",
                [to_state, *(_money(fields[n]) for n in names), stray_id, *allowed],
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


# --------------------------------------------------------------------------- facade


class Repositories:
    """All repositories over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = UserRepo(db)
        self.accounts = AccountRepo(db)
        self.activations = ActivationRepo(db)
        self.ledger = LedgerRepo(db)
        self.events = EventRepo(db)
        self.strays = StrayRepo(db)
