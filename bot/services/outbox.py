"""Outbox dispatch: events are written in the transaction of the change they
report (UNIQUE per activation and kind), handed to the subscribed handler at
least once, in order per activation, and acknowledged when the handler returns.

A handler that raises gets the event again later (backoff 5 s doubling to 10
min; after :data:`EVENT_MAX_ATTEMPTS` failures it is logged and dropped), and on
restart; :class:`~bot.services.api.RetryLater` defers it without counting a
failed attempt. An event can be handed over twice only if the process dies
between the handler returning and the acknowledgement (``Event.interrupted``).
Return normally for permanent failures (e.g. the user blocked the bot).

Each event carries a snapshot of the activation at emission time (incl.
``chat_id``/``message_id`` from ``buy`` / ``set_message``):

* ``cancel_available``: at ``purchased_at + cancel lock`` (never before), if the
  number is still waiting and not expiring at that same moment.
* ``code_received``: the code was seen (poll, or a cancel answered CODE_RECEIVED;
  also after the user asked to cancel or the give-up time passed). Final.
* ``expired``: the give-up time passed without a code; the auto-cancel follows
  and ends in ``refunded`` (or ``code_received`` if the code wins the race).
* ``refunded``: cancelled upstream; ``refund_amount`` (operator: returned to the
  user's wallet; own key: DaisySim's refund) and ``refund_reason``
  (``user_cancel`` / ``expired``). Final.
* ``failed``: DaisySim answered Not Found / Invalid for the number (operator: the
  charge goes back to the wallet, ``refund_reason=failed``), or a purchase left in
  doubt was reconciled as *not bought* (``remote_id`` None). Final.
* ``purchased``: a purchase whose outcome was in doubt turned out bought.

User calls that change state (``cancel``) also emit their event, so every view of
the order can be updated; render idempotently.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.services.api import EventHandler, EventKind, RetryLater
from bot.services.events import event_from_row
from bot.services.runtime import Runtime
from bot.services.timers import backoff

__all__ = ["EVENT_MAX_ATTEMPTS", "Outbox"]

logger = logging.getLogger("bot.services")

EVENT_MAX_ATTEMPTS = 20  # then the event is dead-lettered (logged, marked delivered)


class Outbox:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.handler: EventHandler | None = None
        self.ignore_backoff = False  # next dispatch: hand over everything pending now

    def subscribe(self, handler: EventHandler) -> None:
        if self.handler is not None and self.handler is not handler:
            logger.warning("replacing the engine's event handler")
        self.handler = handler
        self.ignore_backoff = True

    async def start(self) -> None:
        """At start-up: re-dispatch undelivered events (a restart is a good time
        to retry, whatever their backoff)."""
        if await self.rt.repos.events.next_attempt() is not None:
            self.rt.events_now()
            self.ignore_backoff = True

    async def dispatch(self, now: float) -> None:
        handler = self.handler
        if handler is None:
            return
        events = self.rt.repos.events
        clock = self.rt.clock
        ignore_backoff, self.ignore_backoff = self.ignore_backoff, False
        blocked: set[int] = set()
        for row in await events.pending():
            if row.activation_id in blocked:
                continue
            due = row.next_attempt_at if row.next_attempt_at is not None else row.created_at
            if due > now and not ignore_backoff:
                blocked.add(row.activation_id)  # keep each activation's events in order
                continue
            # The dispatch is committed before anything may reach the user: if the
            # process dies after it, the redelivery knows (Event.interrupted) and must
            # not repeat it. A code push counts from the moment it goes out
            # (Event.sending, after the flood limiter's wait), other events from the
            # handler's start; either way it is counted once by the end, as before.
            started = _once(events.mark_dispatching, row.id)
            try:
                if row.kind == EventKind.CODE_RECEIVED:
                    event = event_from_row(row, started)
                else:
                    await started()
                    event = event_from_row(row)
                await handler(event)
            except RetryLater as later:
                await started()
                blocked.add(row.activation_id)
                logger.warning("event %d (%s) deferred %.0f s: %s",
                               row.id, row.kind, later.delay, later)
                await events.mark_deferred(
                    row.id, clock.now() + max(later.delay, 0.5), repr(later)
                )
                continue
            except Exception as exc:
                await started()
                attempts = row.attempts + 1
                blocked.add(row.activation_id)
                if attempts >= EVENT_MAX_ATTEMPTS:
                    logger.error(
                        "event %d (%s, activation %d) failed %d times; dropped",
                        row.id, row.kind, row.activation_id, attempts,
                    )
                    await events.mark_failed(row.id, now, repr(exc))
                    await events.mark_delivered(row.id, clock.now())
                else:
                    logger.warning(
                        "event %d (%s) handler failed (%s); retrying",
                        row.id, row.kind, type(exc).__name__,
                    )
                    await events.mark_failed(
                        row.id, now + backoff(attempts, 5.0, 600.0), repr(exc)
                    )
                continue
            await started()
            await events.mark_delivered(row.id, clock.now())
        self.rt.timers.set(("events",), await self._next_due())

    async def _next_due(self) -> float | None:
        """When the next dispatch has work: an event waiting behind an earlier one
        of its activation (in backoff) is due no sooner than that one, else the
        engine would wake at once for it again and again."""
        first: dict[int, float] = {}  # activation -> due of its oldest pending event
        for row in await self.rt.repos.events.pending():
            if row.activation_id not in first:
                due = row.next_attempt_at if row.next_attempt_at is not None else row.created_at
                first[row.activation_id] = due
        return min(first.values(), default=None)


def _once(mark: Callable[[int], Awaitable[None]], event_id: int) -> Callable[[], Awaitable[None]]:
    """``mark(event_id)`` on the first call only (the limiter may send a push twice
    after a short flood pause: still one started delivery)."""
    done = False

    async def sending() -> None:
        nonlocal done
        if not done:
            done = True
            await mark(event_id)

    return sending
