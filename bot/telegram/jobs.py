"""The JobQueue drives the engine.

The engine never sleeps: :meth:`EngineAPI.run_due` does what is due and returns
the clock time of its next work. One PTB job named ``engine:tick`` is kept
scheduled (``run_once``) at that time; :meth:`EngineAPI.set_waker` moves it
earlier when new work appears (a purchase, a cancel retry...). Delays are
computed from the engine's clock (``due - clock.now()``), so with a
:class:`~bot.clock.VirtualClock` tests advance the clock and call :func:`kick`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from telegram.ext import Job

from bot.clock import Clock
from bot.services.api import EngineAPI

if TYPE_CHECKING:
    from bot.telegram.context import BotContext, DaisyApp

__all__ = ["JOB_NAME", "EngineScheduler", "kick"]

log = logging.getLogger(__name__)

JOB_NAME = "engine:tick"
_RUN_LATE = {"misfire_grace_time": None, "coalesce": True}  # APScheduler job options
ERROR_BACKOFF_SECONDS = 5.0
# Real seconds: cap one sleep so a clock jump (NTP, suspend) is noticed in time.
MAX_DELAY_SECONDS = 300.0


class EngineScheduler:
    def __init__(self, application: DaisyApp, engine: EngineAPI, clock: Clock) -> None:
        self._app = application
        self._engine = engine
        self._clock = clock
        self._job: Job[BotContext] | None = None
        self._due: float | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._running = False
        self._woken: float | None = None

    # --------------------------------------------------------------- waker
    def wake(self, due: float) -> None:
        """The engine's waker: run no later than ``due`` (clock time)."""
        if self._closed:
            return
        if self._running and (self._woken is None or due < self._woken):
            self._woken = due
        if self._due is None or due < self._due:
            self._schedule(due)

    def _schedule(self, due: float) -> None:
        job_queue = self._app.job_queue
        if job_queue is None:  # pragma: no cover - job-queue extra is a dependency
            raise RuntimeError("python-telegram-bot[job-queue] is required")
        self._remove_job()
        delay = min(max(0.0, due - self._clock.now()), MAX_DELAY_SECONDS)
        self._due = due
        # A tick that runs late (a loaded machine, a long GC pause) still runs:
        # APScheduler would otherwise skip it past its 1-s misfire grace, and with
        # ``_due`` left at the skipped time every later wake() is ignored: the engine
        # would stall (no polls, cancels or give-ups) until a restart.
        self._job = job_queue.run_once(self._run_job, when=delay, name=JOB_NAME,
                                       job_kwargs=_RUN_LATE)

    async def _run_job(self, context: BotContext) -> None:
        self._job = None
        self._due = None
        await self.kick()

    # ---------------------------------------------------------------- tick
    async def kick(self) -> float | None:
        """Run the engine's due work now and schedule the next tick."""
        if self._closed:
            return None
        async with self._lock:
            self._woken = None
            self._running = True
            try:
                due = await self._engine.run_due()
            except Exception:
                log.exception("engine.run_due failed; retrying in %.0f s", ERROR_BACKOFF_SECONDS)
                due = self._clock.now() + ERROR_BACKOFF_SECONDS
            finally:
                self._running = False
            if self._closed:
                return None
            # The engine's answer reflects all its work; a wake-up that arrived while
            # it ran may be earlier still.
            candidates = [d for d in (due, self._woken) if d is not None]
            if candidates:
                self._schedule(min(candidates))
            else:
                self._cancel_job()
            return due

    def _cancel_job(self) -> None:
        self._remove_job()
        self._due = None

    def _remove_job(self) -> None:
        job, self._job = self._job, None
        if job is not None and not job.removed:
            try:
                job.schedule_removal()
            except Exception:  # already ran and was dropped by the scheduler
                log.debug("engine tick job already gone")

    def close(self) -> None:
        self._closed = True
        self._cancel_job()

    @property
    def scheduled_due(self) -> float | None:
        return self._due


async def kick(application: DaisyApp) -> float | None:
    """Run ``engine.run_due()`` now and reschedule (tests call this after advancing
    the virtual clock). Returns the engine's next due time."""
    scheduler = application.bot_data.scheduler
    if scheduler is None:
        raise RuntimeError("the application is not started: call bot.app.startup() first")
    return await scheduler.kick()
