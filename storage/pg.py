"""PostgreSQL access (asyncpg): the same interface as :class:`storage.db.Database`.

One connection per process, like SQLite: every statement of the bot goes through
it, under one :class:`asyncio.Lock` (``async with db.transaction():`` holds it from
``BEGIN`` to ``COMMIT``; statements inside, by the task that opened it, run without
re-taking it). Leadership (storage/leader.py) is a session advisory lock on this
same connection, so losing the connection loses the lock *and* every way to write:
that is the fence. :meth:`PostgresDatabase.on_connection_lost` callbacks run when
the connection dies (not on :meth:`close`).

Writers of several processes serialize exactly like SQLite's ``BEGIN IMMEDIATE``:
:meth:`transaction` sends ``BEGIN; SELECT pg_advisory_xact_lock(WRITE_LOCK_KEY)`` in
one round trip, so every read-then-write inside a transaction sees all writes
committed before it and none while it runs. Guarded UPDATEs and UNIQUE constraints
stay the primary guard.

Statements: repositories write ``?`` placeholders; they are rewritten to ``$n``
(outside quoted literals and comments) and prepared once per SQL text (a bounded
cache). Parameters are adapted to the types the server inferred, as SQLite's type
affinity does (a decimal string for a NUMERIC, a number for a TEXT). Rows are
asyncpg Records (``row["col"]``, ``row[0]``, ``dict(row)``, ``row.keys()``), NUMERIC
columns read back as :class:`~decimal.Decimal`. Errors are translated into
:mod:`storage.errors` (``ConstraintError`` for constraints and triggers).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage.db import Database, Migration, Synchronous
from storage.errors import ConnectionLostError, ConstraintError, StorageError

__all__ = [
    "MIGRATE_LOCK_KEY",
    "WRITE_LOCK_KEY",
    "PostgresDatabase",
    "redact_url",
    "to_dollar",
]

logger = logging.getLogger("storage")

Params = Sequence[Any]

# Advisory lock keys (bigints, "DaisyWrT" / "DaisyMig"); leadership's is in
# storage/leader.py and differs from both.
WRITE_LOCK_KEY = 0x4461_6973_7957_7254
MIGRATE_LOCK_KEY = 0x4461_6973_794D_6967

# A dead machine (no FIN) releases its locks after idle + interval * count seconds.
KEEPALIVE_IDLE = 5
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 3

STATEMENT_CACHE = 1024  # prepared statements kept per connection (LRU)

_TOKEN = re.compile(
    r"'(?:[^']|'')*'"  # string literal
    r'|"(?:[^"]|"")*"'  # quoted identifier
    r"|--[^\n]*"  # line comment
    r"|/\*.*?\*/"  # block comment
    r"|\?",
    re.S,
)
_INSERT_TABLE = re.compile(r'^\s*INSERT\s+INTO\s+"?([A-Za-z_][A-Za-z0-9_]*)"?', re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)


def redact_url(url: str) -> str:
    """The URL without its password (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@lru_cache(maxsize=4096)
def to_dollar(sql: str) -> str:
    """``?`` placeholders → ``$1, $2, …`` (not inside literals, identifiers, comments)."""
    counter = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(0) != "?":
            return match.group(0)
        counter += 1
        return f"${counter}"

    return _TOKEN.sub(replace, sql)


# ------------------------------------------------------------ parameter adapters
def _to_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float | Decimal):
        return str(value)
    return value


def _to_int(value: Any) -> Any:
    if isinstance(value, str):
        return int(value)
    if isinstance(value, float | Decimal) and value == int(value):
        return int(value)
    return value


def _to_float(value: Any) -> Any:
    if isinstance(value, str | Decimal):
        return float(value)
    return value


