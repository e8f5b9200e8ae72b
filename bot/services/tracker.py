"""Keeps the in-memory tracking (:mod:`bot.services.tracking`) in step with the
database: builds a track from its row, puts its poll slot and timers in place,
and refreshes it after every change."""

from __future__ import annotations

from bot.daisysim.limits import Budget
from bot.domain.activation import CANCELLING_STATES, POLLABLE_STATES, ActivationState
from bot.services.accounts import Accounts
from bot.services.poller import (
    CHECK_RESERVE,
    PollSlot,
    extra_gap,
    next_extra_time,
    next_round_time,
    round_gap,
)
from bot.services.runtime import Runtime
from bot.services.tracking import Account, Track
from storage.rows import ActivationRow

__all__ = ["Tracker"]

S = ActivationState


class Tracker:
    def __init__(self, rt: Runtime, accounts: Accounts) -> None:
        self.rt = rt
        self.accounts = accounts

    def first_poll(self, row: ActivationRow) -> float:
        base = row.purchased_at if row.purchased_at is not None else row.purchase_sent_at
        return base + self.rt.interval

    def track_from_row(self, row: ActivationRow) -> Track:
        act = self.rt.to_activation(row)
        return Track(
            id=row.id,
            user_id=row.user_id,
            account_id=row.account_id,
            remote_id=row.remote_id,
            state=S(row.state),
            purchase_sent_at=row.purchase_sent_at,
            cancel_after=act.cancel_after,
            expires_at=act.expires_at,
            unlock_emitted=row.cancel_available_emitted,
            next_cancel_at=row.next_cancel_at,
            cancel_attempts=row.cancel_attempts,
        )

    def new_purchase(self, activation_id: int, user_id: int, account_id: int) -> Track:
        """The track of a purchase about to be sent (row just written)."""
        now = self.rt.clock.now()
        track = Track(
            id=activation_id, user_id=user_id, account_id=account_id, remote_id=None,
            state=S.PURCHASING, purchase_sent_at=now, cancel_after=now + self.rt.cancel_lock,
            expires_at=now + self.rt.give_up, unlock_emitted=False, next_cancel_at=None,
            cancel_attempts=0,
        )
        self.rt.tracks[activation_id] = track
        return track

    async def place(self, track: Track, now: float, *, first_poll: float) -> None:
        """Put a track's poll slot and timers in place (after a load or a change)."""
        acc = await self.accounts.account(track.account_id)
        pollable = track.state in POLLABLE_STATES and track.remote_id is not None
        if pollable and not track.poll_stopped:
            if track.id not in acc.slots:
                assert track.remote_id is not None
                acc.slots[track.id] = PollSlot(
                    track.id, track.remote_id, first_poll, born=track.purchase_sent_at
                )
        else:
            acc.slots.pop(track.id, None)
        self.schedule_poll(acc, now)
        self.schedule_act(track)

    def schedule_act(self, track: Track) -> None:
        when: float | None = None
        if track.id in self.rt.cancel_inflight:
            when = None
        elif track.state == S.PURCHASING:
            when = track.reconcile_at
        elif track.state == S.WAITING:
            when = track.expires_at
            if not track.unlock_emitted:
                when = min(when, track.cancel_after)
        elif track.state in CANCELLING_STATES:
            when = (
                track.next_cancel_at if track.next_cancel_at is not None
                else self.rt.clock.now()
            )
        self.rt.timers.set(("act", track.id), when)

    def schedule_poll(self, acc: Account, now: float) -> None:
        """The account's poll timer: its next fresh round or spare poll."""
        if acc.client is None or not acc.slots:
            self.rt.timers.set(("poll", acc.id), None)
            return
        when = self.fresh_round_time(acc, now, budget_wait=True)
        spare = self.spare_poll_time(acc, now)
        if spare is not None and (when is None or spare < when):
            when = spare
        self.rt.timers.set(("poll", acc.id), when)

    def fresh_round_time(self, acc: Account, now: float, *, budget_wait: bool = False
                         ) -> float | None:
        """When the account's next fresh round is due (``budget_wait``: not before
        the budget has a request free)."""
        assert acc.client is not None
        budget = acc.client.limiter.check
        return next_round_time(
            acc.slots.values(),
            last_round=acc.last_round,
            gap=round_gap(len(acc.slots), self.rt.interval, budget.limit),
            now=now,
            budget_wait=budget.wait_time() if budget_wait and budget.available() <= 0 else 0.0,
            backoff_until=acc.poll_backoff_until,
        )

    def spare_poll_time(self, acc: Account, now: float) -> float | None:
        """When the account's next spare poll may go (None: adaptive polling is
        off, or the fresh rounds need the whole budget)."""
        settings = self.rt.settings
        if not settings.poll_adaptive or acc.client is None:
            return None
        budget: Budget = acc.client.limiter.check
        reserve = min(CHECK_RESERVE, budget.limit - 1)
        return next_extra_time(
            acc.slots.values(),
            gap=extra_gap(len(acc.slots), self.rt.interval, budget.limit, reserve=reserve,
                          window=budget.window),
            last_extra=acc.last_extra,
            now=now,
            reserve_wait=budget.wait_for(reserve + 1),
            min_gap=float(settings.poll_min_gap_seconds),
            not_before=max(acc.extra_not_before, acc.poll_backoff_until),
        )

    async def sync(self, activation_id: int) -> ActivationRow | None:
        """Refresh the in-memory view of one activation from the database."""
        rt = self.rt
        row = await rt.repos.activations.get(activation_id)
        now = rt.clock.now()
        if row is None or not row.is_open:
            track = rt.tracks.pop(activation_id, None)
            rt.timers.set(("act", activation_id), None)
            account_id: int | None = None
            if row is not None:
                account_id = row.account_id
            elif track is not None:
                account_id = track.account_id
            if account_id is not None:
                acc = rt.accounts.get(account_id)
                if acc is not None:
                    acc.slots.pop(activation_id, None)
                    self.schedule_poll(acc, now)
                if acc is not None and acc.row.kind == "user":
                    await self.accounts.maybe_wipe(account_id)
            return row
        track = rt.tracks.get(activation_id)
        fresh = self.track_from_row(row)
        if track is None:
            track = fresh
            rt.tracks[activation_id] = track
        else:
            track.remote_id = fresh.remote_id
            track.state = fresh.state
            track.cancel_after = fresh.cancel_after
            track.expires_at = fresh.expires_at
            track.unlock_emitted = fresh.unlock_emitted
            track.next_cancel_at = fresh.next_cancel_at
            track.cancel_attempts = fresh.cancel_attempts
        if track.state in CANCELLING_STATES and track.next_cancel_at is None:
            track.next_cancel_at = now
        await self.place(track, now, first_poll=self.first_poll(row))
        return row
