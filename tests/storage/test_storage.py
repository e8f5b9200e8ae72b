"""Storage: migrations, durability across reopen, and the SQL-level guards, on
both backends (``repos`` / ``db_target``: tests/storage/conftest.py)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from storage import DatabaseErrors, IntegrityError, open_database
from storage.db import Migration, MigrationError, load_migrations, split_sql
from storage.repositories import DuplicateError, Repositories

NOW = 1_767_225_600.0


@pytest.fixture
def fresh_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own, not even migrated yet (migration tests)."""
    if backend == "sqlite":
        return str(tmp_path / "db.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


async def _activation(
    r: Repositories, *, user: int = 1, request_id: str = "r1", account: int | None = None
) -> int:
    await r.users.ensure(user, NOW)
    if account is None:
        existing = await r.accounts.active_operator()
        account = (
            existing.id
            if existing
            else await r.accounts.insert(
                kind="operator",
                owner_user_id=None,
                key_hash="h-op",
                key_encrypted=None,
                key_masked="op…",
                email=None,
                now=NOW,
            )
        )
    return await r.activations.insert_purchasing(
        user_id=user,
        account_id=account,
        service_code="sb_wa",
        service_name="WhatsApp 3",
        provider_id="3109",
        price=Decimal("1.0830"),
        request_id=request_id,
        sent_at=NOW,
    )


# --------------------------------------------------------------------------- migrations


@pytest.mark.sqlite_only
def test_migrations_are_numbered_and_split() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    statements = split_sql(migrations[0].sql)
    # Triggers (with ';' inside BEGIN ... END) stay one statement each.
    triggers = [s for s in statements if s.upper().startswith("CREATE TRIGGER")]
    assert len(triggers) == 2
    assert all(s.rstrip().endswith("END;") for s in triggers)


async def test_migrations_idempotent_and_reopen_keeps_data(fresh_target: str) -> None:
    db = await open_database(fresh_target)
    assert await db.schema_version() == len(load_migrations())
    assert await db.migrate() == len(load_migrations())  # second run: nothing to do
    await Repositories(db).users.ensure(42, NOW, locale="en")
    if db.dialect == "sqlite":
        assert str(await db.fetchval("PRAGMA journal_mode")).lower() == "wal"
        assert await db.fetchval("PRAGMA foreign_keys") == 1
    await db.close()

    db2 = await open_database(fresh_target)
    try:
        rows = await db2.fetchall("SELECT version FROM schema_version")
        assert [r[0] for r in rows] == list(range(1, len(load_migrations()) + 1))
        user = await Repositories(db2).users.get(42)
        assert user is not None and user.locale == "en"
    finally:
        await db2.close()


async def test_newer_schema_is_refused(fresh_target: str) -> None:
    db = await open_database(fresh_target)
    await db.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 0)"
    )
    await db.close()
    with pytest.raises(MigrationError):
        await open_database(fresh_target)


async def test_failed_migration_rolls_back(fresh_target: str) -> None:
    db = await open_database(fresh_target)
    try:
        bad = [
            *load_migrations(db.dialect),
            Migration(len(load_migrations()) + 1, "bad", "CREATE TABLE x (a INT);\nNOT SQL;\n"),
        ]
        with pytest.raises(DatabaseErrors):
            await db.migrate(bad)
        assert await db.schema_version() == len(load_migrations())
        exists = (
            "SELECT name FROM sqlite_master WHERE name = 'x'" if db.dialect == "sqlite"
            else "SELECT tablename FROM pg_tables WHERE tablename = 'x'"
        )
        assert await db.fetchone(exists) is None
    finally:
        await db.close()


# --------------------------------------------------------------------------- transactions


async def test_transaction_rolls_back_everything(repos: Repositories) -> None:
    with pytest.raises(RuntimeError):
        async with repos.db.transaction():
            await repos.users.ensure(1, NOW)
            await repos.users.ensure(2, NOW)
            raise RuntimeError("boom")
    assert await repos.users.count() == 0


async def test_concurrent_transactions_do_not_interleave(repos: Repositories) -> None:
    await repos.users.ensure(1, NOW)
    await repos.ledger.add(user_id=1, amount=Decimal("100"), kind="credit", now=NOW)

    async def withdraw() -> bool:
        async with repos.db.transaction():
            balance = await repos.ledger.balance(1)
            await asyncio.sleep(0)  # another task gets the loop here
            if balance < Decimal("60"):
                return False
            await repos.ledger.add(user_id=1, amount=Decimal("-60"), kind="debit", now=NOW)
            return True

    results = await asyncio.gather(withdraw(), withdraw(), withdraw())
    assert sorted(results) == [False, False, True]
    assert await repos.ledger.balance(1) == Decimal("40")


