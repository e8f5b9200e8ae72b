"""pytest plugin for the PostgreSQL pass of ``python -m tests`` (``-p tests.pg_pass``).

The PostgreSQL pass runs tests/storage, tests/services and tests/e2e again with
``DAISYBOT_TEST_BACKEND=postgresql``. Only a test that gets its database through a
fixture that switch selects (the harnesses, tests/storage's ``backend``) runs any
differently there. Every other test runs exactly as in the SQLite pass: the same code
on the same SQLite file, on no database at all (pure units, the planner, texts, the
browser test on the playground), or on PostgreSQL in both passes (``postgres_url``
taken directly: the schema parity, PostgresDatabase's own tests). Running it again
only costs time, so this plugin deselects it; ``--pg-pass-report`` lists them.
"""

from __future__ import annotations

import pytest

# Fixtures through which a test gets the bot's database as DAISYBOT_TEST_BACKEND says
# (tests/storage/conftest.py, the harnesses of tests/services and tests/e2e; these
# take postgres_url or postgres_migrated_url of tests/conftest.py when it says so).
DATABASE_FIXTURES = frozenset({
    "backend", "db_target",  # tests/storage/conftest.py
    "make_harness",  # tests/e2e/conftest.py (h, h_own use it)
})
# tests/services/conftest.py's harness is the fixture ``h`` (its engines open the db)
SERVICES_HARNESS = "h"


def uses_database(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    if names & DATABASE_FIXTURES:
        return True
    return SERVICES_HARNESS in names and "tests/services/" in item.nodeid


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pg-pass-report", action="store_true",
                     help="list the tests the PostgreSQL pass leaves out")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = [i for i in items if uses_database(i)]
    drop = [i for i in items if not uses_database(i)]
    if not drop:
        return
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
    if config.getoption("--pg-pass-report"):
        for item in drop:
            print(f"pg pass leaves out (same as in the SQLite pass): {item.nodeid}")
