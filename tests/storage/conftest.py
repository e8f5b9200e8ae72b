"""tests/storage on both backends: the ``backend`` fixture is parametrized over
SQLite and PostgreSQL (test ids ``[sqlite]`` / ``[postgresql]``), and ``db`` /
``repos`` open a fresh database of that backend (a file in ``tmp_path``, or a fresh
PostgreSQL database from ``postgres_url``, tests/conftest.py).

Which parameters run (``DAISYBOT_TEST_BACKEND``):

* unset: both (``[postgresql]`` skips when there is no PostgreSQL, unless
  ``DAISYBOT_REQUIRE_POSTGRES=1``);
* ``sqlite``: only ``[sqlite]``; ``postgresql``: only ``[postgresql]`` -- so a run
  of the suite per backend runs each case once.

Tests about the SQLite file itself (WAL, PRAGMAs, paths) do not take ``backend``
and are marked ``sqlite_only``.

Speed: a fresh PostgreSQL database costs ~0.3-0.5 s (CREATE DATABASE + the nine
migrations); these tests instead share ONE migrated database per pytest process and
empty it before each test (every table's rows deleted, identities restarted, the
seed row of migration 0003 put back: ~10 ms). A test that needs a database of its own
(migrations, schema changes) takes ``postgres_url`` instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio

from storage import open_database
from storage.db import Database
from storage.repositories import Repositories

BACKENDS = ("sqlite", "postgresql")


def _chosen() -> str | None:
    raw = os.environ.get("DAISYBOT_TEST_BACKEND", "").strip().lower()
    if not raw:
        return None
    return "postgresql" if raw in ("postgresql", "postgres", "pg") else "sqlite"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    chosen = _chosen()
    if chosen is not None and chosen != name:
        pytest.skip(f"DAISYBOT_TEST_BACKEND={chosen}")
    return name


# Rows that a migration itself writes, put back after emptying (0003_health_probe).
_SEED = "INSERT INTO health_probe (id, probed_at) VALUES (1, 0)"


async def _reset_script(url: str) -> str:
    """SQL that empties every table but schema_version and restarts the identities.
    (session_replication_role = replica: the foreign keys' triggers do not fire, so
    the tables can be emptied in any order; the test server's user is a superuser.)"""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        tables = [
            str(r[0]) for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'schema_version' ORDER BY tablename"
            )
        ]
        sequences = [
            str(r[0]) for r in await conn.fetch(
                "SELECT pg_get_serial_sequence(quote_ident(table_name), column_name)"
                " FROM information_schema.columns"
                " WHERE table_schema = 'public' AND is_identity = 'YES'"
            )
        ]
    finally:
        await conn.close()
    return "; ".join([
        "SET lock_timeout = '10s'",
        "SET session_replication_role = replica",
        *(f'DELETE FROM "{t}"' for t in tables),
        "SET session_replication_role = DEFAULT",
        *(f"ALTER SEQUENCE {s} RESTART" for s in sequences),
        _SEED,
    ])


async def _execute(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_storage_db(postgres_server: str) -> Iterator[tuple[str, str]]:
    """(DSN, reset script) of this process's shared, migrated storage database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"storage_{worker}_{os.getpid()}".lower()
    url = urlunsplit(urlsplit(postgres_server)._replace(path="/" + name))

    async def create() -> str:
        await _execute(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _execute(postgres_server, f'CREATE DATABASE "{name}"')
        database = await open_database(url)
        await database.close()
        return await _reset_script(url)

    reset = asyncio.run(create())
    yield url, reset
    asyncio.run(_execute(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where this test's database lives: a SQLite file, or the shared PostgreSQL
    storage database, emptied (fresh and migrated, either way)."""
    if backend == "sqlite":
        return str(tmp_path / "t.sqlite3")
    url, reset = request.getfixturevalue("postgres_storage_db")
    asyncio.run(_execute(url, reset))
    return str(url)


@pytest_asyncio.fixture
async def db(db_target: str) -> AsyncIterator[Database]:
    database = await open_database(db_target)
    try:
        yield database
    finally:
        await database.close()


@pytest_asyncio.fixture
async def repos(db: Database) -> AsyncIterator[Repositories]:
    yield Repositories(db)
