"""The SQL behind ``/healthz``: a write probe and the age of the event outbox."""

from __future__ import annotations

import os
import time
from pathlib import Path

from storage import open_database
from storage.db import Database

__all__ = ["MIN_FREE_BYTES", "HealthRepo", "check_writable"]

# Less free space than this on the database's file system counts as a full disk.
MIN_FREE_BYTES = 1024 * 1024


class HealthRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def write_probe(self, now: float) -> None:
        """Rewrite and commit the one health row, as every write of the bot is done
        (``BEGIN IMMEDIATE`` … ``COMMIT``). Raises ``sqlite3.Error`` when the database
        cannot be written: a read-only file or file system, a full disk, an I/O error,
        or a lock held by another process beyond the busy timeout."""
        async with self.db.transaction():
            changed = await self.db.execute(
                "UPDATE health_probe SET probed_at = ? WHERE id = 1", (now,)
            )
            if changed == 0:
                await self.db.execute(
                    "INSERT INTO health_probe (id, probed_at) VALUES (1, ?)", (now,)
                )

    def free_bytes(self) -> int | None:
        """Free space on the database's file system (None for ``:memory:``). A commit
        into WAL space that is already allocated succeeds on a full disk, so the write
        probe alone may not see it; this does."""
        if self.db.path == ":memory:" or self.db.dialect != "sqlite":
            return None  # PostgreSQL: the server's disk; a full one fails the write probe
        folder = Path(self.db.path).resolve().parent
        stat = os.statvfs(folder)
        return stat.f_bavail * stat.f_frsize

    async def oldest_undelivered_event(self) -> float | None:
        """``created_at`` of the oldest event not yet delivered (None: the outbox is empty)."""
        value = await self.db.fetchval(
            "SELECT MIN(created_at) FROM events WHERE delivered_at IS NULL"
        )
        return None if value is None else float(value)


async def check_writable(path: str) -> None:
    """Open (creating and migrating if needed) the database at ``path`` (a SQLite path
    or a ``postgresql://`` URL) and commit the write probe. Raises one of
    ``storage.errors.DatabaseErrors`` when it cannot be reached or written."""
    db = await open_database(path)
    try:
        await HealthRepo(db).write_probe(time.time())
    finally:
        await db.close()
