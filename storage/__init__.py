"""Persistence (SQLite via aiosqlite). All SQL of the bot lives in this package."""

from storage.db import Database, MigrationError
from storage.repositories import DuplicateError, Repositories

__all__ = ["Database", "DuplicateError", "MigrationError", "Repositories"]
