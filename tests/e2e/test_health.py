"""/healthz of the real Application (bot.health.bot_probe): the database write probe
and the event outbox, with the virtual clock.

* The bot's own connection cannot write (``PRAGMA query_only``: what a read-only
  file or file system looks like to SQLite; on PostgreSQL a read-only session,
  what a hot standby or a read-only database answers) → 503 naming ``database``;
  back → 200.
* A code that cannot be delivered (Telegram answers 500) waits in the outbox longer
  than HEALTH_OUTBOX_MAX_AGE_SECONDS → 503 naming ``outbox``; delivered → 200.
* The unit rules of the updates check (UpdateFeed) on a fake monotonic clock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest_asyncio

from bot.health import HealthServer, bot_probe, start_health_server
from bot.liveness import UpdateFeed
from tests.e2e.conftest import WAIT, Harness, HarnessFactory
from tests.texts import pattern, service_button, text

OUTBOX_MAX_AGE = 120.0


@pytest_asyncio.fixture
async def hh(make_harness: HarnessFactory) -> AsyncIterator[tuple[Harness, HealthServer]]:
    h = await make_harness(health_outbox_max_age_seconds=OUTBOX_MAX_AGE)
    await h.credit(1, "10")
    assert h.app is not None and h.app.bot_data.settings is not None
    server = await start_health_server(bot_probe(h.app, h.app.bot_data.settings))
    try:
        yield h, server
    finally:
        await server.close()


async def _health(server: HealthServer) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(server.url) as r:
        return r.status, await r.json()


async def test_database_that_cannot_be_written_is_503(
    hh: tuple[Harness, HealthServer],
) -> None:
    h, server = hh
    status, body = await _health(server)
    assert status == 200 and body["checks"]["database"] is True
    db = h.engine.inspect.db  # type: ignore[attr-defined]
    read_only = {"sqlite": "PRAGMA query_only = ON",
                 "postgresql": "SET default_transaction_read_only = on"}
    writable = {"sqlite": "PRAGMA query_only = OFF",
                "postgresql": "SET default_transaction_read_only = off"}
    await db.execute(read_only[db.dialect])
    try:
        status, body = await _health(server)
        assert status == 503
        assert body["checks"] == {"application": True, "updates": True, "database": False,
                                  "outbox": True}
    finally:
        await db.execute(writable[db.dialect])
    status, body = await _health(server)
    assert status == 200, body
    # The probe's transaction was rolled back cleanly: the bot still writes.
    alice = h.user()
    await alice.send("/start")
    await alice.wait_for(text("menu_title"), WAIT)

OTP = pattern("otp_message")


async def test_stuck_outbox_is_503_until_the_event_is_delivered(
    hh: tuple[Harness, HealthServer],
) -> None:
    h, server = hh
    alice = h.user()
    await h.buy(alice, service_button("Signal", "$0.60"))
    [act] = await h.activations()
    assert act.remote_id is not None
    h.fake.inject_error("sendMessage", 500, count=1000)  # the code cannot be pushed
    h.sim.deliver_sms(act.remote_id, "318842")
    await h.advance(15)
    status, body = await _health(server)
    assert status == 200, body  # pending, but not for long yet
    await h.advance(OUTBOX_MAX_AGE + 30)
    status, body = await _health(server)
    assert status == 503
    assert body["checks"] == {"application": True, "updates": True, "database": True,
                              "outbox": False}
    h.fake.clear_injected()
    await h.advance(700)  # the next retry (backoff) delivers it
    await alice.wait_for(lambda m: OTP.match(m.text) is not None, WAIT, since=0)
    status, body = await _health(server)
    assert status == 200, body


@asynccontextmanager
async def _other_process_writing(h: Harness) -> AsyncIterator[None]:
    """Another process inside a write transaction on the bot's database."""
    if h.database_url is None:
        other = sqlite3.connect(h.engine.inspect.db_path, timeout=0.1)  # type: ignore[attr-defined]
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.rollback()
            other.close()
        return
    import asyncpg

    from storage.pg import WRITE_LOCK_KEY

    conn = await asyncpg.connect(h.database_url)
    try:
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
        yield
        await conn.execute("ROLLBACK")
    finally:
        await conn.close()


async def test_database_probe_that_hangs_is_503_and_is_not_cancelled(
    hh: tuple[Harness, HealthServer],
) -> None:
    """Another process holds the write lock: the probe gives up (503) without cancelling
    its statement; the transaction completes later and the bot goes on writing."""
    h, server = hh
    async with _other_process_writing(h):
        status, body = await _health(server)
        assert status == 503 and body["checks"]["database"] is False
    for _ in range(100):  # bounded: the shared probe finishes once the lock is free
        status, body = await _health(server)
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert status == 200, body
    alice = h.user()
    await alice.send("/start")
    await alice.wait_for(text("menu_title"), WAIT)


def test_update_feed_rules() -> None:
    now = [100.0]
    feed = UpdateFeed(lambda: now[0])
    assert feed.fresh(5)  # just started
    now[0] += 6
    assert not feed.fresh(5)  # never fetched anything
    feed.poll_started(15.0)
    now[0] += 1
    feed.poll_finished(True)
    assert feed.fresh(5)
    feed.poll_started(15.0)  # a long poll after a success: fresh for 15 + 5 s
    now[0] += 19
    assert feed.fresh(5)
    now[0] += 2
    assert not feed.fresh(5)  # hung beyond its own timeout
    feed.poll_finished(True)
    feed.poll_started(15.0)
    feed.poll_finished(False)  # 502
    now[0] += 4
    assert feed.fresh(5)
    feed.poll_started(15.0)  # in flight after a failure: only the last success counts
    now[0] += 2
    assert not feed.fresh(5)
    feed.poll_finished(True)
    assert feed.fresh(5) and feed.failures == 0
    now[0] += 60
    feed.received()  # a webhook delivery
    assert feed.fresh(5)
