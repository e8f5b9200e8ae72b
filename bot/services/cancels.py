"""Cancel and expiry: the user's Cancel & refund, the give-up time (auto-cancel),
the unlock event, and the cancel requests (retried until DaisySim answers).

A cancel is first recorded (``cancelling`` / ``expired``), then sent. NOT_FOUND or
ALREADY_CANCELLED for a number we are cancelling means an earlier attempt went
through and its answer was lost: the activation is refunded, once.
"""

from __future__ import annotations

import logging
import math

from bot.daisysim import errors as ds
from bot.domain.activation import CANCELLING_STATES, ActivationState, Step
from bot.services.accounts import Accounts
from bot.services.api import ActivationNotFound, CancelOutcome, EventKind
from bot.services.errors import already_cancelled
from bot.services.outcomes import Outcomes, move
from bot.services.runtime import Runtime
from bot.services.timers import backoff
from bot.services.tracker import Tracker
from bot.services.tracking import Account, Track
from storage.rows import ActivationRow

__all__ = ["AUTH_RETRY", "MIN_RETRY", "Cancels"]

logger = logging.getLogger("bot.services")

AUTH_RETRY = 300.0  # key rejected / account blocked: retry this much later
MIN_RETRY = 0.05

S = ActivationState


class Cancels:
    def __init__(
        self, rt: Runtime, accounts: Accounts, tracker: Tracker, outcomes: Outcomes
    ) -> None:
        self.rt = rt
        self.accounts = accounts
        self.tracker = tracker
        self.outcomes = outcomes

    # ------------------------------------------------------------------ the user
    async def cancel(self, user_id: int, activation_id: int) -> CancelOutcome:
        rt = self.rt
        row = await rt.repos.activations.get_for_user(user_id, activation_id)
        if row is None:
            raise ActivationNotFound("no such activation")
        act = rt.to_activation(row)
        now = rt.clock.now()
        if act.state.is_final:
            return CancelOutcome("already_final", act)
        if row.state in CANCELLING_STATES:
            return CancelOutcome("pending", act)
        if row.state == S.PURCHASING or now < act.cancel_after:
            left = max(1, math.ceil(act.cancel_after - now))
            return CancelOutcome("too_early", act, seconds_left=left)
        acc = await self.accounts.account(row.account_id)
        client = self.accounts.require_client(acc)
        budget = client.limiter.cancel
        retry_at = None if budget.available() > 0 else now + max(budget.wait_time(), MIN_RETRY)
        moved = await move(
            rt.repos, activation_id, Step.CANCEL, next_cancel_at=retry_at or now,
            cancel_attempts=0,
        )
        row2 = await self.tracker.sync(activation_id)
        assert row2 is not None
        if not moved:  # changed meanwhile (e.g. the code just arrived)
            return self._outcome(row2)
        track = rt.tracks.get(activation_id)
        if retry_at is not None or track is None:
            rt.notify()
            return CancelOutcome("pending", rt.to_activation(row2))
        too_early = await self.send(track, acc)
        if too_early is not None:
            wait = too_early
            await move(
                rt.repos, activation_id, Step.CANCEL_TOO_EARLY,
                cancel_after=rt.clock.now() + wait, next_cancel_at=None,
            )
            row3 = await self.tracker.sync(activation_id)
            assert row3 is not None
            rt.notify()
            return CancelOutcome("too_early", rt.to_activation(row3), seconds_left=wait)
        rt.notify()
        final = await rt.repos.activations.get(activation_id)
        assert final is not None
        return self._outcome(final)

    def _outcome(self, row: ActivationRow) -> CancelOutcome:
        act = self.rt.to_activation(row)
        if row.state == S.REFUNDED:
            return CancelOutcome("refunded", act, refund=row.refund_amount)
        if row.state == S.COMPLETED:
            return CancelOutcome("code_received", act)
        if row.state == S.FAILED:
            return CancelOutcome("already_final", act)
        return CancelOutcome("pending", act)

    # ------------------------------------------------------------------ expiry, unlock
    async def waiting_due(self, track: Track, now: float) -> None:
        """A waiting number's timer: the give-up time (expire, auto-cancel), or
        the end of the cancel lock (the ``cancel_available`` event)."""
        rt = self.rt
        if now >= track.expires_at:
            async with rt.db.transaction():
                done = await move(rt.repos, track.id, Step.EXPIRE, next_cancel_at=now)
                if done:
                    await rt.emit(track.id, EventKind.EXPIRED)
            if done:
                logger.info("activation %d: give-up time reached, cancelling", track.id)
                rt.events_now()
            await self.tracker.sync(track.id)
            return
        if not track.unlock_emitted and now >= track.cancel_after:
            async with rt.db.transaction():
                done = await rt.repos.activations.update(
                    track.id, only_states=[S.WAITING], cancel_available_emitted=True
                )
                if done:
                    await rt.emit(track.id, EventKind.CANCEL_AVAILABLE)
            if done:
                rt.events_now()
            await self.tracker.sync(track.id)

    # ------------------------------------------------------------------ sending
    async def run(self, tracks: list[Track], now: float) -> None:
        """Send the cancels that are due, per account within its cancel budget."""
        rt = self.rt
        by_account: dict[int, list[Track]] = {}
        for track in tracks:
            by_account.setdefault(track.account_id, []).append(track)
        for account_id, group in by_account.items():
            # User cancels first, then auto-cancels, oldest request first.
            group.sort(
                key=lambda t: (t.state != S.CANCELLING, t.next_cancel_at or 0.0, t.id)
            )
            acc = await self.accounts.account(account_id)
            if acc.client is None:
                for track in group:
                    track.next_cancel_at = now + AUTH_RETRY
                    self.tracker.schedule_act(track)
                continue
            budget = acc.client.limiter.cancel
            for index, track in enumerate(group):
                if (
                    track.id not in rt.tracks
                    or track.state not in CANCELLING_STATES
                    or track.id in rt.cancel_inflight  # its finally reschedules it
                ):
                    continue
                if track.next_cancel_at is not None and track.next_cancel_at > now:
                    self.tracker.schedule_act(track)
                    continue
                if budget.available() <= 0:
                    retry = now + max(budget.wait_time(), MIN_RETRY)
                    for later in group[index:]:
                        if later.id in rt.tracks:
                            later.next_cancel_at = max(later.next_cancel_at or 0.0, retry)
                            self.tracker.schedule_act(later)
                    break
                try:
                    await self.send(track, acc)
                except Exception:
                    logger.exception("activation %d: cancel failed", track.id)
                    await self._retry(track, rt.clock.now() + 30.0, count=True)

    async def _retry(self, track: Track, when: float, *, count: bool) -> None:
        attempts = track.cancel_attempts + (1 if count else 0)
        await self.rt.repos.activations.update(
            track.id, only_states=CANCELLING_STATES, next_cancel_at=when,
            cancel_attempts=attempts,
        )
        await self.tracker.sync(track.id)

    async def send(self, track: Track, acc: Account) -> int | None:
        """One cancel request for an activation in cancelling/expired. Returns
        the seconds DaisySim says the cancel lock still has (TOO_EARLY), else None
        (refunded, code received, or to be retried: the row says which)."""
        rt = self.rt
        client = self.accounts.require_client(acc)
        assert track.remote_id is not None
        rt.cancel_inflight.add(track.id)
        rt.timers.set(("act", track.id), None)
        try:
            try:
                result = await client.cancel(track.remote_id)
            except ds.CodeReceived as err:
                if err.code_value:
                    await self.outcomes.complete(track.id, err.code_value)
                    return None
                # No code in the answer: poll it now, retry the cancel later.
                slot = acc.slots.get(track.id)
                if slot is not None:
                    slot.due = rt.clock.now()
                    self.tracker.schedule_poll(acc, rt.clock.now())
                await self._retry(track, rt.clock.now() + rt.interval, count=True)
                return None
            except ds.TooEarly as err:
                seconds = max(1, int(err.seconds_left) if err.seconds_left else 5)
                await self._retry(track, rt.clock.now() + seconds, count=False)
                return seconds
            except ds.RateLimited as err:
                wait = float(err.retry_after or 60.0)
                await self._retry(track, rt.clock.now() + wait, count=False)
                return None
            except (ds.Unauthenticated, ds.AccountSuspended, ds.AccountLocked) as err:
                logger.warning("activation %d: cancel refused (%s)", track.id, type(err).__name__)
                await self._retry(track, rt.clock.now() + AUTH_RETRY, count=True)
                return None
            except ds.DaisySimError as err:
                if already_cancelled(err):
                    logger.warning(
                        "activation %d: cancel answered %s: already cancelled upstream",
                        track.id, err.code or type(err).__name__,
                    )
                    await self.outcomes.refunded(track.id, None)
                    return None
                attempts = track.cancel_attempts + 1
                logger.info(
                    "activation %d: cancel attempt %d failed (%s), will retry",
                    track.id, attempts, type(err).__name__,
                )
                await self._retry(
                    track, rt.clock.now() + backoff(attempts, 5.0, 120.0), count=True
                )
                return None
            await self.outcomes.refunded(track.id, result.refund)
            return None
        finally:
            rt.cancel_inflight.discard(track.id)
            if track.id in rt.tracks:
                self.tracker.schedule_act(rt.tracks[track.id])
