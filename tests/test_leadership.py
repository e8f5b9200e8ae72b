"""Leadership's logic with a VirtualClock and a lock the test controls, and the
SQLite flavour of the lock (an flock on ``<database>.lock``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.clock import VirtualClock
from bot.leadership import EXIT_CONNECTION_LOST, Leadership
from storage.db import Database
from storage.leader import LEADER_LOCK_KEY, LeaderRepo


class FakeLock:
    def __init__(self) -> None:
        self.free = False
        self.tries = 0
        self.releases = 0

    async def try_acquire(self) -> bool:
        self.tries += 1
        return self.free

    async def release(self) -> None:
        self.releases += 1


def _no_exit(code: int) -> None:
    raise AssertionError(f"exit({code}) was not expected")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_follower_tries_every_poll_interval_and_leads_when_the_lock_frees(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "bot.leadership")
    clock = VirtualClock()
    lock = FakeLock()
    lead = Leadership(lock, poll_interval=0.5, clock=clock, exit=_no_exit)
    task = asyncio.create_task(lead.wait())
    await _settle()
    assert lock.tries == 1 and lead.role == "follower" and not task.done()
    clock.advance(0.4)
    await _settle()
    assert lock.tries == 1  # not before the interval
    clock.advance(0.1)
    await _settle()
    assert lock.tries == 2
    for _ in range(5):
        clock.advance(0.5)
        await _settle()
    assert lock.tries == 7 and not task.done()
    lock.free = True
    start = clock.now()
    clock.advance(0.5)
    await _settle()
    assert task.done() and task.result() is True
    assert lead.role == "leader" and lead.leading and lead.elected_at == start + 0.5
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("waiting as follower") for m in messages) == 1  # once
    assert sum(m.startswith("leading") for m in messages) == 1
    await lead.release()
    assert lock.releases == 1 and lead.role == "stopped"


async def test_a_free_lock_leads_at_once_without_waiting() -> None:
    clock = VirtualClock()
    lock = FakeLock()
    lock.free = True
    lead = Leadership(lock, clock=clock, exit=_no_exit)
    assert await lead.wait() is True
    assert lock.tries == 1 and lead.elected_at == clock.now()


async def test_stop_ends_the_wait_without_leading() -> None:
    clock = VirtualClock()
    lock = FakeLock()
    lead = Leadership(lock, poll_interval=0.5, clock=clock, exit=_no_exit)
    stop = asyncio.Event()
    task = asyncio.create_task(lead.wait(stop))
    await _settle()
    stop.set()  # no clock movement needed: the wait ends on the event
    assert await asyncio.wait_for(task, 5) is False
    assert lead.role == "stopped" and lock.tries == 1
    await lead.release()
    assert lock.releases == 0  # a follower holds nothing to give back
    assert clock.next_wakeup() is None  # the pending sleep was cancelled


async def test_a_lost_connection_exits_75_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bot.leadership")
    codes: list[int] = []
    lock = FakeLock()
    lock.free = True
    lead = Leadership(lock, clock=VirtualClock(), exit=codes.append)
    await lead.wait()
    lead.connection_lost(object())
    lead.connection_lost(object())
    assert codes == [EXIT_CONNECTION_LOST] == [75]
    assert lead.role == "stopped" and lead.lost
    [line] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "connection was lost" in line.getMessage() and "75" in line.getMessage()
    await lead.release()
    assert lock.releases == 0  # no statement after the loss


def test_poll_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Leadership(FakeLock(), poll_interval=0)


async def test_sqlite_one_process_per_file_the_second_waits_hot(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    first, second = await Database.open(path), await Database.open(path)
    try:
        one, two = LeaderRepo(first), LeaderRepo(second)
        assert not one.postgresql
        assert await one.try_acquire() is True
        assert await one.try_acquire() is True  # idempotent
        assert await two.try_acquire() is False  # flock: another open file description
        assert (await one.holder()) is not None and (await two.holder()) is None
        await one.release()
        assert await two.try_acquire() is True
        await two.release()
        assert (tmp_path / "bot.sqlite3.lock").exists()
    finally:
        await first.close()
        await second.close()


async def test_sqlite_memory_database_always_leads() -> None:
    db = await Database.open(":memory:")
    try:
        assert await LeaderRepo(db).try_acquire() is True
        assert await LeaderRepo(db).try_acquire() is True
        assert await LeaderRepo(db).ping() is True
    finally:
        await db.close()


async def test_pg_one_holder_at_a_time_released_by_release_or_by_closing(
    postgres_url: str,
) -> None:
    from storage import open_database

    first, second = await open_database(postgres_url), await open_database(postgres_url)
    try:
        one, two = LeaderRepo(first), LeaderRepo(second)
        assert one.postgresql
        assert await one.try_acquire() is True
        assert await one.try_acquire() is True  # held: not stacked a second time
        assert await two.try_acquire() is False
        mine, theirs = await one.holder(), await two.holder()
        assert mine is not None and mine.ours and mine.pid == await one.backend_pid()
        assert theirs is not None and not theirs.ours and theirs.pid == mine.pid
        await one.release()
        assert await one.holder() is None
        assert await two.try_acquire() is True
        await second.close()  # a closed (or killed) connection releases it
        assert await one.try_acquire() is True
    finally:
        await first.close()
        await second.close()


async def test_pg_a_terminated_connection_ends_leadership_with_exit_75(
    postgres_url: str,
) -> None:
    import asyncpg

    from storage import open_database

    db = await open_database(postgres_url)
    codes: list[int] = []
    exited = asyncio.Event()

    def exit_(code: int) -> None:
        codes.append(code)
        exited.set()

    lead = Leadership(LeaderRepo(db), clock=VirtualClock(), exit=exit_)
    db.on_connection_lost(lead.connection_lost)
    other = await asyncpg.connect(postgres_url)
    try:
        assert await lead.wait() is True
        pid = await LeaderRepo(db).backend_pid()
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
        await asyncio.wait_for(exited.wait(), 10)  # no statement needed to notice
        assert codes == [75] and lead.lost
        # The lock went with the connection: another session takes it at once.
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY)
    finally:
        await other.close()
        await db.close()
