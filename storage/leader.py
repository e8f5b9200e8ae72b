"""Leadership of the bot's database: which process long-polls and runs the engine.

PostgreSQL: a *session* advisory lock (``pg_try_advisory_lock``) on the process's
one connection, the connection every statement of the bot goes through. Losing the
connection loses the lock and every way to write at once: that is the fence. A
killed process releases it at once (its socket closes); a dead machine after the
server's TCP keepalives give up.

SQLite: one process per file. An ``flock`` on ``<database>.lock`` lets a second
``daisybot run`` on the same file wait hot instead of running beside the first;
the first one leads at once, as before. Where the lock file cannot be made (a
read-only folder) the process leads without it, as it always did.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["LEADER_LOCK_KEY", "LeaderHolder", "LeaderRepo"]

log = logging.getLogger("storage.leader")

# The advisory lock key of leadership (a bigint; "DaisyLdr"). It must differ from the
# keys storage.pg takes for write transactions and migrations.
LEADER_LOCK_KEY = 0x4461_6973_794C_6472


@dataclass(frozen=True, slots=True)
class LeaderHolder:
    """Who holds leadership: the PostgreSQL backend pid of the leader's connection
    (None on SQLite) and whether that is this process's own connection."""

    pid: int | None
    ours: bool


def _dialect(db: Any) -> str:
    return str(getattr(db, "dialect", "sqlite"))


class LeaderRepo:
    """``try_acquire()`` / ``release()`` / ``holder()`` on one database."""

    def __init__(self, db: Any, key: int = LEADER_LOCK_KEY) -> None:
        self.db = db
        self.key = key
        self._held = False
        self._file: IO[bytes] | None = None

    @property
    def postgresql(self) -> bool:
        return _dialect(self.db) == "postgresql"

    @property
    def held(self) -> bool:
        return self._held

    async def try_acquire(self) -> bool:
        """Take leadership if nobody holds it; True when this process holds it.
        Idempotent (a held lock is not taken twice)."""
        if self._held:
            return True
        if self.postgresql:
            got = await self.db.fetchval("SELECT pg_try_advisory_lock(?)", (self.key,))
            self._held = bool(got)
        else:
            self._held = self._flock()
        return self._held

    async def release(self) -> None:
        """Give leadership up (graceful stop: the next process takes over at once)."""
        if not self._held:
            return
        self._held = False
        if self.postgresql:
            if not getattr(self.db, "closed", False):
                await self.db.fetchval("SELECT pg_advisory_unlock(?)", (self.key,))
        elif self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
            file.close()

    async def holder(self) -> LeaderHolder | None:
        """The leader's backend (from ``pg_locks``), None when nobody leads. SQLite:
        this process when it holds the file lock, else unknown (None)."""
        if not self.postgresql:
            return LeaderHolder(None, True) if self._held else None
        row = await self.db.fetchone(
            "SELECT l.pid, l.pid = pg_backend_pid() AS ours FROM pg_locks l"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = ? AND l.objid = ? AND l.objsubid = 1",
            (self.key >> 32, self.key & 0xFFFF_FFFF),
        )
        if row is None:
            return None
        return LeaderHolder(int(row[0]), bool(row[1]))

    async def backend_pid(self) -> int | None:
        """This process's PostgreSQL backend pid (None on SQLite)."""
        if not self.postgresql:
            return None
        return int(await self.db.fetchval("SELECT pg_backend_pid()"))

    async def ping(self) -> bool:
        """The connection answers a statement."""
        return await self.db.fetchval("SELECT 1") == 1

    # ------------------------------------------------------------------ SQLite
    def _lock_path(self) -> str | None:
        path = str(getattr(self.db, "path", "") or "")
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        return path + ".lock"

    def _flock(self) -> bool:
        path = self._lock_path()
        if path is None:
            return True
        if self._file is None:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.warning("cannot create the lock file %s (%s): leading without it",
                            path, exc.strerror or type(exc).__name__)
                return True
            self._file = os.fdopen(fd, "r+b", buffering=0)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:  # a file system without locks
            log.warning("cannot lock %s (%s): leading without it", path,
                        exc.strerror or type(exc).__name__)
            return True
        return True
