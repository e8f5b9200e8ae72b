"""Outgoing flood control for the Bot API: a per-chat, prioritised rate limiter.

PTB's ``AIORateLimiter`` halts *every* chat while any one request waits out a
``retry_after``, serves waiters first come first served, sleeps inside the caller
for ``retry_after`` × retries, and logs an exhausted retry at ERROR with a
traceback. Under a 429 storm on one chat that stopped code delivery for everyone
(the outbox hands events over one at a time) and held shutdown for longer than
Docker waits. This limiter (a :class:`~telegram.ext.BaseRateLimiter`) does:

* **Pacing** at Telegram's documented limits, as token buckets (pyrate-limiter's
  :class:`~pyrate_limiter.TokenBucket`, on a monotonic clock): 30 requests/s to
  all chats together; per private chat 1/s with bursts of ``PRIVATE_BURST``; per
  group or channel 20 per minute. Requests without a ``chat_id``
  (answerCallbackQuery, getUpdates, setMyCommands…) are not message-limited and
  bypass the queue.
* **Flood pauses** on the injected :class:`~bot.clock.Clock`: a 429 on a request
  to chat C pauses chat C for its ``retry_after``, and nothing else. 429s from
  ``GLOBAL_FLOOD_CHATS`` different chats within ``GLOBAL_FLOOD_WINDOW`` seconds
  are a global flood: every chat pauses.
* **Order**: a waiting request is granted by priority (:class:`Priority`: code
  pushes, then replies to users, then notices, then cosmetic edits, then broadcast
  messages), then by how
  much its chat has sent lately (a count decaying over ``FAIRNESS_SECONDS``: a new
  user's first reply goes ahead of a busy chat's), then by arrival.
* **Superseded edits**: a queued :attr:`Priority.COSMETIC` edit of a message is
  dropped (the caller gets ``True``, as for an edit nobody will see) when a newer
  ``editMessageText`` of the same message arrives.
* **max_wait** (:class:`Outgoing`): a request whose chat is paused for longer is
  not queued but fails at once with :class:`~telegram.error.RetryAfter` (the
  outbox uses 0: the engine hands the event over again when the pause ends,
  instead of every other chat's events waiting behind it).
* **max_queue** (:class:`Outgoing`): a request still not granted after that many
  seconds of pacing (its chat busy with higher-priority sends) fails with
  ``RetryAfter(1)``: the outbox hands such an event back instead of holding every
  other chat's events (and the engine's next tick) behind one busy chat.
* **Retries**: each 429 is one WARNING line; the request goes back into the queue
  behind the pause, at most ``max_retries`` times, then RetryAfter is raised.
* **Stopping** (:meth:`begin_stopping`): nothing waits for a pause any more, and
  nothing waits longer than the grace period for pacing: waiting requests fail
  with RetryAfter (the outbox redelivers them after the restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum
from typing import Any

from pyrate_limiter import Rate, TokenBucket
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.clock import Clock, SystemClock

__all__ = [
    "GLOBAL_FLOOD_CHATS",
    "GLOBAL_FLOOD_WINDOW",
    "Outgoing",
    "Priority",
    "TelegramRateLimiter",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

OVERALL_PER_SECOND = 30  # Telegram: about 30 messages per second to different chats
PRIVATE_BURST = 20  # one chat: 1 message/s, short bursts tolerated
GROUP_PER_MINUTE = 20  # one group or channel: 20 messages per minute
GLOBAL_FLOOD_CHATS = 3
GLOBAL_FLOOD_WINDOW = 1.0  # seconds (clock time)
DEFAULT_MAX_WAIT = 60.0  # seconds a caller may wait for its chat's flood pause
STOP_GRACE = 1.5  # seconds queued requests may still wait for pacing once stopping
FAIRNESS_SECONDS = 30.0  # how long a chat's sends count against it in the queue order
_EDITS = frozenset({"editMessageText", "editMessageReplyMarkup"})
_JSON = bool | dict[str, Any] | list[dict[str, Any]]


class Priority(IntEnum):
    CODE = 0  # a code push (and an order update that stands in for one)
    REPLY = 1  # the answer to a user's own action (the default)
    NOTICE = 2  # an outbox notice (refund, failure)
    COSMETIC = 3  # an order-message re-render from the outbox (supersedable)
    BULK = 4  # a broadcast message: after everything else (h-admin, issue 13)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """``rate_limit_args`` of a Bot API call."""

    priority: Priority = Priority.REPLY
    max_wait: float = DEFAULT_MAX_WAIT
    # Seconds (pace clock) the request may wait in the queue for pacing; then
    # RetryAfter(1). Unbounded by default: a user's reply waits its turn.
    max_queue: float = math.inf
    # Awaited right before the request goes out (after the limiter let it through):
    # the code push records there that it may have reached Telegram (issue 14).
    on_send: Callable[[], Awaitable[None]] | None = None


DEFAULT = Outgoing()


def retry_after_seconds(exc: RetryAfter) -> float:
    """``exc.retry_after`` in seconds (int or timedelta, without PTB's deprecation
    warning for reading it as int)."""
    value = getattr(exc, "_retry_after", None)
    if isinstance(value, timedelta):
        return value.total_seconds()
    raw = exc.retry_after
    return raw.total_seconds() if isinstance(raw, timedelta) else float(raw)


class _MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class _Pace:
    """One token bucket (pyrate-limiter's TokenBucket algorithm; its state is a tuple)."""

    _algorithm = TokenBucket()

    def __init__(self, rate: Rate) -> None:
        self._rates = [rate]
        self._state = self._algorithm.initial(self._rates)

    def wait(self, now_ms: int) -> float:
        """Seconds until one unit is free (0.0: now); takes nothing."""
        _, decision = self._algorithm.step(self._rates, self._state, now_ms, 1)
        if decision.allowed:
            return 0.0
        return max(0.001, (decision.retry_after_ms or 1) / 1000.0)

    def take(self, now_ms: int) -> None:
        self._state, _ = self._algorithm.step(self._rates, self._state, now_ms, 1)

    def used(self, now_ms: int) -> int:
        return self._algorithm.consumed(self._rates, self._state, now_ms)


@dataclass
class _Chat:
    pace: _Pace
    paused_until: float = 0.0  # clock time
    waiting: int = 0
    score: float = 0.0  # recent sends, decaying with FAIRNESS_SECONDS (pace clock)
    scored_at: float = 0.0

    def load(self, now: float) -> float:
        if not self.score:
            return 0.0
        return self.score * math.exp(-(now - self.scored_at) / FAIRNESS_SECONDS)

    def sent(self, now: float) -> None:
        self.score = self.load(now) + 1.0
        self.scored_at = now


@dataclass(eq=False)
class _Ticket:
    priority: int
    seq: int
    chat_key: int | str
    chat: _Chat
    max_wait: float
    future: asyncio.Future[bool]  # True: go; False: superseded (drop)
    edit_key: tuple[int | str, int] | None = None
    give_up_at: float = math.inf  # pace clock: not granted by then -> RetryAfter(1)


class TelegramRateLimiter(BaseRateLimiter[Outgoing]):
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        max_retries: int = 3,
        pace_clock: Clock | None = None,
        overall_per_second: int = OVERALL_PER_SECOND,
        private_burst: int = PRIVATE_BURST,
        group_per_minute: int = GROUP_PER_MINUTE,
    ) -> None:
        """``clock``: flood pauses (``retry_after``) run on it (tests: a VirtualClock);
        ``pace_clock``: the token buckets (default: monotonic wall time)."""
        self._clock: Clock = clock or SystemClock()
        self._pace_clock: Clock = pace_clock or _MonotonicClock()
        self._max_retries = max_retries
        self._overall = _Pace(Rate(overall_per_second, 1000))
        self._private_rate = Rate(1, 1000, burst=private_burst)
        self._group_rate = Rate(group_per_minute, 60_000)
        self._chats: dict[int | str, _Chat] = {}
        self._waiting: list[_Ticket] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._global_until = 0.0  # clock time
        self._floods: deque[tuple[float, int | str]] = deque()  # recent 429s (clock, chat)
        self._stop_deadline: float | None = None  # pace-clock time
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------ lifecycle
    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        self.begin_stopping(0.0)
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def begin_stopping(self, grace: float = STOP_GRACE) -> None:
        """From now on nothing waits for a flood pause, and queued requests wait at
        most ``grace`` seconds for pacing; the rest fail with RetryAfter."""
        deadline = self._pace_clock.now() + max(0.0, grace)
        if self._stop_deadline is None or deadline < self._stop_deadline:
            self._stop_deadline = deadline
        self._stopped.set()
        self._changed.set()

    @property
    def stopping(self) -> bool:
        return self._stop_deadline is not None

    # ------------------------------------------------------------ state
    def paused_for(self, chat_id: int | str | None = None) -> float:
        """Seconds (clock time) ``chat_id`` (None: every chat) is paused from now."""
        until = self._global_until
        if chat_id is not None:
            chat = self._chats.get(_chat_key(chat_id))
            if chat is not None:
                until = max(until, chat.paused_until)
        return max(0.0, until - self._clock.now())

    def _chat(self, key: int | str) -> _Chat:
        chat = self._chats.get(key)
        if chat is None:
            if len(self._chats) > 4096:
                self._forget_idle_chats()
            group = isinstance(key, str) or key < 0
            chat = _Chat(_Pace(self._group_rate if group else self._private_rate))
            self._chats[key] = chat
        return chat

    def _forget_idle_chats(self) -> None:
        now, pace_now = self._clock.now(), self._pace_clock.now()
        now_ms = round(pace_now * 1000)
        for key, chat in list(self._chats.items()):
            if (not chat.waiting and chat.paused_until <= now and chat.pace.used(now_ms) == 0
                    and chat.load(pace_now) < 0.05):
                del self._chats[key]

    def _pace_ms(self) -> int:
        return round(self._pace_clock.now() * 1000)

    def _record_flood(self, key: int | str, seconds: float) -> bool:
        """A 429 for chat ``key``: pause it; True if it made a global flood."""
        now = self._clock.now()
        chat = self._chat(key)
        chat.paused_until = max(chat.paused_until, now + seconds)
        recent = self._floods
        recent.append((now, key))
        while recent and recent[0][0] < now - GLOBAL_FLOOD_WINDOW:
            recent.popleft()
        if len({k for _, k in recent}) >= GLOBAL_FLOOD_CHATS:
            recent.clear()
            self._global_until = max(self._global_until, now + seconds)
            log.warning("Telegram flood control on several chats at once: every chat "
                        "pauses for %.0f s", seconds)
            return True
        return False

    # ------------------------------------------------------------ requests
    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, _JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Outgoing | None,
    ) -> _JSON:
        options = rate_limit_args or DEFAULT
        raw_chat = data.get("chat_id")
        if raw_chat is None or endpoint == "getUpdates":
            return await self._unqueued(callback, args, kwargs, endpoint, options)
        key = _chat_key(raw_chat)
        edit_key = None
        if endpoint in _EDITS and data.get("message_id") is not None:
            with contextlib.suppress(TypeError, ValueError):
                edit_key = (key, int(data["message_id"]))
        for attempt in range(self._max_retries + 1):
            if not await self._admit(key, options, endpoint, edit_key):
                log.debug("%s to chat %s superseded by a newer edit: dropped", endpoint, key)
                return True
            try:
                if options.on_send is not None:
                    await options.on_send()
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc)
                self._record_flood(key, seconds)
                self._changed.set()
                if attempt >= self._max_retries or seconds > options.max_wait or self.stopping:
                    log.warning("Telegram flood control: %s to chat %s not sent (retry after "
                                "%.0f s; %d attempt(s))", endpoint, key, seconds, attempt + 1)
                    raise
                log.warning("Telegram flood control: %s to chat %s waits %.0f s (retry %d of %d)",
                            endpoint, key, seconds, attempt + 1, self._max_retries)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _unqueued(
        self,
        callback: Callable[..., Coroutine[Any, Any, _JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        options: Outgoing,
    ) -> _JSON:
        """Not message-limited (no chat): straight through; a 429 is waited out
        (clock time) up to ``max_retries`` times unless it exceeds ``max_wait``."""
        retries = 0 if endpoint == "getUpdates" else self._max_retries  # PTB's poller retries
        for attempt in range(retries + 1):
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc)
                if attempt >= retries or seconds > options.max_wait or self.stopping:
                    log.warning("Telegram flood control: %s not sent (retry after %.0f s)",
                                endpoint, seconds)
                    raise
                log.warning("Telegram flood control: %s waits %.0f s (retry %d of %d)",
                            endpoint, seconds, attempt + 1, retries)
                sleep = asyncio.ensure_future(self._clock.sleep(seconds))
                stop = asyncio.ensure_future(self._stopped.wait())
                try:
                    await asyncio.wait((sleep, stop), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleep.cancel()
                    stop.cancel()
                if self.stopping:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _admit(
        self, key: int | str, options: Outgoing, endpoint: str,
        edit_key: tuple[int | str, int] | None,
    ) -> bool:
        """Wait for this request's turn: True to send, False if superseded. Raises
        RetryAfter when the chat's pause is longer than ``max_wait`` (or stopping)."""
        chat = self._chat(key)
        paused = self.paused_for(key)
        if paused > 0 and (paused > options.max_wait or self.stopping):
            raise RetryAfter(max(1, math.ceil(paused)))
        if edit_key is not None and endpoint == "editMessageText":
            for older in self._waiting:
                if (older.edit_key == edit_key and older.priority == Priority.COSMETIC
                        and not older.future.done()):
                    older.future.set_result(False)
        ticket = _Ticket(
            int(options.priority), next(self._seq), key, chat, options.max_wait,
            asyncio.get_running_loop().create_future(), edit_key,
            self._pace_clock.now() + options.max_queue,
        )
        self._waiting.append(ticket)
        chat.waiting += 1
        self._changed.set()
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.get_running_loop().create_task(
                self._pump(), name="telegram-rate-limiter"
            )
        try:
            return await ticket.future
        finally:
            chat.waiting -= 1
            if not ticket.future.done():  # the caller was cancelled
                ticket.future.cancel()

    # ------------------------------------------------------------ the pump
    async def _pump(self) -> None:
        while self._waiting:
            self._changed.clear()
            clock_wait, pace_wait = self._grant()
            if not self._waiting:
                break
            if self._stop_deadline is not None:
                pace_wait = min(pace_wait, max(0.0, self._stop_deadline - self._pace_clock.now()))
            await self._sleep(clock_wait, pace_wait)

    def _grant(self) -> tuple[float, float]:
        """Grant every request that may go now, best first; fail those that may no
        longer wait. Returns how long (clock s, pace s) until something may change."""
        now = self._clock.now()
        pace_now = self._pace_clock.now()
        now_ms = round(pace_now * 1000)
        deadline_passed = self._stop_deadline is not None and pace_now >= self._stop_deadline
        clock_wait = pace_wait = math.inf
        while True:
            best: _Ticket | None = None
            best_rank: tuple[int, float, int] | None = None
            keep: list[_Ticket] = []
            for t in self._waiting:
                if t.future.done():
                    continue
                paused = max(t.chat.paused_until, self._global_until) - now
                if paused > 0 and (paused > t.max_wait or self.stopping):
                    t.future.set_exception(RetryAfter(max(1, math.ceil(paused))))
                    continue
                if deadline_passed or pace_now >= t.give_up_at:
                    t.future.set_exception(RetryAfter(1))
                    continue
                keep.append(t)
                if math.isfinite(t.give_up_at):
                    pace_wait = min(pace_wait, t.give_up_at - pace_now)
                if paused > 0:
                    clock_wait = min(clock_wait, paused)
                    continue
                chat_wait = t.chat.pace.wait(now_ms)
                if chat_wait > 0:
                    pace_wait = min(pace_wait, chat_wait)
                    continue
                rank = (t.priority, t.chat.load(pace_now), t.seq)
                if best_rank is None or rank < best_rank:
                    best, best_rank = t, rank
            self._waiting = keep
            if best is None:
                return clock_wait, pace_wait
            overall_wait = self._overall.wait(now_ms)
            if overall_wait > 0:
                return clock_wait, min(pace_wait, overall_wait)
            self._overall.take(now_ms)
            best.chat.pace.take(now_ms)
            best.chat.sent(pace_now)
            best.future.set_result(True)
            self._waiting.remove(best)

    async def _sleep(self, clock_wait: float, pace_wait: float) -> None:
        waits: list[asyncio.Task[Any]] = [asyncio.ensure_future(self._changed.wait())]
        if math.isfinite(clock_wait):
            waits.append(asyncio.ensure_future(self._clock.sleep(clock_wait)))
        if math.isfinite(pace_wait):
            waits.append(asyncio.ensure_future(self._pace_clock.sleep(pace_wait)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


def _chat_key(raw: object) -> int | str:
    try:
        return int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return str(raw)  # @channelusername
