"""The engine's services wired together, and the routing of due timers to them."""

from __future__ import annotations

import logging

from bot.domain.activation import CANCELLING_STATES, ActivationState
from bot.services.accounts import Accounts
from bot.services.alerts import Alerts
from bot.services.api import EventHandler
from bot.services.broadcasts import Broadcasts
from bot.services.cancels import Cancels
from bot.services.catalogue import Catalogue
from bot.services.funding import OperatorLedger
from bot.services.moderation import Moderation
from bot.services.outbox import Outbox
from bot.services.outcomes import Outcomes
from bot.services.polling import Polling
from bot.services.pricing import Pricing
from bot.services.purchases import RECONCILE_SETTLE, Purchases
from bot.services.reports import Reports
from bot.services.runtime import Runtime
from bot.services.sweep import Sweeper
from bot.services.timers import TimerKey
from bot.services.tracker import Tracker
from bot.services.tracking import Track

__all__ = ["Services"]

logger = logging.getLogger("bot.services")

S = ActivationState


class Services:
    """The services of one started engine (built by ``Engine.start``)."""

    def __init__(self, rt: Runtime, accounts: Accounts) -> None:
        self.rt = rt
        self.accounts = accounts
        self.tracker = Tracker(rt, accounts)
        self.outcomes = Outcomes(rt, self.tracker)
        self.catalogue = Catalogue(rt, accounts)
        self.cancels = Cancels(rt, accounts, self.tracker, self.outcomes)
        # --- h-ops: operator alerts and prices ---
        self.alerts = Alerts(rt, accounts, enabled=isinstance(rt.policy, OperatorLedger))
        self.pricing = Pricing(rt, accounts, self.catalogue)
        self.purchases = Purchases(
            rt, accounts, self.tracker, self.outcomes, self.catalogue, alerts=self.alerts
        )
        self.polling = Polling(rt, self.tracker, self.outcomes)
        self.outbox = Outbox(rt)
        self.reports = Reports(rt, accounts)
        self.sweeper = Sweeper(
            rt.repos, rt.clock, cancel_lock=rt.cancel_lock,
            owns_every_order=rt.policy.owns_every_order, account=accounts.account_ref,
        )
        # --- h-admin: broadcasts and bans (issue 13) ---
        self.moderation = Moderation(rt, accounts)
        self.broadcasts = Broadcasts(rt, accounts)

    async def load(self, handler: EventHandler | None) -> None:
        """At start-up: register the funding account, rebuild the tracking and
        timers from the database, wipe unused keys, re-dispatch pending events."""
        rt, tracker = self.rt, self.tracker
        now = rt.clock.now()
        await rt.policy.start(rt.repos, self.accounts)
        open_rows = await rt.repos.activations.list_open()
        await self.accounts.preload({row.account_id for row in open_rows})
        for row in open_rows:
            track = tracker.track_from_row(row)
            if track.state == S.PURCHASING:
                track.reconcile_at = max(now, row.purchase_sent_at + RECONCILE_SETTLE)
            elif track.state in CANCELLING_STATES:
                track.next_cancel_at = max(now, row.next_cancel_at or now)
            rt.tracks[row.id] = track
            await tracker.place(track, now, first_poll=max(now, tracker.first_poll(row)))
        for account_id in await self.sweeper.accounts():
            rt.timers.set(("sweep", account_id), now)
        await self.accounts.wipe_unused_keys()
        await self.catalogue.start()
        await self.pricing.start()
        self.alerts.start()
        if handler is not None:
            self.outbox.subscribe(handler)
        await self.outbox.start()

    async def run(self, keys: list[TimerKey], now: float) -> None:
        """Do the work of the timers that are due: each key to its service."""
        s = self
        cancels: list[Track] = []
        polls: list[int] = []
        events = False
        for key in keys:
            assert isinstance(key, tuple)
            kind = key[0]
            if kind == "act":
                track = s.rt.tracks.get(key[1])
                if track is None:
                    continue
                try:
                    if track.state == S.PURCHASING:
                        await s.purchases.reconcile(track)
                    elif track.state == S.WAITING:
                        await s.cancels.waiting_due(track, now)
                    elif track.state in CANCELLING_STATES:
                        cancels.append(track)
                        continue
                except Exception:
                    logger.exception("activation %d: scheduled work failed", track.id)
                    self.rt.timers.set(("act", track.id), now + 30.0)
                    continue
                if track.id in s.rt.tracks:
                    s.tracker.schedule_act(track)
            elif kind == "poll":
                polls.append(key[1])
            elif kind == "events":
                events = True
            elif kind == "sweep":
                await self._sweep(key[1], now)
            elif kind == "balance":
                await s.alerts.check()
        if cancels:
            await s.cancels.run(cancels, now)
        if polls:
            await s.polling.run(polls, now)
        if events:
            try:
                await s.outbox.dispatch(now)
            except Exception:
                logger.exception("event dispatch failed")
                self.rt.timers.set(("events",), now + 30.0)

    async def _sweep(self, account_id: int, now: float) -> None:
        s = self
        """Stray orders of one account (see :mod:`bot.services.sweep`)."""
        try:
            when = await s.sweeper.run(account_id)
        except Exception:
            logger.exception("account %d: stray-order sweep failed", account_id)
            when = now + 60.0
        self.rt.timers.set(("sweep", account_id), when)
        if when is None:  # nothing watched any more: an unlinked key can go
            await s.accounts.maybe_wipe(account_id)
