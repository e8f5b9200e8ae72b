"""The SQLite and PostgreSQL migrations build the same schema.

* Structure (both final schemas, introspected): the same tables, the same columns
  in the same order with matching types (INTEGER -> BIGINT, REAL -> DOUBLE
  PRECISION, TEXT -> TEXT, money TEXT -> NUMERIC), NOT NULLs, defaults, primary
  keys, unique column sets (partial or not), named indexes and triggers.
* Behaviour (each backend): every CHECK, UNIQUE (also the partial ones), foreign
  key and trigger refuses the same bad rows, with the same kind of error (and a
  trigger with the same message), and the same good rows are accepted.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from storage import open_database
from storage.db import Database, load_migrations

# Every column that holds an amount of money: TEXT (exact decimal string) on
# SQLite, NUMERIC on PostgreSQL. Nothing else may be NUMERIC.
MONEY = {
    ("activations", "price"), ("activations", "cost"), ("activations", "refund_amount"),
    ("ledger", "amount"),
    ("stray_orders", "amount"), ("stray_orders", "refund"),
    ("quotes", "price"),
    ("topups", "amount"),
    ("operator_alerts", "balance"),
    ("alert_deliveries", "balance"), ("alert_deliveries", "threshold"),
}
# Ids the database assigns (SQLite AUTOINCREMENT / an INTEGER PRIMARY KEY the code
# inserts without): identities on PostgreSQL. users.id (the Telegram id),
# health_probe.id (always 1) and schema_version.version are given by the code.
IDENTITIES = {
    ("accounts", "id"), ("activations", "id"), ("ledger", "id"), ("events", "id"),
    ("stray_orders", "id"), ("quotes", "id"), ("topups", "id"), ("broadcasts", "id"),
    ("alert_deliveries", "id"),
}
_PG_TYPE = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text"}


def test_the_same_migrations_exist_for_both() -> None:
    sqlite = [(m.version, m.name) for m in load_migrations("sqlite")]
    pg = [(m.version, m.name) for m in load_migrations("postgresql")]
    assert pg == sqlite and len(pg) >= 9
    for migration in load_migrations("postgresql"):
        code = re.sub(r"--[^\n]*", "", migration.sql)
        assert "?" not in code  # run as one simple-query script, no parameters
        assert "WITHOUT ROWID" not in code and "AUTOINCREMENT" not in code


# --------------------------------------------------------------------------- structure


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the PostgreSQL type it must be
    not_null: bool
    default: str | None


@dataclass
class Schema:
    columns: dict[str, list[Column]]
    primary_keys: dict[str, tuple[str, ...]]
    uniques: set[tuple[str, tuple[str, ...], bool]]  # (table, columns, partial)
    indexes: set[tuple[str, str]]  # named (CREATE INDEX) indexes: (table, name)
    triggers: set[tuple[str, str]]


def _default(text: object) -> str | None:
    if text is None:
        return None
    value = str(text)
    value = re.sub(r"::[a-z ]+$", "", value)  # PostgreSQL's '{}'::text
    return value


async def _sqlite_schema(db: Database) -> Schema:
    tables = [
        str(r[0])
        for r in await db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    schema = Schema({}, {}, set(), set(), set())
    for table in tables:
        info = await db.fetchall(f"PRAGMA table_info({table})")
        pk = [r for r in sorted(info, key=lambda r: r["pk"]) if r["pk"]]
        schema.primary_keys[table] = tuple(str(r["name"]) for r in pk)
        schema.columns[table] = [
            Column(
                str(r["name"]),
                "numeric" if (table, r["name"]) in MONEY else _PG_TYPE[str(r["type"])],
                bool(r["notnull"]) or bool(r["pk"]),
                _default(r["dflt_value"]),
            )
            for r in info
        ]
        for index in await db.fetchall(f"PRAGMA index_list({table})"):
            if not index["unique"] or index["origin"] == "pk":
                continue
            cols = await db.fetchall(f"PRAGMA index_info({index['name']})")
            names = tuple(str(c["name"]) for c in sorted(cols, key=lambda c: c["seqno"]))
            schema.uniques.add((table, names, bool(index["partial"])))
    for r in await db.fetchall(
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ):
        schema.indexes.add((str(r[0]), str(r[1])))
    for r in await db.fetchall("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"):
        schema.triggers.add((str(r[0]), str(r[1])))
    return schema


async def _pg_schema(db: Any) -> tuple[Schema, set[tuple[str, str]], set[tuple[str, str]]]:
    """The schema, plus (table, column) of the identities and of NUMERIC columns."""
    schema = Schema({}, {}, set(), set(), set())
    identities: set[tuple[str, str]] = set()
    numerics: set[tuple[str, str]] = set()
    rows = await db.fetchall(
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " ORDER BY table_name, ordinal_position"
    )
    for r in rows:
        table, name = str(r["table_name"]), str(r["column_name"])
        schema.columns.setdefault(table, []).append(
            Column(name, str(r["data_type"]), r["is_nullable"] == "NO",
                   _default(r["column_default"]))
        )
        if r["is_identity"] == "YES":
            identities.add((table, name))
        if r["data_type"] == "numeric":
            numerics.add((table, name))
    constraint_columns = (
        "ARRAY(SELECT a.attname::text FROM unnest({key}) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.attnum ORDER BY k.ord)"
    )
    for r in await db.fetchall(
        "SELECT t.relname::text AS tbl, "
        + constraint_columns.format(key="c.conkey", rel="c.conrelid")
        + " AS cols FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = 'public' AND c.contype = 'p'"
    ):
        schema.primary_keys[str(r["tbl"])] = tuple(r["cols"])
    for r in await db.fetchall(
        "SELECT t.relname::text AS tbl, ic.relname::text AS idx,"
        " i.indisunique AS uniq, i.indisprimary AS prim, i.indpred IS NOT NULL AS partial,"
        " EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS backs,"
        " " + constraint_columns.format(key="i.indkey::int2[]", rel="i.indrelid")
        + " AS cols FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
        " JOIN pg_class ic ON ic.oid = i.indexrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'"
    ):
        if r["uniq"] and not r["prim"]:
            schema.uniques.add((str(r["tbl"]), tuple(r["cols"]), bool(r["partial"])))
        if not r["backs"]:
            schema.indexes.add((str(r["tbl"]), str(r["idx"])))
    for r in await db.fetchall(
        "SELECT t.relname::text AS tbl, g.tgname::text AS name FROM pg_trigger g"
        " JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = 'public' AND NOT g.tgisinternal"
    ):
        schema.triggers.add((str(r["tbl"]), str(r["name"])))
    return schema, identities, numerics


@pytest.mark.postgres
async def test_both_final_schemas_agree(tmp_path: Path, postgres_url: str) -> None:
    lite = await Database.open(tmp_path / "s.sqlite3")
    pg = await open_database(postgres_url)
    try:
        assert pg.dialect == "postgresql"
        assert await pg.schema_version() == await lite.schema_version() == len(load_migrations())
        a = await _sqlite_schema(lite)
        b, identities, numerics = await _pg_schema(pg)
    finally:
        await lite.close()
        await pg.close()

    assert sorted(b.columns) == sorted(a.columns)
    for table, columns in a.columns.items():
        if table == "schema_version":  # the code's own table (no migration makes it)
            assert [c.name for c in b.columns[table]] == [c.name for c in columns]
            continue
        # Same names, same order, matching types, NOT NULL and defaults.
        assert b.columns[table] == columns, table
    assert b.primary_keys == a.primary_keys
    assert b.uniques == a.uniques
    assert b.indexes == a.indexes
    assert b.triggers == a.triggers
    assert numerics == MONEY  # money is NUMERIC, and only money
    assert identities == IDENTITIES


# --------------------------------------------------------------------------- behaviour

U, C, F, N = "unique", "check", "foreign_key", "not_null"
FINAL = "trigger: activation is in a final state"
STRAY_FINAL = "trigger: stray order is in a final state"
NO_REFUND = "trigger: a completed activation cannot be refunded"
OK = "ok"


def _act(
    id_: int, state: str, remote: str | None, request: str, *, code: str | None = None,
    account: int = 1, user: int = 1, reason: str | None = None,
) -> str:
    def lit(v: object) -> str:
        return "NULL" if v is None else f"'{v}'" if isinstance(v, str) else str(v)

    return (
        "INSERT INTO activations (id, user_id, account_id, remote_id, service_code,"
        " service_name, price, state, code, request_id, purchase_sent_at, refund_reason)"
        f" VALUES ({id_}, {user}, {account}, {lit(remote)}, 'sb_wa', 'WhatsApp', '1.00',"
        f" '{state}', {lit(code)}, '{request}', 0, {lit(reason)})"
    )


def _ledger(user: int, amount: str, kind: str, activation: int | None = None,
            charge: str | None = None, entry: str | None = None) -> str:
    act = "NULL" if activation is None else str(activation)
    ch = "NULL" if charge is None else f"'{charge}'"
    en = "NULL" if entry is None else f"'{entry}'"
    return (
        "INSERT INTO ledger (user_id, amount, kind, activation_id, created_at, charge_id,"
        f" charge_entry) VALUES ({user}, '{amount}', '{kind}', {act}, 0, {ch}, {en})"
    )


def _stray(id_: int, remote: str, state: str, *, code: str | None = None,
           activation: int | None = None, account: int = 1) -> str:
    c = "NULL" if code is None else f"'{code}'"
    a = "NULL" if activation is None else str(activation)
    return (
        "INSERT INTO stray_orders (id, account_id, remote_id, activation_id, service, amount,"
        f" ordered_at, found_at, state, code) VALUES ({id_}, {account}, '{remote}', {a},"
        f" 'wa', '0.50', 0, 0, '{state}', {c})"
    )


def _quote(id_: int, *, activation: int | None = None, consumed: float | None = None,
           created: float = 0, expires: float = 10) -> str:
    a = "NULL" if activation is None else str(activation)
    c = "NULL" if consumed is None else str(consumed)
    return (
        "INSERT INTO quotes (id, user_id, service_code, price, created_at, expires_at,"
        f" activation_id, consumed_at) VALUES ({id_}, 1, 'sb_wa', '1.00', {created}, {expires},"
        f" {a}, {c})"
    )


def _topup(id_: int, *, price: int = 100, state: str = "open", charge: str | None = None) -> str:
    ch = "NULL" if charge is None else f"'{charge}'"
    return (
        "INSERT INTO topups (id, user_id, method, currency, amount, price, state, created_at,"
        f" expires_at, charge_id) VALUES ({id_}, 1, 'stars', 'XTR', '5.00', {price},"
        f" '{state}', 0, 10, {ch})"
    )


def _account(id_: int, kind: str, owner: int | None, key: str, removed: float | None = None,
             masked: str | None = "m") -> str:
    o = "NULL" if owner is None else str(owner)
    r = "NULL" if removed is None else str(removed)
    m = "NULL" if masked is None else f"'{masked}'"
    return (
        "INSERT INTO accounts (id, kind, owner_user_id, key_hash, key_masked, created_at,"
        f" removed_at) VALUES ({id_}, '{kind}', {o}, '{key}', {m}, 0, {r})"
    )


# Committed once per database; every case runs on top of it and is rolled back.
BASE = [
    "INSERT INTO users (id, created_at) VALUES (1, 0)",
    "INSERT INTO users (id, created_at) VALUES (2, 0)",
    _account(1, "operator", None, "h1"),
    _account(2, "user", 1, "h2"),
    _account(3, "user", 2, "h3", removed=5),
    _act(1, "waiting", "r1", "q1"),
    _act(2, "completed", "r2", "q2", code="123"),
    _act(3, "refunded", "r3", "q3", reason="user_cancel"),
    _act(4, "failed", None, "q4"),
    _act(5, "cancelling", "r5", "q5"),
    _act(6, "purchasing", None, "q6"),
    _stray(1, "s1", "cancelling"),
    _stray(2, "s2", "refunded"),
    _stray(3, "s3", "lost", code="9"),
    _stray(4, "s4", "cancelling", activation=4),
    "INSERT INTO events (activation_id, kind, payload, created_at) VALUES (1, 'code_received',"
    " '{}', 0)",
    _ledger(1, "10", "credit"),
    _ledger(1, "-1.00", "hold", 1),
    _ledger(1, "5", "credit", charge="c1", entry="topup"),
    _quote(1, activation=1, consumed=1),
    _topup(1),
    _topup(2, state="paid", charge="tc1"),
    "INSERT INTO broadcasts (id, admin_id, audience, text, chat_id, created_at)"
    " VALUES (1, 1, 'all', 'hi', 1, 0)",
    "INSERT INTO broadcast_recipients (broadcast_id, user_id) VALUES (1, 1)",
    "INSERT INTO price_overrides (service_key, service_code, rule, admin_id, updated_at)"
    " VALUES ('wa', 'WA', '+20%', 1, 0)",
    "INSERT INTO operator_alerts (kind, fired, balance, changed_at) VALUES ('low', 0, '1.5', 0)",
    "INSERT INTO alert_deliveries (kind, admin_id, balance, threshold, created_at)"
    " VALUES ('low', 1, '1.5', '2', 0)",
]

# (what, SQL, the outcome on both backends)
CASES: list[tuple[str, str, str]] = [
    # users
    ("users: unknown role", "INSERT INTO users (id, role, created_at) VALUES (3, 'root', 0)", C),
    ("users: same Telegram id", "INSERT INTO users (id, created_at) VALUES (1, 0)", U),
    ("users: created_at NULL", "INSERT INTO users (id, created_at) VALUES (3, NULL)", N),
    ("users: a new user", "INSERT INTO users (id, created_at) VALUES (3, 0)", OK),
    # accounts
    ("accounts: unknown kind", _account(10, "bot", None, "hx"), C),
    ("accounts: operator with an owner", _account(10, "operator", 1, "hx"), C),
    ("accounts: user key without owner", _account(10, "user", None, "hx"), C),
    ("accounts: the same key twice", _account(10, "operator", None, "h1"), U),
    ("accounts: a second active key", _account(10, "user", 1, "hx"), U),
    ("accounts: unknown owner", _account(10, "user", 99, "hx"), F),
    ("accounts: no masked key", _account(10, "operator", None, "hx", masked=None), N),
    ("accounts: a new key after unlinking", _account(10, "user", 2, "hx"), OK),
    ("accounts: another operator key", _account(10, "operator", None, "hx"), OK),
    # activations
    ("activations: unknown state", _act(20, "lost", "r20", "q20"), C),
    ("activations: completed without code",
     "UPDATE activations SET state = 'completed' WHERE id = 1", C),
    ("activations: waiting without remote id",
     "UPDATE activations SET state = 'waiting' WHERE id = 6", C),
    ("activations: the same request id", _act(20, "purchasing", None, "q1"), U),
    ("activations: the same remote id on one account", _act(20, "waiting", "r1", "q20"), U),
    ("activations: unknown refund reason",
     "UPDATE activations SET refund_reason = 'whim' WHERE id = 5", C),
    ("activations: unknown user", _act(20, "purchasing", None, "q20", user=99), F),
    ("activations: unknown account", _act(20, "purchasing", None, "q20", account=99), F),
    ("activations: no price",
     "INSERT INTO activations (user_id, account_id, service_code, service_name, state,"
     " request_id, purchase_sent_at) VALUES (1, 1, 'a', 'b', 'purchasing', 'q20', 0)", N),
    ("activations: completed -> refunded",
     "UPDATE activations SET state = 'refunded' WHERE id = 2", FINAL),
    ("activations: refunded -> completed",
     "UPDATE activations SET state = 'completed', code = '1' WHERE id = 3", FINAL),
    ("activations: failed -> purchasing",
     "UPDATE activations SET state = 'purchasing' WHERE id = 4", FINAL),
    ("activations: the same remote id on another account",
     _act(20, "waiting", "r1", "q20", account=2), OK),
    ("activations: completed, state set again",
     "UPDATE activations SET state = 'completed' WHERE id = 2", OK),
    ("activations: a final row's other columns",
     "UPDATE activations SET chat_id = 5, message_id = 6 WHERE id = 3", OK),
    ("activations: waiting -> completed with its code",
     "UPDATE activations SET state = 'completed', code = '777' WHERE id = 1", OK),
    ("activations: failed before a number", _act(20, "failed", None, "q20"), OK),
    # ledger
    ("ledger: unknown kind", _ledger(1, "1", "gift"), C),
    ("ledger: a hold without its activation", _ledger(1, "-1", "hold"), C),
    ("ledger: a negative credit", _ledger(1, "-1", "credit"), C),
    ("ledger: a zero credit", _ledger(1, "0", "credit"), C),
    ("ledger: a zero debit", _ledger(1, "0.00", "debit"), C),
    ("ledger: a positive debit", _ledger(1, "1", "debit"), C),
    ("ledger: a positive hold", _ledger(1, "1", "hold", 5), C),
    ("ledger: a negative release", _ledger(1, "-1", "release", 5), C),
    ("ledger: a negative refund", _ledger(1, "-1", "refund", 5), C),
    ("ledger: a positive charge", _ledger(1, "1", "charge", 5), C),
    ("ledger: a NaN credit", _ledger(1, "NaN", "credit"), C),
    ("ledger: a second hold", _ledger(1, "-1.00", "hold", 1), U),
    ("ledger: a refund after the code", _ledger(1, "1.00", "refund", 2), NO_REFUND),
    ("ledger: unknown charge entry", _ledger(1, "1", "credit", charge="c2", entry="bonus"), C),
    ("ledger: a charge credited twice", _ledger(1, "5", "credit", charge="c1", entry="topup"), U),
    ("ledger: unknown user", _ledger(99, "1", "credit"), F),
    ("ledger: unknown activation", _ledger(1, "-1", "hold", 99), F),
    ("ledger: no amount",
     "INSERT INTO ledger (user_id, kind, created_at) VALUES (1, 'credit', 0)", N),
    ("ledger: a refund while cancelling", _ledger(1, "1.00", "refund", 5), OK),
    ("ledger: a charge", _ledger(1, "-1.00", "charge", 1), OK),
    ("ledger: two debits of one order", _ledger(1, "-1", "debit", 1), OK),
    ("ledger: a tiny credit", _ledger(1, "0.0001", "credit"), OK),
    ("ledger: the refund of a charge", _ledger(1, "-5", "debit", charge="c1", entry="refund"), OK),
    ("ledger: another charge", _ledger(1, "5", "credit", charge="c2", entry="topup"), OK),
    # events
    ("events: unknown kind",
     "INSERT INTO events (activation_id, kind, payload, created_at) VALUES (1, 'x', '{}', 0)", C),
    ("events: the same event twice",
     "INSERT INTO events (activation_id, kind, payload, created_at)"
     " VALUES (1, 'code_received', '{}', 0)", U),
    ("events: unknown activation",
     "INSERT INTO events (activation_id, kind, payload, created_at)"
     " VALUES (99, 'failed', '{}', 0)", F),
    ("events: purchased (migration 4)",
     "INSERT INTO events (activation_id, kind, payload, created_at)"
     " VALUES (1, 'purchased', '{}', 0)", OK),
    # health_probe
    ("health_probe: a second row", "INSERT INTO health_probe (id, probed_at) VALUES (2, 0)", C),
    ("health_probe: row 1 again", "INSERT INTO health_probe (id, probed_at) VALUES (1, 0)", U),
    ("health_probe: rewritten", "UPDATE health_probe SET probed_at = 5 WHERE id = 1", OK),
    # stray_orders
    ("strays: unknown state", _stray(10, "s10", "open"), C),
    ("strays: lost without code", "UPDATE stray_orders SET state = 'lost' WHERE id = 1", C),
    ("strays: the same order twice", _stray(10, "s1", "cancelling"), U),
    ("strays: the same purchase twice", _stray(10, "s10", "cancelling", activation=4), U),
    ("strays: unknown account", _stray(10, "s10", "cancelling", account=99), F),
    ("strays: refunded -> cancelling",
     "UPDATE stray_orders SET state = 'cancelling' WHERE id = 2", STRAY_FINAL),
    ("strays: lost -> refunded",
     "UPDATE stray_orders SET state = 'refunded' WHERE id = 3", STRAY_FINAL),
    ("strays: cancelling -> refunded",
     "UPDATE stray_orders SET state = 'refunded', refund = '0.50' WHERE id = 1", OK),
    ("strays: the same order id on another account", _stray(10, "s1", "cancelling", account=2),
     OK),
    # quotes
    ("quotes: expires before it is made", _quote(10, created=10, expires=5), C),
    ("quotes: consumed without a time", _quote(10, activation=5), C),
    ("quotes: a time without a purchase", _quote(10, consumed=5), C),
    ("quotes: two quotes for one purchase", _quote(10, activation=1, consumed=2), U),
    ("quotes: an open quote", _quote(10), OK),
    ("quotes: consumed by another purchase", _quote(10, activation=5, consumed=2), OK),
    # topups
    ("topups: no price", _topup(10, price=0), C),
    ("topups: paid without a charge", "UPDATE topups SET state = 'paid' WHERE id = 1", C),
    ("topups: unknown state", _topup(10, state="lost", charge="tc9"), C),
    ("topups: the same charge twice", _topup(10, state="paid", charge="tc1"), U),
    ("topups: open rows have no charge", _topup(10), OK),
    # broadcasts
    ("broadcasts: unknown audience",
     "INSERT INTO broadcasts (admin_id, audience, text, chat_id, created_at)"
     " VALUES (1, 'vip', 'x', 1, 0)", C),
    ("broadcasts: unknown state", "UPDATE broadcasts SET state = 'sent' WHERE id = 1", C),
    ("recipients: the same user twice",
     "INSERT INTO broadcast_recipients (broadcast_id, user_id) VALUES (1, 1)", U),
    ("recipients: unknown state",
     "UPDATE broadcast_recipients SET state = 'read' WHERE broadcast_id = 1", C),
    ("recipients: unknown broadcast",
     "INSERT INTO broadcast_recipients (broadcast_id, user_id) VALUES (9, 1)", F),
    ("recipients: another user",
     "INSERT INTO broadcast_recipients (broadcast_id, user_id) VALUES (1, 2)", OK),
    # prices and alerts
    ("price_overrides: the same service twice",
     "INSERT INTO price_overrides (service_key, service_code, rule, admin_id, updated_at)"
     " VALUES ('wa', 'WA', '1', 1, 0)", U),
    ("operator_alerts: the same kind twice",
     "INSERT INTO operator_alerts (kind, changed_at) VALUES ('low', 0)", U),
    ("alert_deliveries: no kind",
     "INSERT INTO alert_deliveries (admin_id, created_at) VALUES (1, 0)", N),
]

_SQLSTATES = {"23505": U, "23514": C, "23503": F, "23502": N}
_SQLITE_PREFIXES = {
    "UNIQUE constraint failed": U,
    "CHECK constraint failed": C,
    "FOREIGN KEY constraint failed": F,
    "NOT NULL constraint failed": N,
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def classify(exc: BaseException) -> str:
    """What refused the statement, in words both backends share."""
    for error in _chain(exc):
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate == "23000":  # a trigger's RAISE (integrity_constraint_violation)
                return f"trigger: {getattr(error, 'message', str(error))}"
            return _SQLSTATES.get(sqlstate, f"sqlstate {sqlstate}: {error}")
        if isinstance(error, sqlite3.IntegrityError):
            message = str(error)
            for prefix, kind in _SQLITE_PREFIXES.items():
                if message.startswith(prefix):
                    return kind
            return f"trigger: {message}"
    return f"{type(exc).__name__}: {exc}"


class _Rollback(Exception):
    pass


async def _outcome(db: Database, sql: str) -> str:
    try:
        async with db.transaction():
            await db.execute(sql)
            raise _Rollback
    except _Rollback:
        return OK
    except Exception as exc:
        return classify(exc)


async def test_constraints_refuse_the_same_rows(db: Database) -> None:
    for statement in BASE:
        await db.execute(statement)
    results = {what: await _outcome(db, sql) for what, sql, _ in CASES}
    mismatches = {
        what: (results[what], expected)
        for what, _, expected in CASES
        if results[what] != expected
    }
    assert mismatches == {}, f"{db.dialect}: (got, expected): {mismatches}"
    # Nothing of a refused (or rolled back) case stayed.
    assert await db.fetchval("SELECT COUNT(*) FROM users") == 2
    assert await db.fetchval("SELECT COUNT(*) FROM ledger") == 3


async def test_amounts_round_trip_exactly(db: Database) -> None:
    for statement in BASE[:3]:
        await db.execute(statement)
    amounts = ["0.1", "1.0830", "-0.3", "12345678901234567890.123456789", "0.00000001"]
    for amount in amounts:
        kind = "debit" if amount.startswith("-") else "credit"
        await db.execute(
            "INSERT INTO ledger (user_id, amount, kind, created_at) VALUES (?, ?, ?, ?)",
            (1, amount, kind, 0.0),
        )
    rows = await db.fetchall("SELECT amount FROM ledger ORDER BY id")
    # The scale survives ("1.0830", not 1.083) and nothing goes through a float.
    assert [Decimal(str(r[0])).as_tuple() for r in rows] == [Decimal(a).as_tuple() for a in amounts]
    assert sum((Decimal(str(r[0])) for r in rows), Decimal(0)) == sum(
        (Decimal(a) for a in amounts), Decimal(0)
    )
