"""Operator alerts to the admins (operator mode): the DaisySim balance fell below
``LOW_BALANCE_ALERT_USD``, or a purchase failed upstream with INSUFFICIENT_BALANCE.

One alert per crossing: an alert kind *fires* once (``operator_alerts.fired``, in
the database, so a restart does not repeat it) and is re-armed when the condition
is over — ``low_balance`` when a balance read shows the balance at or above the
threshold again, ``operator_empty`` when a purchase goes through. Firing writes
one delivery row per admin (``ADMIN_IDS``) in the same transaction; the UI sends
them (:meth:`Alerts.pending`, :meth:`Alerts.delivered`), each in the admin's
language, and is told there is something to send by the listener
(:meth:`Alerts.set_listener`), so a crash between the crossing and the message
loses nothing.

The balance is read on the engine timer ``("balance",)`` every
``LOW_BALANCE_CHECK_SECONDS`` (only when a threshold is set) and taken from every
purchase's ``balance_after``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

from bot.services.accounts import Accounts
from bot.services.api import OperatorAlert
from bot.services.runtime import Runtime

__all__ = ["EMPTY", "LOW", "Alerts"]

logger = logging.getLogger("bot.services")

LOW = "low_balance"
EMPTY = "operator_empty"
CHECK_RETRY = 60.0  # a failed balance read is tried again this soon
MAX_ATTEMPTS = 5  # a delivery that keeps failing (not "blocked") is given up after this


class Alerts:
    def __init__(self, rt: Runtime, accounts: Accounts, *, enabled: bool) -> None:
        self.rt = rt
        self.accounts = accounts
        self.enabled = enabled  # operator mode: the bot's own DaisySim balance
        self.threshold: Decimal | None = rt.settings.low_balance_alert_usd
        self.interval = float(rt.settings.low_balance_check_seconds)
        self._listener: Callable[[], None] | None = None

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Called (synchronously) when new alert messages are waiting to be sent."""
        self._listener = listener

    def start(self) -> None:
        if self.enabled and self.threshold is not None:
            self.rt.timers.set(("balance",), self.rt.clock.now())

    # ------------------------------------------------------------------ observing
    async def check(self) -> Decimal | None:
        """The ``("balance",)`` timer: read the operator's balance and observe it."""
        if not self.enabled or self.threshold is None:
            return None
        now = self.rt.clock.now()
        try:
            # Operator mode: every user's funding account is the operator's.
            acc = await self.accounts.funding_account(0)
            client = self.accounts.require_client(acc)
            balance = (await client.balance()).balance
        except Exception as exc:  # a DaisySimError, mostly: never stops the other work
            logger.warning("operator balance check failed: %s", type(exc).__name__)
            self.rt.timers.set(("balance",), now + CHECK_RETRY)
            return None
        self.rt.timers.set(("balance",), now + self.interval)
        await self.observe(balance)
        return balance

    async def observe(self, balance: Decimal) -> None:
        """A balance of the operator's account is known: fire or re-arm ``low_balance``."""
        if not self.enabled or self.threshold is None:
            return
        repo, now = self.rt.repos.alerts, self.rt.clock.now()
        if balance < self.threshold:
            if await self._fire(LOW, balance):
                logger.warning(
                    "the operator's DaisySim balance %s is below %s", balance, self.threshold
                )
        elif await repo.rearm(LOW, balance, now):
            logger.info("the operator's DaisySim balance is back at %s", balance)

    async def purchased(self, balance_after: Decimal | None) -> None:
        """A purchase went through on the operator's account."""
        if not self.enabled:
            return
        try:
            await self.rt.repos.alerts.rearm(EMPTY, balance_after, self.rt.clock.now())
            if balance_after is not None:
                await self.observe(balance_after)
        except Exception:  # the purchase is recorded; an alert must not undo that
            logger.exception("operator alert after a purchase failed")

    async def operator_empty(self) -> None:
        """DaisySim refused a purchase with INSUFFICIENT_BALANCE on the operator's key."""
        if not self.enabled:
            return
        try:
            if await self._fire(EMPTY, None):
                logger.error("purchases fail: the operator's DaisySim balance is too low")
        except Exception:
            logger.exception("operator alert (insufficient balance) failed")

    async def _fire(self, kind: str, balance: Decimal | None) -> bool:
        repo, now = self.rt.repos.alerts, self.rt.clock.now()
        admins = sorted(set(self.rt.settings.admin_ids))
        async with self.rt.db.transaction():
            if not await repo.fire(kind, balance, now):
                return False
            for admin_id in admins:
                await repo.add_delivery(
                    kind=kind, admin_id=admin_id, balance=balance,
                    threshold=self.threshold, now=now,
                )
        if not admins:
            logger.warning("operator alert %s: ADMIN_IDS is empty, nobody to tell", kind)
        elif self._listener is not None:
            self._listener()
        return True

    # ------------------------------------------------------------------ delivery
    async def pending(self) -> list[OperatorAlert]:
        rows = await self.rt.repos.alerts.unsent()
        return [
            OperatorAlert(r.id, r.kind, r.admin_id, r.balance, r.threshold, r.created_at)
            for r in rows
        ]

    async def delivered(self, alert_id: int) -> None:
        await self.rt.repos.alerts.mark_sent(alert_id, self.rt.clock.now())

    async def undeliverable(self, alert_id: int, *, permanent: bool) -> None:
        """A send failed; ``permanent`` (the admin blocked the bot): never again.
        Others are tried again, at most :data:`MAX_ATTEMPTS` times."""
        rows = {r.id: r for r in await self.rt.repos.alerts.unsent()}
        row = rows.get(alert_id)
        give_up = permanent or (row is not None and row.attempts + 1 >= MAX_ATTEMPTS)
        await self.rt.repos.alerts.mark_failed(alert_id, give_up=give_up,
                                               now=self.rt.clock.now())
