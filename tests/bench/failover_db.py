"""The failover soak's PostgreSQL side (:mod:`tests.bench.failover_soak`): a fresh
database, the users it starts with, what is not final yet, a connection kill (the
fence), and a SQLite snapshot of the tables :func:`tests.bench.soak.verify` reads."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.bench import soak
from tests.bench.common import OPERATOR_KEY, SimHandle
from tests.bench.harness import TimedFakeTelegram

__all__ = ["fence_leader", "fresh_database", "open_work", "populate_pg", "snapshot",
           "verify_failover"]


async def populate_pg(url: str, *, users: int, credit: Decimal, now: float) -> None:
    """What :func:`tests.bench.harness.populate` writes, through the repositories:
    the operator account and ``users`` credited operator-mode users."""
    from bot.services.crypto import key_hash, mask_key
    from storage import open_database
    from storage.repositories import Repositories

    db = await open_database(url)
    try:
        repos = Repositories(db)
        async with db.transaction():
            await repos.accounts.insert(kind="operator", owner_user_id=None,
                                        key_hash=key_hash(OPERATOR_KEY), key_encrypted=None,
                                        key_masked=mask_key(OPERATOR_KEY), email=None, now=now)
            for i in range(users):
                uid = soak.FIRST_USER + i
                await repos.users.ensure(uid, now, "en")
                await repos.ledger.add(user_id=uid, amount=credit, kind="credit", now=now,
                                       note="bench")
    finally:
        await db.close()


SNAPSHOT_TABLES = ("activations", "ledger", "stray_orders", "topups", "events")


async def snapshot(url: str, path: Path) -> None:
    """Copy the tables :func:`tests.bench.soak.verify` reads into a SQLite file
    (NUMERIC as its exact decimal text, as the SQLite schema stores money)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        tables = {t: await conn.fetch(f"SELECT * FROM {t} ORDER BY 1") for t in SNAPSHOT_TABLES}
        columns = {t: [a.name for a in (await conn.prepare(f"SELECT * FROM {t}"))
                       .get_attributes()] for t in SNAPSHOT_TABLES}
    finally:
        await conn.close()

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, bool):
            return int(value)
        if value is None or isinstance(value, int | float | str | bytes):
            return value
        return str(value)

    out = sqlite3.connect(path)
    try:
        with out:
            for table, rows in tables.items():
                cols = columns[table]
                out.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
                out.executemany(
                    f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})",
                    [tuple(plain(r[c]) for c in cols) for r in rows])
    finally:
        out.close()


async def open_work(url: str, sh: soak.Shared, fake: soak.PushKillFake) -> Counter[str]:
    """What is not final yet, by kind (soak.settle's measure, on PostgreSQL)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    out: Counter[str] = Counter()
    try:
        out["open activations"] = await conn.fetchval(
            "SELECT COUNT(*) FROM activations WHERE state IN"
            " ('purchasing','waiting','cancelling','expired')")
        out["undelivered events"] = await conn.fetchval(
            "SELECT COUNT(*) FROM events WHERE delivered_at IS NULL")
        out["strays cancelling"] = await conn.fetchval(
            "SELECT COUNT(*) FROM stray_orders WHERE state = 'cancelling'")
        # a write-off is watched for its late order; without late purchases injected
        # (and none pending) no order can land late, and verify() still finds any
        # upstream order without a bot order, so the CI variant does not wait ~40 s
        if sh.cfg.late_weight > 0 or sh.sim.sim.core.late_purchases:
            out["write-offs watched"] = await conn.fetchval(
                "SELECT COUNT(*) FROM activations a WHERE watch_until > $1 AND NOT EXISTS"
                " (SELECT 1 FROM stray_orders s WHERE s.activation_id = a.id)", time.time())
        credited = {r[0] for r in await conn.fetch(
            "SELECT charge_id FROM ledger WHERE charge_entry = 'topup'")}
    finally:
        await conn.close()
    out["payments not credited"] = len(set(fake.charges) - credited)
    out["late purchases"] = len(sh.sim.sim.core.late_purchases)
    out["updates not fetched"] = len(fake.pending_updates)
    return +out  # only the positive counts


def verify_failover(snap: Path, sim: SimHandle, report: soak.Report) -> None:
    """Refunds at most once per activation on both sides; request ids unique."""
    conn = soak.read_only(snap)
    try:
        twice = conn.execute(
            "SELECT activation_id, COUNT(*) FROM ledger WHERE kind = 'refund'"
            " AND activation_id IS NOT NULL GROUP BY activation_id HAVING COUNT(*) > 1"
        ).fetchall()
        dup_requests = conn.execute(
            "SELECT request_id, COUNT(*) FROM activations GROUP BY request_id"
            " HAVING COUNT(*) > 1").fetchall()
    finally:
        conn.close()
    for aid, n in twice:
        report.problem("double_refunds", f"bot order {aid} refunded {n}× in the ledger")
    upstream = Counter(e.activation_id for e in sim.sim.core.accounts[OPERATOR_KEY].ledger
                       if e.kind == "refund")
    for aid, n in upstream.items():
        if n > 1:
            report.problem("double_refunds", f"upstream {aid} refunded {n}×")
    for rid, n in dup_requests:
        report.problem("double_purchases", f"request id {rid} on {n} bot orders")


async def fence_leader(url: str, key: int) -> bool:
    """Terminate the database connection holding the leader lock ``key``."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid, classid, objid FROM pg_locks WHERE locktype = 'advisory'"
            " AND objsubid = 1 AND granted AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())")
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        pids = [r["pid"] for r in rows if (r["classid"] << 32 | r["objid"]) == unsigned]
        done = False
        for pid in pids:
            done = bool(await conn.fetchval("SELECT pg_terminate_backend($1)", pid)) or done
        return done
    finally:
        await conn.close()


async def fresh_database(server_url: str, name: str) -> str:
    """CREATE DATABASE ``name`` on the server; its URL."""
    import asyncpg

    from tests.conftest import database_dsn

    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_dsn(server_url, name)


def code_latencies(snap: Path, sim: SimHandle, fake: TimedFakeTelegram,
                   offset: float) -> list[float]:
    """Seconds from each code's due time upstream to its push (the OTP message's
    sendMessage, as the fake stamped it; ``offset`` turns its perf_counter stamps
    into wall-clock time, the simulator's clock)."""
    conn = soak.read_only(snap)
    try:
        chats = {str(r["remote_id"]): r["chat_id"] if r["chat_id"] is not None else r["user_id"]
                 for r in conn.execute("SELECT remote_id, chat_id, user_id FROM activations"
                                       " WHERE remote_id IS NOT NULL")}
    finally:
        conn.close()
    pushes: dict[int, list[tuple[float, str]]] = {}
    for s in fake.stamps:
        text = str(s.params.get("text", ""))
        if s.method == "sendMessage" and s.status == 200 and text.startswith(soak.OTP_PREFIX):
            with contextlib.suppress(TypeError, ValueError):
                pushes.setdefault(int(str(s.params.get("chat_id"))), []).append(
                    (s.t + offset, text))
    out: list[float] = []
    for act in sim.sim.core.activations.values():
        chat = chats.get(act.aid)
        if act.code is None or act.code_at is None or chat is None:
            continue
        sent = [t for t, text in pushes.get(int(chat), []) if act.code in text]
        if sent:
            out.append(max(0.0, min(sent) - act.code_at))
    return out
