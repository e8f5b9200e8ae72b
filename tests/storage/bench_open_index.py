"""How long ``list_open``'s query takes over a big ``activations`` table, with the
open states bound as parameters (before) and written as literals from the domain
constant (now: SQLite can use the partial index ``activations_open``).

Run: ``.venv/bin/python -m tests.storage.bench_open_index`` (not a pytest test;
timings are printed, never asserted).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from bot.domain.activation import OPEN_STATES
from storage.base import literals
from storage.db import Database

FINISHED = 100_000
OPEN = 50
ROUNDS = 20


async def _migrate(path: Path) -> None:
    db = await Database.open(path)
    await db.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        asyncio.run(_migrate(path))
        con = sqlite3.connect(path)
        con.execute("INSERT INTO users (id, created_at) VALUES (1, 0)")
        con.execute(
            "INSERT INTO accounts (kind, key_hash, key_masked, created_at)"
            " VALUES ('operator', 'h', 'm', 0)"
        )
        con.executemany(
            "INSERT INTO activations (user_id, account_id, remote_id, service_code,"
            " service_name, price, state, code, request_id, purchase_sent_at)"
            " VALUES (1, 1, ?, 'sb', 'S', '1', ?, 'c', ?, 0)",
            (
                (str(i), "waiting" if i < OPEN else "completed", f"r{i}")
                for i in range(FINISHED + OPEN)
            ),
        )
        con.commit()
        con.execute("ANALYZE")
        bound = ", ".join("?" * len(OPEN_STATES))
        for label, sql, params in (
            ("bound IN list (before)", f"state IN ({bound})", [str(s) for s in OPEN_STATES]),
            ("literal IN list (now)", f"state IN ({literals(OPEN_STATES)})", []),
        ):
            query = f"SELECT * FROM activations WHERE {sql} ORDER BY id"
            plan = [r[-1] for r in con.execute("EXPLAIN QUERY PLAN " + query, params)]
            started = time.perf_counter()
            for _ in range(ROUNDS):
                found = len(con.execute(query, params).fetchall())
            per_query = (time.perf_counter() - started) / ROUNDS * 1000
            print(f"{label}: {found} rows of {FINISHED + OPEN}, {per_query:.2f} ms; plan {plan}")
        con.close()


if __name__ == "__main__":
    main()