async def test_reads_outside_do_not_see_uncommitted_rows(repos: Repositories) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with repos.db.transaction():
            await repos.users.ensure(7, NOW)
            started.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await started.wait()
    reader = asyncio.create_task(repos.users.get(7))
    await asyncio.sleep(0.01)
    assert not reader.done()  # waits for the transaction (single connection)
    release.set()
    await task
    assert (await reader) is not None


# --------------------------------------------------------------------------- guards


async def test_request_id_is_unique(repos: Repositories) -> None:
    await _activation(repos, request_id="same")
    with pytest.raises(DuplicateError):
        await _activation(repos, request_id="same")
    row = await repos.activations.by_request_id("same")
    assert row is not None and row.state == "purchasing" and row.price == Decimal("1.0830")


async def test_remote_id_unique_per_account(repos: Repositories) -> None:
    a = await _activation(repos, request_id="a")
    b = await _activation(repos, request_id="b")
    assert await repos.activations.transition(a, ["purchasing"], "waiting", remote_id="100")
    with pytest.raises(IntegrityError):
        await repos.activations.transition(b, ["purchasing"], "waiting", remote_id="100")
    # The same remote id on another account is fine.
    other = await repos.accounts.insert(
        kind="operator", owner_user_id=None, key_hash="h2", key_encrypted=None,
        key_masked="x", email=None, now=NOW,
    )
    c = await _activation(repos, request_id="c", account=other)
    assert await repos.activations.transition(c, ["purchasing"], "waiting", remote_id="100")


async def test_guarded_transitions_and_final_states(repos: Repositories) -> None:
    act = await _activation(repos)
    acts = repos.activations
    assert not await acts.transition(act, ["waiting"], "completed", code="1")  # wrong state
    assert await acts.transition(act, ["purchasing"], "waiting", remote_id="1")
    assert await acts.transition(act, ["waiting"], "completed", code="123456")
    # A completed activation cannot be refunded: not by a guarded update...
    assert not await acts.transition(act, ["cancelling", "expired"], "refunded")
    # ...not by a careless one (the state machine has no such move)...
    with pytest.raises(ValueError, match="not allowed"):
        await acts.transition(act, ["completed"], "refunded")
    with pytest.raises(ValueError, match="not allowed"):
        await acts.transition(act, ["waiting", "cancelling"], "refunded")
    # ...and not even by raw SQL: the trigger refuses it.
    with pytest.raises(IntegrityError, match="final state"):
        await repos.db.execute("UPDATE activations SET state = 'refunded' WHERE id = ?", (act,))
    row = await acts.get(act)
    assert row is not None and row.state == "completed" and row.code == "123456"

    act2 = await _activation(repos, request_id="r2")
    assert await acts.transition(act2, ["purchasing"], "waiting", remote_id="2")
    assert await acts.transition(act2, ["waiting"], "cancelling")
    assert await acts.transition(act2, ["cancelling"], "refunded", refund_reason="user_cancel")
    with pytest.raises(ValueError, match="not allowed"):
        await acts.transition(act2, ["refunded"], "completed", code="9")
    with pytest.raises(IntegrityError, match="final state"):
        await repos.db.execute(
            "UPDATE activations SET state = 'completed', code = '9' WHERE id = ?", (act2,)
        )
    with pytest.raises(IntegrityError):  # completed needs a code
        act3 = await _activation(repos, request_id="r3")
        await acts.transition(act3, ["purchasing"], "waiting", remote_id="3")
        await acts.transition(act3, ["waiting"], "completed")


async def test_ledger_once_per_activation_and_signs(repos: Repositories) -> None:
    act = await _activation(repos)
    led = repos.ledger
    await led.add(user_id=1, amount=Decimal("5"), kind="credit", now=NOW)
    assert await led.add(
        user_id=1, amount=Decimal("-1.0830"), kind="hold", activation_id=act, now=NOW
    )
    assert (
        await led.add(user_id=1, amount=Decimal("-1.0830"), kind="hold", activation_id=act, now=NOW)
        is None
    )
    assert await led.add(
        user_id=1, amount=Decimal("1.0830"), kind="refund", activation_id=act, now=NOW
    )
    again = await led.add(
        user_id=1, amount=Decimal("1.0830"), kind="refund", activation_id=act, now=NOW
    )
    assert again is None
    kinds = [e.kind for e in await led.for_activation(act)]
    assert kinds == ["hold", "refund"]
    with pytest.raises(IntegrityError):  # a refund must be positive
        await led.add(user_id=1, amount=Decimal("-1"), kind="refund", activation_id=act, now=NOW)
    with pytest.raises(IntegrityError):  # a charge must name its activation
        await led.add(user_id=1, amount=Decimal("-1"), kind="charge", now=NOW)
    with pytest.raises(IntegrityError):  # foreign keys are enforced
        await led.add(user_id=999, amount=Decimal("1"), kind="credit", now=NOW)


