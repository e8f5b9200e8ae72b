"""``/broadcast`` end to end: the real Application ↔ the fake Bot API.

The broadcast paces itself on the injected clock, and here the rate limiter's
token buckets run on the same VirtualClock (``paced``), as does the fake Bot API,
which records each call's arrival time on it. So 1,000 messages at 20/s are 50
seconds of clock time, checked from the fake's records, in a few seconds of wall
time. The clock only moves while the broadcast job sleeps (nothing on the wire).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

import bot.app
from bot.clock import VirtualClock
from bot.sandbox.fake_telegram import FakeUser
from bot.services.api import BroadcastView
from bot.telegram.admin.broadcast import BULK, JOB_PREFIX, BroadcastRunner
from bot.telegram.ratelimit import OVERALL_PER_SECOND, TelegramRateLimiter
from tests.e2e.conftest import ADMIN, WAIT, Harness, HarnessFactory
from tests.e2e.test_flood_control import CODE, COSMETIC, Wire, request, spin
from tests.texts import button, pattern, text

FIRST_USER = 5000
MESSAGE = "Big <b>news</b> &amp; a <a href=\"https://example.com/sale\">sale</a>\nsecond line"
SHOWN = "Big news & a sale\nsecond line"  # as Telegram shows it (entities apart)
PREVIEW = pattern("bc_preview")
SEND = pattern("btn_bc_send")


@pytest.fixture
def paced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's rate limiter paces on the harness's VirtualClock (its first argument)."""

    class VirtualPace(TelegramRateLimiter):
        def __init__(self, clock: Any = None, **kwargs: Any) -> None:
            super().__init__(clock, pace_clock=clock, **kwargs)

    monkeypatch.setattr(bot.app, "TelegramRateLimiter", VirtualPace)


async def paced_harness(make_harness: HarnessFactory, **overrides: Any) -> Harness:
    h = await make_harness(start=False, **overrides)
    h.fake.clock = h.clock  # the fake records arrival times on the same clock
    await h.start_bot()
    return h


async def add_users(h: Harness, count: int) -> list[int]:
    """``count`` users who started the bot (registered, their chat open)."""
    ids = list(range(FIRST_USER, FIRST_USER + count))
    inspect = h.engine.inspect  # type: ignore[attr-defined]
    now = h.clock.now()
    async with inspect.db.transaction():  # what their /start wrote, at once
        for uid in ids:
            h.fake.user(uid, first_name=f"U{uid}")
            h.fake.state.chat(uid).started = True
            await inspect.repos.users.ensure(uid, now, "en")
            await inspect.repos.users.seen(uid, now)
    return ids


def runner(h: Harness) -> BroadcastRunner:
    assert h.app is not None
    found = h.app.bot_data.broadcasts
    assert isinstance(found, BroadcastRunner)
    return found


async def preview(h: Harness, admin: FakeUser, command: str) -> int:
    """Send ``command``; returns the preview's message id."""
    await admin.send(command)
    msg = await admin.wait_for(PREVIEW, WAIT)
    return msg.message_id


async def send_pressed(admin: FakeUser, message_id: int) -> None:
    """Press Send and wait until the preview has become the progress message."""
    await admin.press(SEND, message_id=message_id)
    progress = pattern("bc_progress")
    await admin.wait_for(lambda m: m.message_id == message_id
                         and progress.search(m.text) is not None, WAIT)


async def drive(
    h: Harness, broadcast_id: int, stop: Callable[[BroadcastView], bool] | None = None
) -> BroadcastView:
    """Step the clock to each wake-up of the broadcast job until the job is over
    (or ``stop`` says so). Only the job's own sleep moves the clock, so nothing of
    it is on the wire when time moves."""
    idle = 0
    for _ in range(200_000):
        jobs = runner(h)
        if broadcast_id not in jobs.active:
            break
        due = jobs.sleeping.get(broadcast_id)
        if due is None:
            idle += 1
            if idle > 1000 and h.clock.next_wakeup() is not None:  # a limiter wait
                h.clock.set(max(h.clock.next_wakeup() or 0.0, h.clock.now()))
                idle = 0
            await asyncio.sleep(0.002)
            continue
        idle = 0
        if stop is not None:
            view = await h.engine.broadcast(broadcast_id)
            assert view is not None
            if stop(view):
                return view
        h.clock.set(max(due, h.clock.now()))
        while jobs.sleeping.get(broadcast_id) == due:  # until the job has woken  # noqa: ASYNC110
            await asyncio.sleep(0)
    else:
        raise AssertionError("the broadcast never finished")
    await h.settle()
    view = await h.engine.broadcast(broadcast_id)
    assert view is not None
    return view


