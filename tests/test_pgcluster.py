"""The throwaway PostgreSQL cluster and the per-test database fixture work."""

from __future__ import annotations

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
