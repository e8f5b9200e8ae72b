"""SQLite access (aiosqlite): one connection, WAL, versioned migrations, transactions.

Durability: WAL journal with ``synchronous=FULL`` by default. WAL+NORMAL already
survives a process crash (``kill -9``) without losing a committed transaction;
FULL also survives power loss / an OS crash at the cost of one more fsync per
commit, which is negligible at this bot's write rate and worth it for money.

Concurrency: the database is used from one event loop through one connection.
Statements from concurrent coroutines must not interleave with somebody else's
open transaction, so every access goes through one :class:`asyncio.Lock`:
``async with db.transaction():`` holds it from ``BEGIN IMMEDIATE`` to
``COMMIT``/``ROLLBACK``; a single statement outside a transaction holds it for that
statement (autocommit). Statements issued *inside* a transaction by the task that
opened it (tracked with a context variable) run without re-taking the lock.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, TypeVar

import aiosqlite

_T = TypeVar("_T")

__all__ = ["Database", "Dialect", "Migration", "MigrationError", "load_migrations", "split_sql"]

logger = logging.getLogger("storage")

Params = Sequence[Any]
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database schema cannot be brought to the version this code expects."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


Dialect = Literal["sqlite", "postgresql"]

# One folder of migrations per backend, the same versions and names in both.
_MIGRATION_FOLDERS: dict[str, str] = {"sqlite": "migrations", "postgresql": "migrations_pg"}


def load_migrations(dialect: Dialect = "sqlite") -> list[Migration]:
    """``storage/migrations/NNNN_name.sql`` (SQLite) or ``storage/migrations_pg/``
    (PostgreSQL), sorted by version (gaps not allowed).

    SQLite scripts run statement by statement (:func:`split_sql`); a PostgreSQL
    script is ONE simple-query execute (its plpgsql bodies contain ``;``)."""
    if dialect not in _MIGRATION_FOLDERS:
        raise MigrationError(f"unknown SQL dialect {dialect!r}")
    folder = resources.files("storage").joinpath(_MIGRATION_FOLDERS[dialect])
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration versions must be 1..n without gaps: {found!r}")
    return found


def split_sql(script: str) -> list[str]:
    """Split a script into complete statements (``executescript`` would COMMIT the
    surrounding transaction first, so migrations run statement by statement)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if not buffer and (not line.strip() or line.strip().startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise MigrationError(f"incomplete SQL statement at the end of a migration: {buffer!r}")
    return statements


class Database:
    """One aiosqlite connection with a transaction helper. Use :meth:`open`.

    :class:`storage.pg.PostgresDatabase` is the same interface on PostgreSQL;
    :func:`storage.open_database` picks one from a path or a ``postgresql://`` URL."""

    dialect: Dialect = "sqlite"
    _SCHEMA_VERSION_DDL = (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " applied_at REAL NOT NULL)"
    )

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._owner: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"db_tx_{id(self)}", default=False
        )
        self._closed = False

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        migrate: bool = True,
    ) -> Database:
        """Open (creating if needed) and migrate. ``":memory:"`` for a private
        in-memory database."""
        target = os.fspath(path)
        conn = await aiosqlite.connect(target, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA busy_timeout = 10000")
            if target != ":memory:":
                cursor = await conn.execute("PRAGMA journal_mode = WAL")
                row = await cursor.fetchone()
                if row is None or str(row[0]).lower() != "wal":
                    logger.warning("could not enable WAL journal (got %r)", row)
            await conn.execute(f"PRAGMA synchronous = {synchronous}")
            await conn.execute("PRAGMA foreign_keys = ON")
            db = cls(conn, target)
            if migrate:
                await db.migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await self._conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Call ``callback(sql)`` for every statement run from now on (None: stop);
        tests count statements with it, on either backend."""
        await self._conn.set_trace_callback(callback)  # type: ignore[arg-type]

    def on_connection_lost(self, callback: Callable[[], object]) -> None:
        """PostgreSQL calls ``callback()`` when its connection dies; a SQLite file
        has no connection to lose, so this never calls it."""

    # -------------------------------------------------------------- migrations
    async def migrate(self, migrations: Iterable[Migration] | None = None) -> int:
        """Apply pending migrations, each in its own transaction. Returns the
        schema version. Idempotent; safe with several processes (BEGIN IMMEDIATE
        and a re-check of the version inside the transaction)."""
        pending = list(load_migrations(self.dialect) if migrations is None else migrations)
        known = max((m.version for m in pending), default=0)
        async with self.transaction():
            await self.execute(self._SCHEMA_VERSION_DDL)
        current = await self.schema_version()
        if current > known:
            raise MigrationError(
                f"database schema version {current} is newer than this code ({known})"
            )
        for migration in pending:
            if migration.version <= current:
                continue
            async with self.transaction():
                # Re-check inside the write lock: another process may have done it.
                if await self.schema_version() >= migration.version:
                    continue
                await self._apply_script(migration.sql)
                await self.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
            logger.info("applied migration %04d_%s", migration.version, migration.name)
        return await self.schema_version()

    async def _apply_script(self, script: str) -> None:
        """One migration's SQL, inside its transaction: statement by statement."""
        for statement in split_sql(script):
            await self.execute(statement)

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        return int(row["v"]) if row is not None else 0

    # ------------------------------------------------------------ transactions
    @property
    def in_transaction(self) -> bool:
        """True inside a :meth:`transaction` opened by the current task."""
        return self._owner.get()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception).

        Nested use in the same task joins the outer transaction."""
        if self._owner.get():
            yield
            return
        async with self._lock:
            token = self._owner.set(True)
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")
            finally:
                self._owner.reset(token)

    @asynccontextmanager
    async def _access(self) -> AsyncIterator[None]:
        if self._closed:
            raise sqlite3.ProgrammingError("database is closed")
        if self._owner.get():
            yield
        else:
            async with self._lock:
                yield

    # -------------------------------------------------------------- statements
    # Each statement is ONE hop to aiosqlite's thread (execute, fetch and close there
    # together): aiosqlite's cursor API costs a hop per call, 2-3 per statement,
    # 100-130 us of CPU against 40-50 us (issue 14.5; measured in the README).
    async def _in_thread(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        # aiosqlite runs queued functions on its connection's thread, in order
        # (Connection._execute: the same queue its public methods use).
        conn = self._conn
        return await conn._execute(fn, conn._conn)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(sql, params)
            try:
                return cursor.rowcount
            finally:
                cursor.close()

        async with self._access():
            return await self._in_thread(run)

    async def insert(self, sql: str, params: Params = ()) -> int | None:
        """Run an INSERT; returns the new rowid (None if nothing was inserted,
        e.g. ``ON CONFLICT DO NOTHING``)."""
        def run(conn: sqlite3.Connection) -> int | None:
            cursor = conn.execute(sql, params)
            try:
                return cursor.lastrowid if cursor.rowcount > 0 else None
            finally:
                cursor.close()

        async with self._access():
            return await self._in_thread(run)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._access():
            return list(await self._conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        def run(conn: sqlite3.Connection) -> sqlite3.Row | None:
            cursor = conn.execute(sql, params)
            try:
                row: sqlite3.Row | None = cursor.fetchone()
                return row
            finally:
                cursor.close()

        async with self._access():
            return await self._in_thread(run)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]
