"""Concurrent update processing that keeps each user's updates in order.

PTB processes updates one at a time by default, so one user's slow step (a
purchase waiting on DaisySim for seconds) would hold up every other user. Plain
``concurrent_updates(True)`` is unsafe with ConversationHandler (two updates of
one conversation racing each other). This processor runs updates of different
users concurrently, but those of one user strictly one after another, in the
order they arrived: exactly the guarantee a conversation needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from telegram import Update
from telegram.ext import BaseUpdateProcessor

__all__ = ["PerUserUpdateProcessor", "update_key"]


def update_key(update: object) -> int | None:
    """The user (else chat) an update belongs to; None for anything else."""
    if isinstance(update, Update):
        if update.effective_user is not None:
            return update.effective_user.id
        if update.effective_chat is not None:
            return update.effective_chat.id
    return None


class PerUserUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int = 64) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}  # updates queued or running per key

    async def do_process_update(self, update: object, coroutine: Awaitable[object]) -> None:
        key = update_key(update)
        if key is None:
            await coroutine
            return
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:  # asyncio.Lock wakes waiters in FIFO order
                await coroutine
        finally:
            left = self._users[key] - 1
            if left:
                self._users[key] = left
            else:  # nobody else of this user is waiting: forget the lock
                del self._users[key]
                del self._locks[key]

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
