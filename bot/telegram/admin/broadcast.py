"""``/broadcast``: a message from the admins to every user (or the active ones).

``/broadcast <text>`` (everyone) or ``/broadcast active <text>`` (users who wrote,
pressed a button or bought within ``BROADCAST_ACTIVE_DAYS``). The text is HTML as
the admin typed it. The bot first sends it back to the admin exactly as users will
see it — Telegram's own parser is the check: an HTML error (or a text too long)
comes back as Telegram's message and nothing is stored — then a preview with the
recipient count and **Send** / **Cancel**. Send fixes the recipients in the
database and starts the job ``broadcast:<id>`` (:class:`BroadcastRunner`), which
is rebuilt from the database at start-up, so a restart resumes where it stopped
and sends nobody the message twice (each recipient is claimed, committed, before
its message goes out).

Pacing: at most ``BROADCAST_PER_SECOND`` (default 20) messages in any second of
the injected clock, at most ``IN_FLIGHT`` at once, each at :attr:`Priority.BULK`
in the rate limiter (codes, replies and notices go first; a chat under a flood
pause is not waited for: the recipient is retried later). The progress message is
edited every ``PROGRESS_EVERY`` seconds ("312 / 1000", with **Stop**) and ends
with the counts of delivered, blocked and failed. A 403 marks the user as having
blocked the bot (unmarked when they write again); banned and blocked users are
not recipients.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import deque
from typing import TYPE_CHECKING, Literal

from telegram import Message, Update
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.clock import Clock
from bot.services.api import BroadcastView, NotAllowed
from bot.telegram.admin.callbacks import BroadcastCb, broadcast_cb
from bot.telegram.common.handlers import (
    answer,
    edit,
    is_admin,
    is_not_modified,
    lang_of,
    pressed,
    send,
    user_id_of,
    user_lang,
)
from bot.telegram.common.keyboards import button, markup
from bot.telegram.common.views import Screen, notice
from bot.telegram.context import BotContext
from bot.telegram.ratelimit import Outgoing, Priority, retry_after_seconds
from bot.telegram.texts import N_, Raw, label, t

if TYPE_CHECKING:
    from bot.telegram.context import DaisyApp

__all__ = [
    "BULK",
    "IN_FLIGHT",
    "JOB_PREFIX",
    "PROGRESS_EVERY",
    "BroadcastRunner",
    "broadcast_callback",
    "broadcast_command",
    "parse_broadcast",
]

log = logging.getLogger(__name__)

JOB_PREFIX = "broadcast:"
IN_FLIGHT = 10  # messages of one broadcast on the wire at once
PROGRESS_EVERY = 5.0  # clock seconds between progress edits
RETRY_AFTER_CRASH = 30.0  # seconds before a failed job runs again
BULK = Outgoing(priority=Priority.BULK, max_wait=0.0)
_PROGRESS = Outgoing(priority=Priority.COSMETIC, max_wait=0.0)
_FINAL = Outgoing(priority=Priority.NOTICE)
_COMMAND = re.compile(r"\A/broadcast(?:@\w+)?(?=\s|\Z)\s*", re.IGNORECASE)
_ACTIVE = re.compile(r"\Aactive(?:\s+|\Z)", re.IGNORECASE)

Audience = Literal["all", "active"]
Outcome = Literal["delivered", "blocked", "failed", "pending"]


def parse_broadcast(text: str) -> tuple[Audience, str] | None:
    """``/broadcast [active] <text>`` → (audience, the HTML text as typed, its line
    breaks kept), or None when there is no text."""
    found = _COMMAND.match(text)
    if found is None:
        return None
    rest = text[found.end():]
    audience: Audience = "all"
    active = _ACTIVE.match(rest)
    if active is not None:
        audience, rest = "active", rest[active.end():]
    rest = rest.strip()
    return (audience, rest) if rest else None


# ------------------------------------------------------------------ screens
def _audience(lang: str, audience: str, days: float) -> Raw:
    if audience == "active":
        return t(lang, "bc_audience_active", days=f"{days:g}")
    return t(lang, "bc_audience_all")


def _counts(lang: str, view: BroadcastView) -> Raw:
    return t(lang, "bc_counts", delivered=view.delivered, blocked=view.blocked,
             failed=view.failed)


def status_screen(lang: str, view: BroadcastView, days: float) -> Screen:
    """The preview / progress message for the broadcast's state."""
    if view.state == "draft":
        kb = markup([[button(label(lang, "btn_bc_send", count=view.recipients),
                             broadcast_cb("send", view.id)),
                      button(label(lang, "btn_bc_cancel"), broadcast_cb("cancel", view.id))]])
        return Screen(t(lang, "bc_preview", count=view.recipients,
                        audience=_audience(lang, view.audience, days)), kb)
    if view.state == "cancelled":
        return notice(lang, "bc_cancelled")
    if view.state == "running":
        kb = markup([[button(label(lang, "btn_bc_stop"), broadcast_cb("stop", view.id))]])
        return Screen(t(lang, "bc_progress", done=view.processed, total=view.recipients,
                        counts=_counts(lang, view)), kb)
    key = N_("bc_stopped") if view.state == "stopped" else N_("bc_done")
    return Screen(t(lang, key, done=view.processed, total=view.recipients,
                    counts=_counts(lang, view)))


