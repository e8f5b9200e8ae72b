"""storage.pg.PostgresDatabase: the Database interface on a real PostgreSQL.

Two PostgresDatabase objects on one database stand for two bot processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from storage import (
    ConnectionLostError,
    DatabaseErrors,
    DuplicateError,
    IntegrityError,
    Repositories,
    is_postgres_url,
    open_database,
)
from storage.db import Database, load_migrations
from storage.pg import MIGRATE_LOCK_KEY, WRITE_LOCK_KEY, PostgresDatabase, redact_url, to_dollar

pytestmark = pytest.mark.postgres

WAIT = 10.0


@pytest_asyncio.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    db = await open_database(postgres_url)
    assert isinstance(db, PostgresDatabase)
    yield db
    await db.close()


async def _user(db: Database, user_id: int = 1) -> None:
    await db.execute("INSERT INTO users (id, created_at) VALUES (?, ?)", (user_id, 1.0))


# ------------------------------------------------------------------ pure parts
def test_placeholders_are_rewritten_outside_literals_and_comments() -> None:
    sql = "SELECT '?', \"a?\", x -- what?\n FROM t WHERE a = ? AND b IN (?, ?) /* ? */"
    assert to_dollar(sql) == (
        "SELECT '?', \"a?\", x -- what?\n FROM t WHERE a = $1 AND b IN ($2, $3) /* ? */"
    )
    assert to_dollar("SELECT 'it''s ?' || ?") == "SELECT 'it''s ?' || $1"


def test_urls_select_the_backend_and_passwords_are_redacted() -> None:
    assert is_postgres_url("postgresql://u@h/db") and is_postgres_url("postgres://u@h/db")
    assert not is_postgres_url("daisybot.sqlite3") and not is_postgres_url(":memory:")
    assert redact_url("postgresql://bot:s3cret@db:5432/daisy") == (
        "postgresql://bot:***@db:5432/daisy"
    )
    assert redact_url("postgresql://bot@db/daisy") == "postgresql://bot@db/daisy"


async def test_open_database_keeps_sqlite_for_paths(tmp_path: object) -> None:
    db = await open_database(f"{tmp_path}/bot.sqlite3")
    try:
        assert type(db) is Database and db.dialect == "sqlite"
    finally:
        await db.close()


# ------------------------------------------------------------------ basics
async def test_migrates_to_the_same_version_as_sqlite(pg: PostgresDatabase) -> None:
    assert pg.dialect == "postgresql"
    assert await pg.schema_version() == len(load_migrations("sqlite"))
    assert await pg.migrate() == len(load_migrations("postgresql"))  # idempotent


async def test_insert_returns_ids_and_none_on_conflict(pg: PostgresDatabase) -> None:
    await _user(pg)
    first = await pg.insert(
        "INSERT INTO ledger (user_id, amount, kind, created_at) VALUES (?, ?, ?, ?)",
        (1, "2.50", "credit", 1.0),
    )
    second = await pg.insert(
        "INSERT INTO ledger (user_id, amount, kind, created_at) VALUES (?, ?, ?, ?)",
        (1, Decimal("0.25"), "credit", 2.0),
    )
    assert first is not None and second == first + 1
    # users has an id the caller gives; a conflict inserts nothing: None
    assert await pg.insert(
        "INSERT INTO users (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (1, 3.0)
    ) is None
    assert await pg.insert(
        "INSERT INTO users (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (7, 3.0)
    ) == 7
    assert await pg.execute("UPDATE users SET locale = ? WHERE id IN (?, ?)", ("en", 1, 7)) == 2


async def test_money_is_numeric_and_exact(pg: PostgresDatabase) -> None:
    await _user(pg)
    for amount in ("0.1", "0.2", "1234567.000001"):
        await pg.insert(
            "INSERT INTO ledger (user_id, amount, kind, created_at) VALUES (?, ?, ?, ?)",
            (1, amount, "credit", 1.0),
        )
    total = await pg.fetchval("SELECT SUM(amount) FROM ledger WHERE user_id = ?", (1,))
    assert isinstance(total, Decimal) and total == Decimal("1234567.300001")
    row = await pg.fetchone("SELECT * FROM ledger ORDER BY id LIMIT 1")
    assert row is not None and row["amount"] == Decimal("0.1") and dict(row)["kind"] == "credit"
    assert "amount" in row.keys() and row[0] == row["id"]


async def test_parameters_follow_sqlite_affinity(pg: PostgresDatabase) -> None:
    await _user(pg)
    # a number for a TEXT column, a digit string for a BIGINT, an int for a REAL
    await pg.execute("UPDATE users SET locale = ?, created_at = ? WHERE id = ?", (42, 5, "1"))
    row = await pg.fetchone("SELECT locale, created_at FROM users WHERE id = ?", (1,))
    assert row is not None and row["locale"] == "42" and row["created_at"] == 5.0


# ------------------------------------------------------------------ errors
async def test_constraints_surface_as_the_storage_errors(pg: PostgresDatabase) -> None:
    repos = Repositories(pg)
    await _user(pg)
    with pytest.raises(IntegrityError):  # CHECK: a credit must be > 0
        await pg.insert(
            "INSERT INTO ledger (user_id, amount, kind, created_at) VALUES (?, ?, ?, ?)",
            (1, "-1", "credit", 1.0),
        )
    with pytest.raises(IntegrityError):  # FOREIGN KEY
        await _user_ledger(pg, user_id=999)
    account = await repos.accounts.insert(
        kind="operator", owner_user_id=None, key_hash="h", key_encrypted=None,
        key_masked="sk…", email=None, now=1.0,
    )
    kwargs = dict(
        user_id=1, account_id=account, service_code="tg", service_name="Telegram",
        provider_id=None, price=Decimal("0.50"), request_id="r-1", sent_at=1.0,
    )
    activation = await repos.activations.insert_purchasing(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(DuplicateError):  # UNIQUE request_id
        await repos.activations.insert_purchasing(**kwargs)  # type: ignore[arg-type]
    await pg.execute("UPDATE activations SET state = 'failed' WHERE id = ?", (activation,))
    with pytest.raises(IntegrityError, match="final state"):  # the plpgsql trigger
        await pg.execute("UPDATE activations SET state = 'waiting' WHERE id = ?", (activation,))
    # a failed statement outside a transaction leaves the connection usable
    assert await pg.fetchval("SELECT state FROM activations WHERE id = ?", (activation,)) == (
        "failed"
    )


async def _user_ledger(db: Database, *, user_id: int) -> None:
    await db.insert(
        "INSERT INTO ledger (user_id, amount, kind, created_at) VALUES (?, ?, ?, ?)",
        (user_id, "1", "credit", 1.0),
    )


async def test_transaction_rolls_back_on_error(pg: PostgresDatabase) -> None:
    await _user(pg)
    with pytest.raises(RuntimeError):
        async with pg.transaction():
            await _user_ledger(pg, user_id=1)
            assert pg.in_transaction
            raise RuntimeError("boom")
    assert not pg.in_transaction
    assert await pg.fetchval("SELECT COUNT(*) FROM ledger") == 0
    with pytest.raises(IntegrityError):
        async with pg.transaction():
            await _user_ledger(pg, user_id=1)
            await _user_ledger(pg, user_id=999)  # FOREIGN KEY: the whole transaction goes
    assert await pg.fetchval("SELECT COUNT(*) FROM ledger") == 0


async def _wait_for_lock_wait(db: PostgresDatabase, pid: int) -> None:
    for _ in range(int(WAIT / 0.01)):
        waiting = await db.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = ?", (pid,)
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for the write lock")


async def test_write_transactions_of_two_processes_serialize(postgres_url: str) -> None:
    a = await open_database(postgres_url)
    b = await open_database(postgres_url)
    assert isinstance(a, PostgresDatabase) and isinstance(b, PostgresDatabase)
    try:
        await _user(a)
        b_pid = int(await b.fetchval("SELECT pg_backend_pid()"))

        async def read_then_write(db: Database) -> None:
            async with db.transaction():
                count = await db.fetchval("SELECT COUNT(*) FROM ledger")
                await db.insert(
                    "INSERT INTO ledger (user_id, amount, kind, note, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (1, "1", "credit", f"seen {count}", 1.0),
                )

        async with a.transaction():
            # b's transaction waits for a's write lock (it does not run beside it)
            other = asyncio.create_task(read_then_write(b))
            observer = await open_database(postgres_url, migrate=False)
            try:
                await _wait_for_lock_wait(observer, b_pid)  # type: ignore[arg-type]
            finally:
                await observer.close()
            count = await a.fetchval("SELECT COUNT(*) FROM ledger")
            await a.insert(
                "INSERT INTO ledger (user_id, amount, kind, note, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (1, "1", "credit", f"seen {count}", 1.0),
            )
        await asyncio.wait_for(other, WAIT)
        notes = [r["note"] for r in await a.fetchall("SELECT note FROM ledger ORDER BY id")]
        assert notes == ["seen 0", "seen 1"]  # b saw a's committed row: serialized
    finally:
        await a.close()
        await b.close()


async def test_two_processes_migrating_together_apply_each_migration_once(
    postgres_url: str,
) -> None:
    dbs = await asyncio.gather(*(open_database(postgres_url) for _ in range(3)))
    try:
        versions = [
            r["version"]
            for r in await dbs[0].fetchall("SELECT version FROM schema_version ORDER BY version")
        ]
        assert versions == [m.version for m in load_migrations("postgresql")]
    finally:
        for db in dbs:
            await db.close()


async def test_a_lost_connection_fences_the_process(postgres_url: str) -> None:
    db = await open_database(postgres_url)
    other = await open_database(postgres_url, migrate=False)
    assert isinstance(db, PostgresDatabase)
    lost = asyncio.Event()
    db.on_connection_lost(lost.set)
    try:
        assert await db.fetchval("SELECT pg_try_advisory_lock(?)", (42,)) is True
        assert await other.fetchval("SELECT pg_try_advisory_lock(?)", (42,)) is False
        pid = await db.fetchval("SELECT pg_backend_pid()")
        await other.fetchval("SELECT pg_terminate_backend(?)", (pid,))
        await asyncio.wait_for(lost.wait(), WAIT)
        assert db.connection_lost
        with pytest.raises(ConnectionLostError):
            await db.fetchval("SELECT 1")
        with pytest.raises(DatabaseErrors):
            async with db.transaction():
                pass
        # the session lock went with the connection: another process takes it
        assert await other.fetchval("SELECT pg_try_advisory_lock(?)", (42,)) is True
    finally:
        await db.close()
        await other.close()


async def test_close_does_not_report_a_lost_connection(pg: PostgresDatabase) -> None:
    calls: list[int] = []
    pg.on_connection_lost(lambda: calls.append(1))
    await pg.close()
    await asyncio.sleep(0)
    assert calls == [] and pg.closed
    with pytest.raises(ConnectionLostError):
        await pg.fetchval("SELECT 1")


async def test_the_write_lock_key_is_not_leaderships() -> None:
    leader = pytest.importorskip("storage.leader")  # h-lead's module, once merged
    assert leader.LEADER_LOCK_KEY not in (WRITE_LOCK_KEY, MIGRATE_LOCK_KEY)


async def test_an_unreachable_server_is_a_storage_error(tmp_path: object) -> None:
    with pytest.raises(DatabaseErrors, match="cannot connect to PostgreSQL"):
        await open_database(f"postgresql://nobody@/x?host={tmp_path}&port=1", connect_timeout=2)


async def test_a_missing_database_is_a_storage_error(postgres_url: str) -> None:
    with pytest.raises(DatabaseErrors, match="does not exist"):
        await open_database(postgres_url.replace("/t_", "/missing_t_", 1))