def broadcast_sends(h: Harness) -> list[Any]:
    return [c for c in h.fake.calls if c.method == "sendMessage"
            and c.params.get("text") == MESSAGE and int(c.params["chat_id"]) != ADMIN]


def max_per_second(times: list[float]) -> int:
    """The most calls in any half-open one-second window [t, t + 1)."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_broadcast_to_1000_users_is_paced_and_counts_a_blocked_user(
    make_harness: HarnessFactory, paced: None
) -> None:
    h = await paced_harness(make_harness)
    ids = await add_users(h, 1000)
    admin = h.user(ADMIN, "Admin")
    await admin.send("/start")
    await admin.wait_for(pattern("welcome"), WAIT)

    message_id = await preview(h, admin, f"/broadcast {MESSAGE}")
    # the message itself first, as users will see it (Telegram parsed the HTML)
    shown = [m for m in admin.bot_messages() if m.text == SHOWN]
    assert len(shown) == 1 and shown[0].entity_texts("bold") == ["news"]
    control = admin.message(message_id)
    assert pattern("bc_preview", count=1001).search(control.text)  # the admin too
    assert control.has_button(button("btn_bc_send", count=1001))
    assert h.fake.calls_to("sendMessage")[-1]["chat_id"] == ADMIN  # nobody else yet

    start = h.clock.now()
    await send_pressed(admin, message_id)
    quitter = h.fake.user(ids[-1])  # reached last: blocks the bot meanwhile
    await quitter.block()
    [job] = [j for j in runner(h).active]
    view = await drive(h, job)

    assert view.state == "done"
    assert (view.recipients, view.delivered, view.blocked, view.failed) == (1001, 1000, 1, 0)
    sends = broadcast_sends(h)
    assert sorted(int(c.params["chat_id"]) for c in sends) == ids  # each once
    assert [c.status for c in sends].count(403) == 1
    # paced: no one-second window of the fake's clock over the limits
    assert max_per_second([c.at for c in sends]) <= 20  # BROADCAST_PER_SECOND
    every = [c.at for c in h.fake.calls if "chat_id" in c.params]
    assert max_per_second(every) <= OVERALL_PER_SECOND
    assert h.clock.now() - start >= 1000 / 20 - 1
    # the blocked user is marked
    assert await h.engine.inspect.repos.users.blocked_at(ids[-1]) is not None  # type: ignore[attr-defined]
    # progress was shown on the way, and the counts at the end
    edits = [c.params["text"] for c in h.fake.calls
             if c.method == "editMessageText" and c.params.get("message_id") == message_id]
    progress = pattern("bc_progress")
    assert sum(1 for e in edits if progress.search(re.sub(r"<[^>]+>", "", e))) >= 5
    final = admin.message(message_id)
    assert pattern("bc_done", done=1001, total=1001).search(final.text), final.text
    assert text("bc_counts", delivered=1000, blocked=1, failed=0) in final.text
    assert not final.buttons

    # writing again unmarks them; the next broadcast reaches them
    await quitter.unblock()
    await quitter.send("/start")
    await quitter.wait_for(pattern("welcome"), WAIT)
    assert await h.engine.inspect.repos.users.blocked_at(ids[-1]) is None  # type: ignore[attr-defined]


async def test_restart_mid_broadcast_resumes_nobody_twice_nobody_missed(
    make_harness: HarnessFactory, paced: None
) -> None:
    h = await paced_harness(make_harness)
    ids = await add_users(h, 90)
    admin = h.user(ADMIN, "Admin")
    message_id = await preview(h, admin, " ".join(["/broadcast", "active", MESSAGE]))
    assert pattern("bc_preview", count=91).search(admin.message(message_id).text)
    await send_pressed(admin, message_id)
    [job] = [j for j in runner(h).active]
    view = await drive(h, job, stop=lambda v: v.processed >= 30)
    assert 30 <= view.processed < 91

    # A crash while one message was on the wire: that row stays 'sending'.
    repos = h.engine.inspect.repos  # type: ignore[attr-defined]
    [in_doubt] = await repos.broadcasts.claim(job, 1, h.clock.now())
    await h.restart_bot()
    assert runner(h).active == {job}
    assert h.app is not None and h.app.job_queue is not None
    assert h.app.job_queue.get_jobs_by_name(f"{JOB_PREFIX}{job}") or runner(h).active
    view = await drive(h, job)

    assert view.state == "done"
    got = sorted(int(c.params["chat_id"]) for c in broadcast_sends(h))
    assert got == [uid for uid in ids if uid != in_doubt]  # each once, none missed
    assert (view.delivered, view.failed, view.blocked) == (90, 1, 0)  # the one in doubt
    assert max_per_second([c.at for c in broadcast_sends(h)]) <= 20


async def test_bad_html_is_refused_before_anyone_gets_it(
    make_harness: HarnessFactory, paced: None
) -> None:
    h = await paced_harness(make_harness)
    await add_users(h, 3)
    admin = h.user(ADMIN, "Admin")
    await admin.send("/broadcast <b>unclosed")
    refusal = await admin.wait_for(pattern("bc_bad_html"), WAIT)
    assert "parse entities" in refusal.text.lower()
    assert not admin.last().buttons
    await admin.send("/broadcast")
    await admin.wait_for(pattern("bc_usage"), WAIT)
    sent_to = {int(c["chat_id"]) for c in h.fake.calls_to("sendMessage")}
    assert sent_to <= {ADMIN}


async def test_cancel_stop_and_not_an_admin(
    make_harness: HarnessFactory, paced: None
) -> None:
    h = await paced_harness(make_harness)
    await add_users(h, 60)
    admin = h.user(ADMIN, "Admin")
    # Cancel: nothing is sent, the buttons go
    message_id = await preview(h, admin, "/broadcast hello")
    await admin.press(button("btn_bc_cancel"), message_id=message_id)
    await admin.wait_for(lambda m: m.message_id == message_id
                         and text("bc_cancelled") in m.text, WAIT)
    # Stop: the rest is not sent
    message_id = await preview(h, admin, f"/broadcast {MESSAGE}")
    await send_pressed(admin, message_id)
    [job] = [j for j in runner(h).active]
    await drive(h, job, stop=lambda v: v.processed >= 20)
    await admin.press(button("btn_bc_stop"), message_id=message_id)
    view = await drive(h, job)
    assert view.state == "stopped" and 20 <= view.processed < 61
    await h.settle()
    assert pattern("bc_stopped").search(admin.message(message_id).text)
    # the admin (user 1000) was the first recipient; nobody past the stop got it
    assert len(broadcast_sends(h)) == view.processed - 1
    await h.advance(60)
    assert len(broadcast_sends(h)) == view.processed - 1
    # a user who is not an admin
    bob = h.user(FIRST_USER, "Bob")
    await bob.send("/broadcast hi all")
    await bob.wait_for(pattern("not_allowed"), WAIT)


async def test_broadcast_messages_go_after_codes_replies_and_edits() -> None:
    """Priority.BULK: a code push (or anything else) queued behind broadcast
    messages is sent before them."""
    pace = VirtualClock()
    limiter = TelegramRateLimiter(VirtualClock(), pace_clock=pace, overall_per_second=1)
    wire = Wire()
    first = request(limiter, wire, "sendMessage", {"chat_id": 9, "text": "warm-up"})
    await spin()
    assert first.done()  # the bucket (1/s) is empty now: the rest queue
    queued = [
        request(limiter, wire, "sendMessage", {"chat_id": 20 + i, "text": f"bulk {i}"}, BULK)
        for i in range(3)
    ]
    await spin()
    queued += [
        request(limiter, wire, "editMessageText",
                {"chat_id": 1, "message_id": 5, "text": "cosmetic"}, COSMETIC),
        request(limiter, wire, "sendMessage", {"chat_id": 3, "text": "code"}, CODE),
    ]
    for _ in range(5):
        pace.advance(1.0)
        await spin()
    assert all(t.done() for t in queued)
    assert [sent for _, sent in wire.sent[1:]] == ["code", "cosmetic", "bulk 0", "bulk 1",
                                                  "bulk 2"]
    await limiter.shutdown()
