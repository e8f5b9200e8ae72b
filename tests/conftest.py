"""Suite-wide fixtures: a real PostgreSQL for the tests that need one.

* ``postgres_server`` (session): the server URL (maintenance database ``postgres``):
  ``$DAISYBOT_TEST_POSTGRES`` (``python -m tests`` starts one cluster for the whole
  run), else a throwaway cluster started lazily by this pytest process
  (tests/pgcluster.py). No PostgreSQL binaries: the test skips, unless
  ``DAISYBOT_REQUIRE_POSTGRES=1`` (then it fails).
* ``postgres_url``: a fresh, empty database per test (``t_<worker>_<pid>_<n>``),
  dropped afterwards (WITH (FORCE): a connection the test left open does not block).
* ``postgres_migrated_url``: the same, already at the current schema: a copy
  (``CREATE DATABASE … TEMPLATE``) of one database this process migrated once,
  ~70 ms instead of ~0.4 s for the nine migrations. The services and e2e harnesses
  use it.
* ``DAISYBOT_TEST_BACKEND=postgresql`` (:data:`ON_POSTGRES`) makes the database
  fixtures of tests/storage, tests/services and tests/e2e use ``postgres_url``;
  tests marked ``sqlite_only`` (SQLite-file specifics) skip then.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest

from tests.pgcluster import ClusterError, lazy_server_url

_T = TypeVar("_T")

BACKEND = os.environ.get("DAISYBOT_TEST_BACKEND", "sqlite").strip().lower() or "sqlite"
ON_POSTGRES = BACKEND in ("postgresql", "postgres", "pg")
REQUIRE_POSTGRES = os.environ.get("DAISYBOT_REQUIRE_POSTGRES", "") not in ("", "0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: SQLite-specific (file, WAL, PRAGMA); skipped on PostgreSQL"
    )
    config.addinivalue_line("markers", "postgres: needs a real PostgreSQL (postgres_url)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="SQLite-specific (DAISYBOT_TEST_BACKEND=postgresql)")
    for item in items:
        if item.get_closest_marker("sqlite_only") is not None:
            item.add_marker(skip)


class _Admin:
    """One maintenance connection on a private thread + event loop, so sync and
    async fixtures alike can create and drop databases (each test has its own loop)."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn: Any = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        future: Future[_T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(60)

    async def _connection(self) -> Any:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.server_url)
        return self._conn

    async def _execute(self, sql: str) -> None:
        conn = await self._connection()
        await conn.execute(sql)

    async def _migrate(self, dsn: str) -> None:
        from storage import open_database

        db = await open_database(dsn)
        await db.close()

    def migrate(self, dsn: str) -> None:
        with self._lock:
            self.run(self._migrate(dsn))

    def execute(self, sql: str) -> None:
        with self._lock:
            self.run(self._execute(sql))

    def close(self) -> None:
        async def _close() -> None:
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.close()

        try:
            self.run(_close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def server_url_or_skip() -> str:
    """The PostgreSQL server URL, or skip (fail with DAISYBOT_REQUIRE_POSTGRES=1)."""
    try:
        return lazy_server_url()
    except (ClusterError, OSError) as exc:
        if REQUIRE_POSTGRES or ON_POSTGRES:
            pytest.fail(f"PostgreSQL required but unavailable: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL: {exc}")


def database_dsn(server_url: str, dbname: str) -> str:
    """``server_url`` with its database replaced by ``dbname``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + dbname))


_counter = itertools.count(1)
_admins: dict[str, _Admin] = {}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = server_url_or_skip()
    yield url
    admin = _admins.pop(url, None)
    if admin is not None:
        admin.close()


def _admin(server: str) -> _Admin:
    admin = _admins.get(server)
    if admin is None:
        admin = _admins[server] = _Admin(server)
    return admin


def _fresh_name() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"t_{worker}_{os.getpid()}_{next(_counter)}".lower()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh empty PostgreSQL database for this test; its DSN."""
    admin = _admin(postgres_server)
    name = _fresh_name()
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_dsn(postgres_server, name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[str]:
    """This process's migrated template database (its name)."""
    admin = _admin(postgres_server)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"tmpl_{worker}_{os.getpid()}".lower()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    admin.migrate(database_dsn(postgres_server, name))  # and closed: copyable
    yield name
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_migrated_url(postgres_server: str, postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the current schema for this test; its DSN."""
    admin = _admin(postgres_server)
    name = _fresh_name()
    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        yield database_dsn(postgres_server, name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
