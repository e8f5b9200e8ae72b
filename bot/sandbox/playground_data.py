"""The playground's data directory: its saved state, the Fernet key, and what the
bot's database already remembers (read-only: message ids and DaisySim activation ids a
fresh in-memory fake Telegram / simulator must not reuse)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

log = logging.getLogger("bot.sandbox.playground")

KEY_FILE = "encryption.key"
STATE_FILE = "playground.json"


def load_state(data_dir: Path) -> dict[str, Any]:
    path = data_dir / STATE_FILE
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def fernet_key(data_dir: Path) -> str:
    path = data_dir / KEY_FILE
    with contextlib.suppress(OSError):
        key = path.read_text(encoding="ascii").strip()
        try:
            Fernet(key.encode("ascii"))
            return key
        except (ValueError, TypeError):
            log.warning("%s is not a valid Fernet key; generating a new one", path)
    key = Fernet.generate_key().decode("ascii")
    write_private(path, key + "\n")
    return key


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + suffix).unlink()


def last_message_ids(db_path: Path) -> dict[int, int]:
    """chat id -> highest bot message id the database remembers (order messages).

    The fake Bot API is in memory and numbers each chat's messages from 1 again;
    the bot still edits the order messages it remembers, so new messages must not
    reuse those ids (after a restart, edits of vanished messages fail cleanly).
    """
    if not db_path.exists():
        return {}
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute(
                "SELECT chat_id, max(message_id) FROM activations "
                "WHERE chat_id IS NOT NULL AND message_id IS NOT NULL GROUP BY chat_id"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}
    return {int(chat): int(mid) for chat, mid in rows if chat is not None and mid is not None}


def max_remote_id(db_path: Path) -> int:
    """Highest DaisySim activation id already in the database (0 if none).

    The simulator is in memory and numbers its activations from 32886 again at
    every start; a persisted database already holds those ids for the same demo
    accounts (UNIQUE per account), so the new simulator must continue after them.
    """
    if not db_path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute(
                "SELECT remote_id FROM activations WHERE remote_id IS NOT NULL"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    best = 0
    for (raw,) in rows:
        if isinstance(raw, str) and raw.isdigit():
            best = max(best, int(raw))
        elif isinstance(raw, int):
            best = max(best, raw)
    return best
