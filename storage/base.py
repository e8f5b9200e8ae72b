"""What every repository module shares: the duplicate error and value helpers."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from decimal import Decimal
from typing import NoReturn

from storage.errors import ConstraintError

__all__ = ["DuplicateError", "literals", "marks", "money", "raise_duplicate", "values"]

_WORD = re.compile(r"[a-z_]+")


class DuplicateError(Exception):
    """A UNIQUE constraint refused the row (e.g. a repeated purchase request id)."""


def raise_duplicate(exc: BaseException) -> NoReturn:
    """Re-raise a UNIQUE violation as :class:`DuplicateError` (others unchanged):
    SQLite's ``UNIQUE constraint failed``, PostgreSQL's SQLSTATE 23505 (asyncpg's
    UniqueViolationError, or the :class:`storage.errors.ConstraintError` it becomes)."""
    unique = (
        (isinstance(exc, ConstraintError) and exc.unique)
        or getattr(exc, "sqlstate", None) == "23505"
        or (isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc))
    )
    if unique:
        raise DuplicateError(str(exc)) from exc
    raise exc


def money(value: object) -> object:
    """Decimals are stored as their exact string; other values unchanged."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("amounts must be finite")
        return str(value)
    return value


def marks(n: int) -> str:
    """``?, ?, ?`` for an ``IN (...)`` list of ``n`` values."""
    if n < 1:
        raise ValueError("an IN (...) list needs at least one value")
    return ", ".join("?" * n)


def values(states: Iterable[str]) -> list[str]:
    """Plain strings of state enum members, to bind as SQL parameters."""
    return [str(s) for s in states]


def literals(states: Iterable[str]) -> str:
    """``'a', 'b'``: a constant group of states written into the SQL text (not
    bound), so SQLite can use the partial indexes defined on the same states.
    Only plain lower-case words are accepted: these are code constants (the
    state groups of :mod:`bot.domain.activation`), never user input."""
    words = [str(s) for s in states]
    if not words:
        raise ValueError("an IN (...) list needs at least one value")
    for word in words:
        if not _WORD.fullmatch(word):
            raise ValueError(f"not a state name: {word!r}")
    return ", ".join(f"'{w}'" for w in words)