# ------------------------------------------------------------------ handlers
async def broadcast_command(update: Update, context: BotContext) -> None:
    """``/broadcast [active] <text>``: the message as users will see it, then the
    preview with the recipient count and Send / Cancel."""
    lang = lang_of(update, context)
    message = update.message
    if message is None or message.text is None:
        return
    if not is_admin(update, context):
        await send(update, context, notice(lang, "not_allowed"))
        return
    days = context.settings.broadcast_active_days
    parsed = parse_broadcast(message.text)
    if parsed is None:
        await send(update, context, notice(lang, "bc_usage", days=f"{days:g}"))
        return
    audience, text = parsed
    try:  # Telegram's parser is the check: what it refuses, nobody is sent
        await context.bot.send_message(chat_id=message.chat_id, text=text)
    except BadRequest as exc:
        await send(update, context, notice(lang, "bc_bad_html", error=exc.message))
        return
    try:
        view = await context.engine.broadcast_draft(user_id_of(update), audience, text,
                                                    message.chat_id)
    except NotAllowed:
        await send(update, context, notice(lang, "not_allowed"))
        return
    if view.recipients == 0:
        await context.engine.broadcast_cancel(view.admin_id, view.id)
        await send(update, context, notice(lang, "bc_nobody",
                                           audience=_audience(lang, audience, days)))
        return
    await send(update, context, status_screen(lang, view, days))


async def broadcast_callback(update: Update, context: BotContext) -> None:
    """Send / Cancel on the preview, Stop on the progress message."""
    got = await pressed(update, context, BroadcastCb, on_message=True)
    if got is None:
        return
    query, lang, data = got
    await answer(query)
    assert isinstance(query.message, Message)
    engine, admin = context.engine, user_id_of(update)
    try:
        if data.action == "send":
            view = await engine.broadcast_start(admin, data.broadcast_id,
                                                query.message.message_id)
            if view is not None:
                runner = context.bot_data.broadcasts
                if isinstance(runner, BroadcastRunner):
                    runner.launch(view.id)
        elif data.action == "cancel":
            await engine.broadcast_cancel(admin, data.broadcast_id)
        else:
            await engine.broadcast_stop(admin, data.broadcast_id)
    except NotAllowed:
        await edit(query.message, context, notice(lang, "not_allowed"))
        return
    current = await engine.broadcast(data.broadcast_id)
    if current is not None:
        await edit(query.message, context,
                   status_screen(lang, current, context.settings.broadcast_active_days))


# ------------------------------------------------------------------ the job
async def _until(clock: Clock, deadline: float) -> None:
    """Sleep until ``deadline`` of ``clock`` (also if the clock moved meanwhile)."""
    while (left := deadline - clock.now()) > 0:
        await clock.sleep(left)


