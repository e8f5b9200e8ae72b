"""The ``accounts`` table: the DaisySim keys that fund purchases."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from bot.domain.activation import OPEN_STATES
from storage.base import literals, raise_duplicate
from storage.db import Database
from storage.errors import IntegrityError
from storage.rows import AccountRow
from storage.strays import STRAY_OPEN

__all__ = ["AccountRepo"]

_CHUNK = 900  # ids per IN (...) list: well within SQLite's bound on parameters

_OPEN = literals(OPEN_STATES)


class AccountRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, account_id: int) -> AccountRow | None:
        row = await self.db.fetchone("SELECT * FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else AccountRow.from_row(row)

    async def many(self, account_ids: Collection[int]) -> list[AccountRow]:
        """The rows of these ids (unknown ids left out): start-up reads every
        account with open numbers at once, not one statement each."""
        ids = sorted(set(account_ids))
        out: list[AccountRow] = []
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            rows = await self.db.fetchall(
                f"SELECT * FROM accounts WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            )
            out.extend(AccountRow.from_row(r) for r in rows)
        return out

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
        except IntegrityError as exc:
            raise_duplicate(exc)
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
        params: list[Any] = []
        if now is not None:
            sweep = (
                " AND NOT EXISTS (SELECT 1 FROM activations w WHERE w.account_id = a.id"
                "  AND w.watch_until > ?)"
                " AND NOT EXISTS (SELECT 1 FROM stray_orders s WHERE s.account_id = a.id"
                f"  AND s.state = {literals([STRAY_OPEN])})"
            )
            params.append(now)
        rows = await self.db.fetchall(
            "SELECT * FROM accounts a WHERE a.removed_at IS NOT NULL"
            " AND a.key_encrypted IS NOT NULL AND NOT EXISTS ("
            f"  SELECT 1 FROM activations t WHERE t.account_id = a.id"
            f"  AND t.state IN ({_OPEN})){sweep}",
            params,
        )
        return [AccountRow.from_row(r) for r in rows]
