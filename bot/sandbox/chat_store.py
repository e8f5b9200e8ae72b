"""The playground's Telegram chats, kept in ``--data`` across restarts.

Without it every start began with empty chats that the user had never
``/start``-ed, so whatever the bot said right after a restart (say, "the purchase
failed, $1.40 refunded" for a number the old simulator took with it) was refused
with 403 and never reached the chat, and the order messages the bot still
remembered could not be edited. :class:`ChatStore` saves
:meth:`FakeTelegram.export_state` to ``telegram.json`` (mode 0600; deleted
messages are not in it) about once a second while anything changes and at
shutdown, and loads it before the bot starts polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

from bot.sandbox.fake_telegram import FakeTelegram

__all__ = ["CHATS_FILE", "ChatStore"]

log = logging.getLogger(__name__)

CHATS_FILE = "telegram.json"


class ChatStore:
    def __init__(self, fake: FakeTelegram, path: Path, *, every: float = 1.0) -> None:
        self.fake = fake
        self.path = path
        self.every = every
        self._written: str | None = None
        self._task: asyncio.Task[None] | None = None

    def load(self) -> bool:
        """Restore the saved chats into the fake (before the bot polls); False when
        there is nothing usable to restore (a broken file is set aside, not fatal)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        try:
            self.fake.import_state(json.loads(text))
        except ValueError as exc:
            log.warning("playground: ignoring unreadable %s (%s)", self.path.name, exc)
            with contextlib.suppress(OSError):
                self.path.replace(self.path.with_name(self.path.name + ".broken"))
            return False
        self._written = text
        return True

    def save(self) -> bool:
        """Write the chats if they changed since the last write."""
        text = json.dumps(self.fake.export_state(), ensure_ascii=False, separators=(",", ":"))
        if text == self._written:
            return False
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.path)
        self._written = text
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="playground-chat-store")

    async def close(self) -> None:
        """Stop the periodic saves and write the final state."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.save()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                self.save()
            except OSError as exc:  # a full disk must not stop the playground
                log.warning("playground: could not save the chats: %s", exc)