async def test_no_refund_row_for_completed_activation(repos: Repositories) -> None:
    act = await _activation(repos)
    await repos.activations.transition(act, ["purchasing"], "waiting", remote_id="5")
    await repos.activations.transition(act, ["waiting"], "completed", code="1")
    with pytest.raises(IntegrityError, match="cannot be refunded"):
        await repos.ledger.add(
            user_id=1, amount=Decimal("1.0830"), kind="refund", activation_id=act, now=NOW
        )


async def test_balance_is_exact_decimal(repos: Repositories) -> None:
    await repos.users.ensure(1, NOW)
    for _ in range(10):
        await repos.ledger.add(user_id=1, amount=Decimal("0.1"), kind="credit", now=NOW)
    await repos.ledger.add(user_id=1, amount=Decimal("-0.3"), kind="debit", now=NOW)
    assert await repos.ledger.balance(1) == Decimal("0.7")
    # Stored exactly: decimal text on SQLite, NUMERIC on PostgreSQL (never a float).
    if repos.db.dialect == "sqlite":
        stored = await repos.db.fetchval("SELECT typeof(amount) FROM ledger LIMIT 1")
        assert stored == "text"
    else:
        stored = await repos.db.fetchval("SELECT pg_typeof(amount)::text FROM ledger LIMIT 1")
        assert stored == "numeric"


async def test_events_once_per_activation_kind(repos: Repositories) -> None:
    act = await _activation(repos)
    first = await repos.events.add(act, "code_received", "{}", NOW)
    assert first is not None
    assert await repos.events.add(act, "code_received", "{}", NOW + 1) is None
    assert [e.id for e in await repos.events.pending()] == [first]
    assert await repos.events.next_attempt() == NOW
    assert await repos.events.mark_delivered(first, NOW + 2)
    assert not await repos.events.mark_delivered(first, NOW + 3)
    assert await repos.events.pending() == []


async def test_accounts_soft_delete_and_wipe(repos: Repositories) -> None:
    await repos.users.ensure(1, NOW)
    acc = await repos.accounts.insert(
        kind="user", owner_user_id=1, key_hash="k1", key_encrypted="tok",
        key_masked="abcd…wxyz", email="a@b", now=NOW,
    )
    with pytest.raises(DuplicateError):  # one row per key
        await repos.accounts.insert(
            kind="user", owner_user_id=1, key_hash="k1", key_encrypted="tok",
            key_masked="m", email=None, now=NOW,
        )
    with pytest.raises(DuplicateError, match="owner_user_id"):  # one active key per user
        await repos.accounts.insert(
            kind="user", owner_user_id=1, key_hash="k2", key_encrypted="tok",
            key_masked="m", email=None, now=NOW,
        )
    assert not await repos.accounts.wipe_key(acc)  # active: refused
    act = await _activation(repos, account=acc)
    assert await repos.accounts.remove(acc, NOW)
    assert await repos.accounts.active_for_user(1) is None
    assert await repos.accounts.removed_keys_without_open_activations() == []  # still open
    await repos.activations.transition(act, ["purchasing"], "failed")
    [row] = await repos.accounts.removed_keys_without_open_activations()
    assert row.id == acc
    assert await repos.accounts.wipe_key(acc)
    wiped = await repos.accounts.get(acc)
    assert wiped is not None and wiped.key_encrypted is None and wiped.key_masked == "abcd…wxyz"


async def test_user_listing_hides_never_bought(repos: Repositories) -> None:
    a = await _activation(repos, request_id="a")
    b = await _activation(repos, request_id="b")
    await repos.activations.transition(a, ["purchasing"], "failed", failure_reason="oos")
    await repos.activations.transition(b, ["purchasing"], "waiting", remote_id="77")
    listed = await repos.activations.list_for_user(1)
    assert [r.id for r in listed] == [b]
    assert await repos.activations.count_for_user(1) == 1
    assert await repos.activations.count_for_user(1, ["completed"]) == 0
    assert await repos.activations.recent_service_codes(1, 3) == ["sb_wa"]
    assert await repos.activations.get_for_user(2, b) is None
