"""The role of a ``daisybot run`` process: the one leader, or a follower waiting hot.

Several processes may run on one PostgreSQL database; exactly one leads: it
long-polls Telegram (or serves the webhook) and runs the engine (poller, cancels,
event dispatch, top-ups, broadcasts, alerts). The others have the Application
initialized and the database open, serve ``/healthz`` as ``"role": "follower"``,
and try to take the lock every ``LEADER_POLL_INTERVAL`` seconds
(:class:`~storage.leader.LeaderRepo`: a session advisory lock on the process's one
connection). SQLite: the first process leads at once.

The fence: leadership lives on the database connection every write goes through.
When that connection is lost, the lock is gone too (another process may be leading
already), so the process stops *at once*: :meth:`Leadership.connection_lost` logs
one line and exits with :data:`EXIT_CONNECTION_LOST` (75, ``EX_TEMPFAIL``), no
cleanup that could write or send; the supervisor (Docker's ``restart:``) starts it
again, as a follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Literal, Protocol

from bot.clock import Clock, SystemClock

__all__ = ["EXIT_CONNECTION_LOST", "LeaderLock", "Leadership", "Role"]

log = logging.getLogger("bot.leadership")

EXIT_CONNECTION_LOST = 75  # EX_TEMPFAIL: restart me (as a follower)

Role = Literal["follower", "leader", "stopped"]


class LeaderLock(Protocol):
    async def try_acquire(self) -> bool: ...

    async def release(self) -> None: ...


class Leadership:
    """Waits for the lock (:meth:`wait`), then is the leader until :meth:`release`
    or the connection is lost (:meth:`connection_lost`).

    ``clock``: what the waiting loop sleeps on (tests pass a VirtualClock);
    ``exit``: how the process ends on a lost connection (``os._exit``: nothing
    after it runs, so nothing can write or send)."""

    def __init__(
        self,
        lock: LeaderLock,
        *,
        poll_interval: float = 0.5,
        clock: Clock | None = None,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.lock = lock
        self.poll_interval = poll_interval
        self.clock: Clock = clock or SystemClock()
        self._exit = exit
        self.role: Role = "follower"
        self.attempts = 0
        self.elected_at: float | None = None  # clock time of the election
        self.lost = False

    @property
    def leading(self) -> bool:
        return self.role == "leader"

    async def wait(self, stop: asyncio.Event | None = None) -> bool:
        """Try the lock until it is ours (True) or ``stop`` is set first (False).
        Logs "leading" once, and "waiting as follower" once if it had to wait."""
        said_waiting = False
        while True:
            if stop is not None and stop.is_set():
                self.role = "stopped"
                return False
            self.attempts += 1
            if await self.lock.try_acquire():
                self.role = "leader"
                self.elected_at = self.clock.now()
                log.info("leading (elected after %d attempt%s)", self.attempts,
                         "" if self.attempts == 1 else "s")
                return True
            if not said_waiting:
                said_waiting = True
                log.info("waiting as follower: another process leads; trying every %g s",
                         self.poll_interval)
            await self._pause(stop)

    async def _pause(self, stop: asyncio.Event | None) -> None:
        if stop is None:
            await self.clock.sleep(self.poll_interval)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(self.poll_interval))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            for task in (sleeper, stopper):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def release(self) -> None:
        """Graceful stop: give the lock up so a follower takes over at once."""
        if self.role == "leader" and not self.lost:
            await self.lock.release()
        self.role = "stopped"

    def connection_lost(self, *_: object) -> None:
        """The database connection is gone, and leadership with it: stop now."""
        if self.lost:
            return
        self.lost = True
        was = self.role
        self.role = "stopped"
        log.critical("the database connection was lost (%s): stopping at once, exit %d",
                     "leadership is gone" if was == "leader" else "as a follower",
                     EXIT_CONNECTION_LOST)
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        self._exit(EXIT_CONNECTION_LOST)