def _to_numeric(value: Any) -> Any:
    if isinstance(value, str):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _to_bool(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return bool(value)
    return value


_ADAPTERS: dict[str, Callable[[Any], Any]] = {
    "text": _to_text, "varchar": _to_text, "bpchar": _to_text, "name": _to_text,
    "int2": _to_int, "int4": _to_int, "int8": _to_int,
    "float4": _to_float, "float8": _to_float,
    "numeric": _to_numeric,
    "bool": _to_bool,
}


class _Statement:
    __slots__ = ("adapters", "prepared")

    def __init__(self, prepared: Any) -> None:
        self.prepared = prepared
        self.adapters = tuple(_ADAPTERS.get(t.name) for t in prepared.get_parameters())

    def args(self, params: Params) -> list[Any]:
        if len(params) != len(self.adapters):
            raise StorageError(
                f"the statement takes {len(self.adapters)} parameters, {len(params)} given"
            )
        return [v if a is None else a(v) for a, v in zip(self.adapters, params, strict=True)]


def _rowcount(status: str | None) -> int:
    """``UPDATE 3`` / ``INSERT 0 1`` / ``DELETE 0`` → the number of rows."""
    if not status:
        return 0
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def _translate(exc: BaseException, conn: Any) -> Exception | None:
    """asyncpg's error → the storage error callers catch (None: leave it)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        message = str(exc)
        if state.startswith("23") or state == "P0001":
            return ConstraintError(
                message, sqlstate=state, constraint=getattr(exc, "constraint_name", None)
            )
        if state.startswith(_LOST_STATES):
            return ConnectionLostError(message, sqlstate=state)
        return StorageError(f"{type(exc).__name__}: {message}", sqlstate=state or None)
    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncio.TimeoutError):
        if (
            conn is None or conn.is_closed()
            or isinstance(exc, OSError | asyncpg.ConnectionDoesNotExistError)
        ):
            return ConnectionLostError(f"connection to PostgreSQL lost: {exc}")
        return StorageError(f"{type(exc).__name__}: {exc}")
    return None


class PostgresDatabase(Database):
    """One asyncpg connection with the interface of :class:`Database`."""

    dialect = "postgresql"
    _SCHEMA_VERSION_DDL = (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " applied_at DOUBLE PRECISION NOT NULL)"
    )

    def __init__(self, conn: Any, url: str) -> None:
        self._pg = conn
        self.path = redact_url(url)  # never the password
        self._lock = asyncio.Lock()
        self._owner: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"pg_tx_{id(self)}", default=False
        )
        self._closed = False
        self._lost = False
        self._statements: OrderedDict[str, _Statement] = OrderedDict()
        self._id_tables: frozenset[str] | None = None
        self._lost_callbacks: list[Callable[[], object]] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._trace: Callable[[str], object] | None = None
        conn.add_termination_listener(self._terminated)

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    async def open(
        cls,
        path: Any,
        *,
        synchronous: Synchronous = "FULL",
        migrate: bool = True,
        connect_timeout: float = 10.0,
        application_name: str = "daisybot",
    ) -> PostgresDatabase:
        """Connect to ``path`` (a ``postgresql://`` URL) and migrate.
        ``synchronous`` is SQLite's; on PostgreSQL commits are durable as the
        server is configured (``synchronous_commit``)."""
        url = str(path)
        try:
            conn = await asyncpg.connect(
                url,
                timeout=connect_timeout,
                statement_cache_size=0,  # prepared statements: our own cache
                server_settings={
                    "application_name": application_name,
                    "tcp_keepalives_idle": str(KEEPALIVE_IDLE),
                    "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL),
                    "tcp_keepalives_count": str(KEEPALIVE_COUNT),
                    "timezone": "UTC",
                },
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _translate(exc, None) or exc from exc
        except (OSError, TimeoutError) as exc:  # refused, unknown host, no answer
            reason = str(exc).strip() or type(exc).__name__
            raise ConnectionLostError(f"cannot connect to PostgreSQL: {reason}") from exc
        except ValueError as exc:  # asyncpg cannot parse the URL
            raise StorageError(f"not a usable PostgreSQL URL: {exc}") from exc
        try:
            _client_keepalive(conn)
            db = cls(conn, url)
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
            self._statements.clear()
            with contextlib.suppress(Exception):
                await self._pg.close(timeout=5)
            if not self._pg.is_closed():
                self._pg.terminate()

    async def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Call ``callback(sql)`` for every statement run from now on (the ``?``
        text; BEGIN / COMMIT / ROLLBACK too, as SQLite's trace shows them)."""
        self._trace = callback

    def on_connection_lost(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once when the connection dies (not on close())."""
        self._lost_callbacks.append(callback)

    @property
    def connection_lost(self) -> bool:
        return self._lost

    def _terminated(self, _conn: Any) -> None:
        if self._closed or self._lost:
            return
        self._lost = True
        logger.error("the connection to PostgreSQL was lost")
        for callback in list(self._lost_callbacks):
            try:
                result = callback()
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                logger.exception("on_connection_lost callback failed")

    # -------------------------------------------------------------- migrations
    async def migrate(self, migrations: Iterable[Migration] | None = None) -> int:
        """As :meth:`Database.migrate`, under a session advisory lock: two processes
        starting together apply each migration once (each in its own transaction,
        the version re-checked inside it)."""
        await self._raw("SELECT pg_advisory_lock($1)", MIGRATE_LOCK_KEY)
        try:
            version = await super().migrate(migrations)
        finally:
            if not self._pg.is_closed():
                await self._raw("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK_KEY)
            self._statements.clear()  # plans may depend on the old schema
            self._id_tables = None
        return version

    async def _apply_script(self, script: str) -> None:
        # ONE simple-query execute: plpgsql bodies contain ';' (no parameters).
        async with self._access():
            await self._run(self._pg.execute(script))

    async def _raw(self, sql: str, *args: Any) -> Any:
        async with self._access():
            return await self._run(self._pg.fetchval(sql, *args))

    # ------------------------------------------------------------ transactions
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """``BEGIN`` + the write lock … ``COMMIT`` (``ROLLBACK`` on any exception).

        Nested use in the same task joins the outer transaction."""
        if self._owner.get():
            yield
            return
        async with self._lock:
            self._check_open()
            token = self._owner.set(True)
            try:
                if self._trace is not None:
                    self._trace("BEGIN")
                await self._run(
                    self._pg.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
                )
                try:
                    yield
                except BaseException:
                    if self._trace is not None:
                        self._trace("ROLLBACK")
                    if not self._pg.is_closed():
                        with contextlib.suppress(Exception):
                            await self._pg.execute("ROLLBACK")
                    raise
                if self._trace is not None:
                    self._trace("COMMIT")
                await self._run(self._pg.execute("COMMIT"))
            finally:
                self._owner.reset(token)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLostError("database is closed")
        if self._lost or self._pg.is_closed():
            raise ConnectionLostError("the connection to PostgreSQL was lost")

    @asynccontextmanager
    async def _access(self) -> AsyncIterator[None]:
        if self._owner.get():
            self._check_open()
            yield
        else:
            async with self._lock:
                self._check_open()
                yield

    async def _run(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except Exception as exc:
            translated = _translate(exc, self._pg)
            if translated is None:
                raise
            raise translated from exc

    async def _statement(self, sql: str, *, trace: bool = True) -> _Statement:
        if trace and self._trace is not None:
            self._trace(sql)
        cached = self._statements.get(sql)
        if cached is not None:
            self._statements.move_to_end(sql)
            return cached
        prepared = await self._run(self._pg.prepare(to_dollar(sql)))
        stmt = _Statement(prepared)
        self._statements[sql] = stmt
        if len(self._statements) > STATEMENT_CACHE:
            self._statements.popitem(last=False)
        return stmt

    async def _fetch(self, sql: str, params: Params) -> tuple[list[Any], str | None]:
        stmt = await self._statement(sql)
        rows = await self._run(stmt.prepared.fetch(*stmt.args(params)))
        return rows, stmt.prepared.get_statusmsg()

    # -------------------------------------------------------------- statements
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        async with self._access():
            _, status = await self._fetch(sql, params)
        return _rowcount(status)

    async def insert(self, sql: str, params: Params = ()) -> int | None:
        """Run an INSERT; returns the new row's ``id`` (``RETURNING id`` is added
        when the table has one), None if nothing was inserted (``ON CONFLICT DO
        NOTHING``). A table without ``id``: 1 when a row was inserted."""
        async with self._access():
            if not _RETURNING.search(sql):
                match = _INSERT_TABLE.match(sql)
                if match is not None and match.group(1).lower() in await self._tables_with_id():
                    rows, _ = await self._fetch(f"{sql} RETURNING id", params)
                    return int(rows[0][0]) if rows else None
            rows, status = await self._fetch(sql, params)
        if rows:
            return int(rows[0][0])
        return 1 if _rowcount(status) > 0 else None

    async def _tables_with_id(self) -> frozenset[str]:
        if self._id_tables is None:
            stmt = await self._statement(
                "SELECT table_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND column_name = 'id'",
                trace=False,
            )
            rows = await self._run(stmt.prepared.fetch())
            self._id_tables = frozenset(str(r[0]).lower() for r in rows)
        return self._id_tables

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        async with self._access():
            rows, _ = await self._fetch(sql, params)
        return rows

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        async with self._access():
            stmt = await self._statement(sql)
            return await self._run(stmt.prepared.fetchrow(*stmt.args(params)))

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


def _client_keepalive(conn: Any) -> None:
    """TCP keepalives on our side too: a dead server machine ends our connection
    (and so this process's leadership) instead of hanging its next statement."""
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
