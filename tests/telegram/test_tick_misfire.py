"""The engine's tick runs even when it starts late.

APScheduler skips a job that starts more than its misfire grace time (1 s by
default) after its run time. The engine's one ``engine:tick`` job is then gone while
:class:`~bot.telegram.jobs.EngineScheduler` still holds its due time, so every later
``wake()`` (a purchase, a cancel) was ignored and the engine stalled: no polls, no
cancels, no give-ups, until a restart. The soaks met it on the loaded CI machine
("Run time of job engine:tick ... was missed by 0:00:03"). Now a late tick runs late.
"""

from __future__ import annotations

import asyncio
import time

from telegram.ext import ApplicationBuilder

from bot.clock import SystemClock
from bot.telegram.jobs import EngineScheduler


class CountingEngine:
    def __init__(self) -> None:
        self.calls = 0
        self.ran = asyncio.Event()

    async def run_due(self) -> float | None:
        self.calls += 1
        self.ran.set()
        return None  # nothing more to do


async def test_a_tick_that_starts_late_still_runs() -> None:
    app = ApplicationBuilder().token("123:test").updater(None).build()
    assert app.job_queue is not None
    await app.job_queue.start()
    engine = CountingEngine()
    clock = SystemClock()
    scheduler = EngineScheduler(app, engine, clock)  # type: ignore[arg-type]
    try:
        scheduler.wake(clock.now() + 0.05)
        # the event loop is blocked past the tick's 1-s misfire grace (a CPU-starved
        # process): the tick starts more than 1 s late
        time.sleep(1.6)  # noqa: ASYNC251
        await asyncio.wait_for(engine.ran.wait(), 10.0)
        assert engine.calls == 1
        # and the scheduler keeps working: the next wake-up runs too
        engine.ran.clear()
        scheduler.wake(clock.now())
        await asyncio.wait_for(engine.ran.wait(), 10.0)
        assert engine.calls == 2
    finally:
        scheduler.close()
        await app.job_queue.stop(wait=False)
