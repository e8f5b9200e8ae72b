"""Polling: one round per DaisySim account polls its due numbers in batches of
check-all requests within the account's check budget (the plan is the pure
:mod:`bot.services.poller`; concurrent rounds are :mod:`bot.services.rounds`)."""

from __future__ import annotations

import functools
import logging

from bot.daisysim import errors as ds
from bot.domain.activation import ActivationState
from bot.services.cancels import AUTH_RETRY
from bot.services.outcomes import Outcomes
from bot.services.poller import due_slots, split_batches
from bot.services.rounds import Rounds
from bot.services.runtime import Runtime
from bot.services.timers import backoff
from bot.services.tracker import Tracker
from bot.services.tracking import Account

__all__ = ["POLL_CONCURRENCY", "POLL_PATIENCE", "Polling"]

logger = logging.getLogger("bot.services")

POLL_CONCURRENCY = 8  # accounts whose poll rounds run at the same time
POLL_PATIENCE = 2.0  # real s run_due waits for a slow round before leaving it running


class Polling:
    def __init__(self, rt: Runtime, tracker: Tracker, outcomes: Outcomes) -> None:
        self.rt = rt
        self.tracker = tracker
        self.outcomes = outcomes
        self.rounds = Rounds(
            concurrency=POLL_CONCURRENCY, patience=POLL_PATIENCE, on_late_done=rt.notify
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
        if client is None or not acc.slots:
            self.tracker.schedule_poll(acc, now)
            return
        if now < acc.poll_backoff_until:
            self.tracker.schedule_poll(acc, now)
            return
        budget = client.limiter.check
        due = due_slots(acc.slots.values(), now)
        batches = split_batches(due, budget.available())
        if batches:
            # A round cut short by the budget does not space the next one: the
            # rest goes as soon as the budget frees a slot.
            covered = sum(len(b) for b in batches) >= len(due)
            acc.last_round = now if covered else None
        for batch in batches:
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
                    slot.due = polled_at + rt.interval
        self.tracker.schedule_poll(acc, rt.clock.now())
