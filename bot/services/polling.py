"""Polling: one round per DaisySim account polls its numbers in batches of
check-all requests within the account's check budget: the fresh rounds every
interval, and (adaptive polling) spare polls with the budget they leave over.
The plan is the pure :mod:`bot.services.poller`; rounds of different accounts
run concurrently, at most ``POLL_CONCURRENCY`` at once (:mod:`bot.services.rounds`).
Spare polls only use idle capacity: none while rounds queue for a slot, and at
most ``POLL_SPARE_PER_SECOND`` across all accounts."""

from __future__ import annotations

import functools
import logging
import math

from bot.clock import Clock
from bot.daisysim import errors as ds
from bot.daisysim.limits import Budget
from bot.domain.activation import ActivationState
from bot.services.cancels import AUTH_RETRY
from bot.services.outcomes import Outcomes
from bot.services.poller import (
    BATCH,
    CHECK_RESERVE,
    PollSlot,
    compose,
    due_slots,
    fill_order,
    split_batches,
)
from bot.services.rounds import Rounds
from bot.services.runtime import Runtime
from bot.services.timers import backoff
from bot.services.tracker import Tracker
from bot.services.tracking import Account

__all__ = ["POLL_PATIENCE", "Polling"]

logger = logging.getLogger("bot.services")

POLL_PATIENCE = 2.0  # real s run_due waits for a slow round before leaving it running


def spare_budget(rate: float, clock: Clock) -> Budget:
    """At most ``rate`` spare polls per second (fractional rates: 1 per 1/rate s)."""
    if rate >= 1.0:
        return Budget("spare-polls", round(rate), clock, window=1.0)
    return Budget("spare-polls", 1, clock, window=1.0 / rate)


class Polling:
    def __init__(self, rt: Runtime, tracker: Tracker, outcomes: Outcomes) -> None:
        self.rt = rt
        self.tracker = tracker
        self.outcomes = outcomes
        settings = rt.settings
        self.adaptive = bool(settings.poll_adaptive)
        self.min_gap = float(settings.poll_min_gap_seconds)
        self.spare_rate = float(settings.poll_spare_per_second)
        self.spare = spare_budget(self.spare_rate, rt.clock)
        self.rounds = Rounds(
            concurrency=int(settings.poll_concurrency), patience=POLL_PATIENCE,
            on_late_done=rt.notify,
        )

    async def run(self, account_ids: list[int], now: float) -> None:
        """Poll rounds of these accounts, concurrently: one slow account never
        holds up the others."""
        accounts = (self.rt.accounts.get(a) for a in account_ids)
        await self.rounds.run({
            acc.id: functools.partial(self._guarded, acc, now)
            for acc in accounts if acc is not None
        })

    async def close(self) -> None:
        await self.rounds.close()

    async def _guarded(self, acc: Account, now: float) -> None:
        try:
            await self.round(acc, now)
        except Exception:
            logger.exception("account %d: poll round failed", acc.id)
            acc.poll_backoff_until = now + 30.0
            self.tracker.schedule_poll(acc, now)

    async def round(self, acc: Account, now: float) -> None:
        rt = self.rt
        client = acc.client
        if client is None or not acc.slots or now < acc.poll_backoff_until:
            self.tracker.schedule_poll(acc, now)
            return
        now = max(now, rt.clock.now())  # the round may have waited for a slot
        batches = self._plan(acc, client.limiter.check, now)
        for batch in batches:
            sent_at = rt.clock.now()
            try:
                results = await client.check_all([slot.remote_id for slot in batch])
            except ds.RateLimited as err:
                acc.poll_backoff_until = rt.clock.now() + float(err.retry_after or 60.0)
                logger.warning("account %d: check rate limited upstream", acc.id)
                break
            except (ds.Unauthenticated, ds.AccountSuspended, ds.AccountLocked) as err:
                acc.poll_backoff_until = rt.clock.now() + AUTH_RETRY
                logger.warning("account %d: polling refused (%s)", acc.id, type(err).__name__)
                break
            except ds.DaisySimError as err:
                acc.poll_failures += 1
                acc.poll_backoff_until = rt.clock.now() + backoff(acc.poll_failures, 5.0, 120.0)
                logger.info("account %d: poll failed (%s)", acc.id, type(err).__name__)
                break
            acc.poll_failures = 0
            polled_at = rt.clock.now()
            by_remote = {slot.remote_id: slot for slot in batch}
            for result in results:
                slot = by_remote.get(result.activation_id)
                if slot is None:
                    continue
                track = rt.tracks.get(slot.activation_id)
                if track is None:
                    continue
                if result.completed:
                    assert result.code is not None
                    await self.outcomes.complete(track.id, result.code)
                elif result.unresolvable:
                    if track.state == ActivationState.WAITING:
                        await self.outcomes.fail_unresolvable(track.id, result.status)
                    else:
                        track.poll_stopped = True  # the pending cancel resolves it
                        acc.slots.pop(track.id, None)
                else:
                    # Only a fresh answer restarts the interval: a Waiting sent before
                    # ``due`` may have come from the id's cache (cache-bound reading).
                    if slot.fresh(sent_at):
                        slot.due = polled_at + rt.interval
                    slot.last_poll = sent_at
        self.tracker.schedule_poll(acc, rt.clock.now())

    def _plan(self, acc: Account, budget: Budget, now: float) -> list[list[PollSlot]]:
        """The batches this round sends: a fresh round when one is due, else at
        most one spare poll (adaptive polling) when the budget and the global
        spare rate allow it."""
        slots = acc.slots.values()
        due = due_slots(slots, now)
        fresh_at = self.tracker.fresh_round_time(acc, now)
        if due and fresh_at is not None and fresh_at <= now:
            count = min(budget.available(), math.ceil(len(due) / BATCH))
            if count <= 0:
                return []
            # A round cut short by the budget does not space the next one: the
            # rest goes as soon as the budget frees a slot.
            acc.last_round = now if count * BATCH >= len(due) else None
            if not self.adaptive:
                return split_batches(due, count)
            return compose(due, fill_order(slots, now, min_gap=self.min_gap), count)
        spare_at = self.tracker.spare_poll_time(acc, now)
        reserve = min(CHECK_RESERVE, budget.limit - 1)
        if spare_at is None or spare_at > now or budget.available() <= reserve:
            return []
        if self.rounds.queued > 0 or not self.spare.try_acquire():
            # The transport or the global spare rate is busy: this account's
            # turn comes again once the others had theirs.
            spread = len(self.rt.accounts) / self.spare_rate
            acc.extra_not_before = now + max(self.min_gap, spread)
            return []
        batches = compose(due, fill_order(slots, now, min_gap=self.min_gap), 1)
        if batches:
            acc.last_extra = now
        else:  # nothing worth a spare poll right now
            acc.extra_not_before = now + self.min_gap
        return batches