class BroadcastRunner:
    """Runs each running broadcast as the PTB job ``broadcast:<id>`` (one at a time
    per broadcast), rebuilt from the database by :meth:`resume` at start-up."""

    def __init__(self, application: DaisyApp) -> None:
        self._app = application
        self._active: set[int] = set()
        self._stopping = asyncio.Event()
        # Clock time each broadcast's job sleeps until, while it sleeps (tests step
        # a VirtualClock to it; nothing is on the wire then).
        self.sleeping: dict[int, float] = {}

    @property
    def active(self) -> frozenset[int]:
        return frozenset(self._active)

    async def resume(self) -> None:
        """At start-up: every running broadcast goes on where it stopped."""
        for view in await self._app.bot_data.engine.broadcasts_running():
            self.launch(view.id, resumed=True)

    def launch(self, broadcast_id: int, delay: float = 0.0, *, resumed: bool = False) -> None:
        """Run the job ``broadcast:<id>`` (unless it runs already). ``resumed``: the
        earlier process may have sent in the last second: the job waits one first."""
        job_queue = self._app.job_queue
        if self._stopping.is_set() or broadcast_id in self._active or job_queue is None:
            return
        self._active.add(broadcast_id)
        # misfire_grace_time None: a job that starts late still runs (APScheduler would
        # skip it after 1 s, and _active would keep the broadcast from ever resuming)
        job_queue.run_once(self._job, when=delay, data=(broadcast_id, resumed),
                           name=f"{JOB_PREFIX}{broadcast_id}",
                           job_kwargs={"misfire_grace_time": None})

    def close(self) -> None:
        """Stopping: each job ends after the messages on the wire (the rest resumes
        after the restart). ``Application.stop`` waits for the jobs."""
        self._stopping.set()

    async def _job(self, context: BotContext) -> None:
        assert context.job is not None
        job_data: tuple[int, bool] = context.job.data  # type: ignore[assignment]
        broadcast_id, resumed = job_data
        crashed = False
        try:
            if resumed:
                await self._sleep(broadcast_id, 1.0)
            await self._run(broadcast_id)
        except Exception:
            log.exception("broadcast %d: the job failed; it runs again in %.0f s",
                          broadcast_id, RETRY_AFTER_CRASH)
            crashed = True
        finally:
            self._active.discard(broadcast_id)
            self.sleeping.pop(broadcast_id, None)
        if crashed:
            self.launch(broadcast_id, RETRY_AFTER_CRASH, resumed=True)

    async def _sleep(self, broadcast_id: int, seconds: float) -> None:
        data = self._app.bot_data
        clock = data.clock
        deadline = clock.now() + seconds
        self.sleeping[broadcast_id] = deadline
        sleep = asyncio.ensure_future(_until(clock, deadline))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((sleep, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            stop.cancel()
            self.sleeping.pop(broadcast_id, None)

    async def _run(self, broadcast_id: int) -> None:
        data = self._app.bot_data
        engine, clock, settings = data.engine, data.clock, data.settings
        assert settings is not None
        view = await engine.broadcast(broadcast_id)
        if view is None or view.state != "running":
            return
        rate = settings.broadcast_per_second
        sent: deque[float] = deque()  # clock times of this job's sends, last second
        shown = -math.inf
        while not self._stopping.is_set():
            now = clock.now()
            while sent and sent[0] <= now - 1.0:
                sent.popleft()
            room = rate - len(sent)
            if room <= 0:
                await self._sleep(broadcast_id, sent[0] + 1.0 - now)
                continue
            if now - shown >= PROGRESS_EVERY:
                shown = now
                await self._show(broadcast_id)
            users = await engine.broadcast_claim(broadcast_id, min(room, IN_FLIGHT))
            if not users:
                if await engine.broadcast_finish(broadcast_id) is not None:
                    await self._show(broadcast_id, final=True)
                    return
                current = await engine.broadcast(broadcast_id)
                if current is None or current.state != "running":  # stopped by an admin
                    await self._show(broadcast_id, final=True)
                    return
                await self._sleep(broadcast_id, 1.0)  # recipients wait out a flood pause
                continue
            sent.extend(now for _ in users)
            results = await asyncio.gather(*(self._send(view, uid) for uid in users))
            outcomes = {uid: outcome for uid, (outcome, _) in zip(users, results, strict=True)}
            await engine.broadcast_record(broadcast_id, outcomes)
            pause = max(wait for _, wait in results)
            if pause > 0:
                await self._sleep(broadcast_id, pause)

    async def _send(self, view: BroadcastView, user_id: int) -> tuple[Outcome, float]:
        """Send to one claimed recipient: its outcome, and the flood pause to wait
        (0: none)."""
        try:
            await self._app.bot.send_message(chat_id=user_id, text=view.text,
                                             rate_limit_args=BULK)
        except Forbidden as exc:  # blocked the bot, deactivated, never started it
            log.info("broadcast %d: user %d unreachable (%s)", view.id, user_id, exc.message)
            self._app.bot_data.seen.pop(user_id, None)  # their next message unmarks them
            return "blocked", 0.0
        except RetryAfter as exc:  # not sent: this recipient goes again later
            return "pending", max(1.0, retry_after_seconds(exc))
        except TelegramError as exc:  # refused, or perhaps delivered: never sent twice
            log.warning("broadcast %d: message to user %d failed: %s", view.id, user_id, exc)
            return "failed", 0.0
        return "delivered", 0.0

    async def _show(self, broadcast_id: int, *, final: bool = False) -> None:
        """Edit the progress message to the broadcast's current counts."""
        data = self._app.bot_data
        settings = data.settings
        assert settings is not None
        view = await data.engine.broadcast(broadcast_id)
        if view is None or view.message_id is None:
            return
        lang = await user_lang(data, view.admin_id, settings.default_locale)
        screen = status_screen(lang, view, settings.broadcast_active_days)
        try:
            await self._app.bot.edit_message_text(
                chat_id=view.chat_id, message_id=view.message_id, text=screen.text,
                reply_markup=screen.markup, rate_limit_args=_FINAL if final else _PROGRESS,
            )
        except TelegramError as exc:
            if not is_not_modified(exc):
                log.info("broadcast %d: progress not shown: %s", broadcast_id, exc)
