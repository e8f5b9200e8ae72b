"""Cost of one statement through the bot's Database interface, SQLite vs PostgreSQL.

    .venv/bin/python -m tests.bench.pg_statement_cost [--n 2000] [--url postgresql://…]

Without ``--url`` a throwaway cluster is started with durable settings (fsync,
synchronous_commit and full_page_writes ON, unlike the tests' cluster), on a unix
socket. SQLite: a file in a temp dir, WAL + synchronous=FULL (the bot's settings).
Per operation: wall time and this process's CPU time (the client side: for
PostgreSQL the server's work is in another process and shows in wall time only).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from storage import open_database
from storage.db import Database
from tests.pgcluster import start_cluster

Op = Callable[[Database, int], Awaitable[object]]


async def _read(db: Database, i: int) -> object:
    return await db.fetchone("SELECT * FROM users WHERE id = ?", (1 + i % 100,))


async def _update(db: Database, i: int) -> object:
    return await db.execute("UPDATE users SET last_seen_at = ? WHERE id = ?", (float(i), 1))


async def _transaction(db: Database, i: int) -> object:
    async with db.transaction():
        await db.fetchone("SELECT locale FROM users WHERE id = ?", (2,))
        return await db.execute("UPDATE users SET last_seen_at = ? WHERE id = ?", (float(i), 2))


OPS: dict[str, Op] = {
    "SELECT by id": _read,
    "UPDATE (autocommit)": _update,
    "transaction: SELECT + UPDATE": _transaction,
}


async def measure(target: str, n: int) -> dict[str, tuple[float, float]]:
    db = await open_database(target)
    try:
        for uid in range(1, 101):
            await db.execute(
                "INSERT INTO users (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (uid, 0.0),
            )
        out: dict[str, tuple[float, float]] = {}
        for name, op in OPS.items():
            for i in range(min(200, n)):  # warm: statements prepared, pages cached
                await op(db, i)
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                await op(db, i)
            out[name] = ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)
        return out
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.pg_statement_cost")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--url", default=None, help="a postgresql:// URL (default: own cluster)")
    args = parser.parse_args(argv)
    cluster = None
    url = args.url
    if url is None:
        cluster = start_cluster(settings={
            "fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
        })
        url = cluster.url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = {
                "sqlite": asyncio.run(measure(str(Path(tmp) / "bench.sqlite3"), args.n)),
                "postgresql": asyncio.run(measure(url, args.n)),
            }
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"{'operation':32} {'backend':11} {'wall us/op':>11} {'client CPU us/op':>17}")
    for name in OPS:
        for backend, rows in results.items():
            wall, cpu = rows[name]
            print(f"{name:32} {backend:11} {wall * 1e6:11.0f} {cpu * 1e6:17.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
