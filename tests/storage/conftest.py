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
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

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


@pytest.fixture
def db_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where this test's database lives: a SQLite file or a PostgreSQL DSN."""
    if backend == "sqlite":
        return str(tmp_path / "t.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


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
