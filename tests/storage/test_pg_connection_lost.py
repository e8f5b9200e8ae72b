"""A PostgreSQL connection that asyncpg aborts itself is reported lost too.

asyncpg runs its termination listeners when the server or the network ends the
connection, but not when it aborts the connection itself: a statement started while
the server's FATAL "terminating connection due to administrator command" was still
being consumed raises InternalClientError and aborts the protocol, and no listener
runs. The failover soak's connection kill (tests/bench/failover_soak.py, kind
"fence") hit exactly that: the leader's connection was gone, but it never exited 75
and went on long polling Telegram beside the new leader. The database now reports
the loss at the first statement that finds the connection closed.
"""

from __future__ import annotations

import asyncio

import pytest

from storage import ConnectionLostError, open_database
from storage.pg import PostgresDatabase


async def test_a_connection_asyncpg_aborted_itself_is_reported_lost_once(
    postgres_url: str,
) -> None:
    db = await open_database(postgres_url)
    assert isinstance(db, PostgresDatabase)
    calls: list[int] = []
    db.on_connection_lost(lambda: calls.append(1))
    try:
        assert await db.fetchval("SELECT 1") == 1
        db._pg._protocol.abort()  # what asyncpg does on a protocol error (no listener)
        await asyncio.sleep(0.05)
        assert db._pg.is_closed()
        for _ in range(2):
            with pytest.raises(ConnectionLostError):
                await db.fetchval("SELECT 1")
        assert calls == [1] and db.connection_lost
    finally:
        await db.close()


async def test_a_statement_that_fails_on_the_aborted_connection_reports_it(
    postgres_url: str,
) -> None:
    db = await open_database(postgres_url)
    assert isinstance(db, PostgresDatabase)
    calls: list[int] = []
    db.on_connection_lost(lambda: calls.append(1))
    try:
        sleeper = asyncio.ensure_future(db.fetchval("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        db._pg._protocol.abort()
        with pytest.raises(ConnectionLostError):
            await sleeper
        assert calls == [1]
    finally:
        await db.close()
