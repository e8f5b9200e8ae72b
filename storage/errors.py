"""Backend-neutral storage errors: what callers catch, whichever database runs.

SQLite raises the :mod:`sqlite3` errors as it always did; the PostgreSQL backend
(:mod:`storage.pg`) translates asyncpg's into the classes below (the original is
chained as ``__cause__``). Callers catch the tuples:

* :data:`IntegrityError`: a UNIQUE / CHECK / NOT NULL / FOREIGN KEY constraint or a
  trigger refused the statement (``sqlite3.IntegrityError`` or :class:`ConstraintError`).
* :data:`DatabaseErrors`: any database failure (``sqlite3.Error`` or :class:`StorageError`),
  e.g. for /healthz or the runner's one-line message at startup.
"""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = [
    "ConnectionLostError",
    "ConstraintError",
    "DatabaseErrors",
    "IntegrityError",
    "StorageError",
]


class StorageError(Exception):
    """A PostgreSQL statement failed (not a constraint): see ``__cause__``."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ConstraintError(StorageError):
    """A PostgreSQL constraint or trigger refused the statement (SQLSTATE class 23,
    or a plpgsql RAISE). ``unique``: it was a UNIQUE violation (23505)."""

    def __init__(
        self, message: str, *, sqlstate: str | None = None, constraint: str | None = None
    ) -> None:
        super().__init__(message, sqlstate=sqlstate)
        self.constraint = constraint

    @property
    def unique(self) -> bool:
        return self.sqlstate == "23505"


class ConnectionLostError(StorageError):
    """The connection to PostgreSQL is gone (or the database was closed): nothing
    more can be read or written through it."""


IntegrityError: Final = (sqlite3.IntegrityError, ConstraintError)
DatabaseErrors: Final = (sqlite3.Error, StorageError)
