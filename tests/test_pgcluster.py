"""The throwaway PostgreSQL cluster and the per-test database fixture work."""

from __future__ import annotations

from pathlib import Path

import asyncpg


async def test_postgres_url_is_a_fresh_empty_database(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
        await conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, amount NUMERIC NOT NULL)")
        await conn.execute("INSERT INTO t VALUES (1, 1.25)")
        assert str(await conn.fetchval("SELECT amount FROM t")) == "1.25"
    finally:
        await conn.close()


async def test_each_test_gets_its_own_database(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        assert name.startswith("t_")
        assert await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ) == 0
    finally:
        await conn.close()


def test_litter_of_killed_runs_is_removed(tmp_path: Path) -> None:
    import os
    import time

    from tests.pgcluster import _remove_stale

    dead = tmp_path / "daisybot-pg-dead"
    (dead / "data").mkdir(parents=True)
    (dead / "data" / "postmaster.pid").write_text("999999999\n/x\n")
    alive = tmp_path / "daisybot-pg-alive"
    (alive / "data").mkdir(parents=True)
    (alive / "data" / "postmaster.pid").write_text(f"{os.getpid()}\n/x\n")
    young = tmp_path / "daisybot-pg-young"
    young.mkdir()
    old = time.time() - 3600
    for folder in (dead, alive):
        os.utime(folder, (old, old))
    _remove_stale(tmp_path)
    assert not dead.exists() and alive.exists() and young.exists()
