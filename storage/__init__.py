"""Persistence (SQLite via aiosqlite, or PostgreSQL via asyncpg). All SQL of the bot
lives in this package."""

from __future__ import annotations

import os
from typing import Any

from storage.db import Database, Dialect, MigrationError
from storage.errors import (
    ConnectionLostError,
    ConstraintError,
    DatabaseErrors,
    IntegrityError,
    StorageError,
)
from storage.repositories import DuplicateError, Repositories

__all__ = [
    "ConnectionLostError",
    "ConstraintError",
    "Database",
    "DatabaseErrors",
    "Dialect",
    "DuplicateError",
    "IntegrityError",
    "MigrationError",
    "Repositories",
    "StorageError",
    "is_postgres_url",
    "open_database",
]


def is_postgres_url(target: object) -> bool:
    """``postgresql://…`` or ``postgres://…`` (anything else is a SQLite path)."""
    return isinstance(target, str) and target.split("://", 1)[0].lower() in (
        "postgresql", "postgres",
    )


async def open_database(target: str | os.PathLike[str], **kwargs: Any) -> Database:
    """Open (and migrate) the bot's database: a ``postgresql://`` URL selects
    PostgreSQL (:class:`storage.pg.PostgresDatabase`), anything else is a SQLite path
    (:class:`storage.db.Database`). Keyword arguments go to the class's ``open``."""
    if is_postgres_url(target):
        from storage.pg import PostgresDatabase  # asyncpg only when PostgreSQL is used

        return await PostgresDatabase.open(str(target), **kwargs)
    return await Database.open(target, **kwargs)
