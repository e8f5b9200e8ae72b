"""How an activation changes state: one named :class:`~bot.domain.activation.Step`
at a time, written in one transaction with its ledger entries (through the
funding policy) and its outbox event.

:func:`move` is the only way the services change an activation's state: it
applies a step of :data:`~bot.domain.activation.TRANSITIONS` as a guarded
``UPDATE … WHERE state IN (sources)``, so two racing writers can never both move
the same row, and a transition the table does not have cannot be written.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from bot.daisysim.models import Purchase
from bot.domain.activation import (
    CANCELLING_STATES,
    TRANSITIONS,
    ActivationState,
    RefundReason,
    Step,
)
from bot.services.api import EventKind
from bot.services.runtime import Runtime
from bot.services.tracker import Tracker
from storage.errors import IntegrityError
from storage.repositories import Repositories
from storage.rows import ActivationRow

__all__ = ["Outcomes", "move"]

logger = logging.getLogger("bot.services")

S = ActivationState


async def move(
    repos: Repositories,
    activation_id: int,
    step: Step,
    *,
    only_from: ActivationState | str | None = None,
    **fields: Any,
) -> bool:
    """Apply ``step`` to the activation (and set ``fields``) iff its state is one
    of the step's sources (``only_from``: that one source only; it must be one of
    them). Returns whether the row changed."""
    t = TRANSITIONS[step]
    sources: tuple[ActivationState, ...] = t.sources
    if only_from is not None:
        source = S(only_from)
        if source not in t.sources:
            raise ValueError(f"{step}: {source} is not a source of this step")
        sources = (source,)
    return await repos.activations.transition(activation_id, sources, t.target, **fields)


class Outcomes:
    def __init__(self, rt: Runtime, tracker: Tracker) -> None:
        self.rt = rt
        self.tracker = tracker

    # ------------------------------------------------------------------ codes
    async def complete(self, activation_id: int, code: str) -> bool:
        rt = self.rt
        now = rt.clock.now()
        async with rt.db.transaction():
            done = await move(
                rt.repos, activation_id, Step.CODE, code=code, finished_at=now,
                next_cancel_at=None,
            )
            if done:
                await rt.emit(activation_id, EventKind.CODE_RECEIVED)
        if done:
            logger.info("activation %d: code received", activation_id)
            rt.events_now()
        else:
            row = await rt.repos.activations.get(activation_id)
            if row is not None and row.state in (S.REFUNDED, S.FAILED):
                logger.error(
                    "activation %d: a code arrived after it was %s", activation_id, row.state
                )
        await self.tracker.sync(activation_id)
        return done

    # ------------------------------------------------------------------ money back
    async def refunded(self, activation_id: int, upstream_refund: Decimal | None) -> bool:
        """The cancel went through upstream (or had already): refund once."""
        rt = self.rt
        now = rt.clock.now()
        async with rt.db.transaction():
            row = await rt.repos.activations.get(activation_id)
            if row is None or row.state not in CANCELLING_STATES:
                done = False
            else:
                reason = (
                    RefundReason.USER_CANCEL if row.state == S.CANCELLING
                    else RefundReason.EXPIRED
                )
                amount = await rt.policy.cancel_refund(
                    activation_id, upstream_refund=upstream_refund,
                    paid=row.cost if row.cost is not None else row.price,
                )
                done = await move(
                    rt.repos, activation_id, Step.REFUND, only_from=row.state,
                    refund_amount=amount, refund_reason=reason.value, finished_at=now,
                    next_cancel_at=None,
                )
                if done:
                    await rt.policy.give_back(
                        row.user_id, activation_id, note=f"refund ({reason.value})"
                    )
                    await rt.emit(activation_id, EventKind.REFUNDED)
        if done:
            logger.info("activation %d: refunded", activation_id)
            rt.events_now()
        await self.tracker.sync(activation_id)
        return done

    async def fail_unresolvable(self, activation_id: int, status: str) -> bool:
        """Not Found / Invalid upstream for a waiting number: failed, money back."""
        rt = self.rt
        now = rt.clock.now()
        async with rt.db.transaction():
            row = await rt.repos.activations.get(activation_id)
            done = False
            if row is not None and row.state == S.WAITING:
                amount = await rt.policy.failed_refund(activation_id)
                done = await move(
                    rt.repos, activation_id, Step.UNRESOLVABLE, finished_at=now,
                    failure_reason=f"upstream status: {status}"[:200],
                    refund_reason=RefundReason.FAILED.value, refund_amount=amount,
                )
                if done:
                    await rt.policy.give_back(row.user_id, activation_id, note="not found")
                    await rt.emit(activation_id, EventKind.FAILED)
        if done:
            logger.warning("activation %d: %s upstream, marked failed", activation_id, status)
            rt.events_now()
        await self.tracker.sync(activation_id)
        return done

    # ------------------------------------------------------------------ purchases
    def watch_until(self, row: ActivationRow, now: float) -> float:
        """How long a purchase in doubt is watched for a late order: DaisySim may
        finish it up to the reconciliation window after sending (or until now, if
        later), and such a number lives a give-up window after that."""
        return max(now, row.purchase_sent_at + self.rt.purchase_settle) + self.rt.give_up

    def sweep_soon(self, account_id: int, when: float) -> None:
        self.rt.timers.sooner(("sweep", account_id), when)

    async def fail_purchase(
        self, activation_id: int, reason: str, *, emit: bool, watch: bool = False
    ) -> None:
        """``purchasing`` → ``failed`` (hold released). ``watch``: the write-off is
        not proven (the request may have reached DaisySim): the sweep looks for a
        late order for a give-up window from now."""
        rt = self.rt
        now = rt.clock.now()
        async with rt.db.transaction():
            row = await rt.repos.activations.get(activation_id)
            done = False
            if row is not None and row.state == S.PURCHASING:
                done = await move(
                    rt.repos, activation_id, Step.PURCHASE_FAILED, finished_at=now,
                    failure_reason=reason[:200],
                    watch_until=self.watch_until(row, now) if watch else None,
                )
                if done:
                    await rt.policy.release(row.user_id, activation_id)
                if done and emit:
                    await rt.emit(activation_id, EventKind.FAILED)
        if done and emit:
            rt.events_now()
        if done and watch and row is not None:
            self.sweep_soon(row.account_id, now)
            rt.notify()
        await self.tracker.sync(activation_id)

    async def settle_purchase(
        self, activation_id: int, purchase: Purchase, *, late: bool = False
    ) -> ActivationRow:
        """``purchasing`` → ``waiting`` with the number. ``late``: settled after the
        ``buy()`` call that made it (reconciled later, or after a restart): the
        user is waiting for the outcome, so a ``purchased`` event is written."""
        rt = self.rt
        now = rt.clock.now()
        row = await rt.repos.activations.get(activation_id)
        assert row is not None
        purchased_at = row.purchase_sent_at if purchase.reconciled else now
        purchased_at = min(purchased_at, now)
        try:
            async with rt.db.transaction():
                done = await move(
                    rt.repos, activation_id, Step.BOUGHT,
                    remote_id=purchase.activation_id, phone=purchase.phone_number,
                    cost=purchase.amount_charged, purchased_at=purchased_at,
                    cancel_after=purchased_at + rt.cancel_lock,
                    expires_at=purchased_at + rt.give_up,
                    # Matched by service and time: it may be another lost purchase's
                    # order, and its own may still come. The sweep watches it.
                    watch_until=self.watch_until(row, now) if purchase.reconciled else None,
                )
                if done:
                    # An unreadable amount (recovered through /history): the price
                    # the user confirmed (and, in operator mode, held).
                    price = await rt.policy.settle(
                        row.user_id, activation_id, row.price, purchase.amount_charged,
                        service_code=row.service_code,
                    )
                    await rt.repos.activations.update(activation_id, price=price)
                    if late:
                        await rt.emit(activation_id, EventKind.PURCHASED)
        except IntegrityError:
            # The same remote id twice: never attach one number to two orders.
            logger.exception("activation %d: cannot record the purchase", activation_id)
            await self.fail_purchase(activation_id, "purchase could not be recorded", emit=True)
            raise
        except Exception:
            track = rt.tracks.get(activation_id)
            if track is not None:
                track.unrecorded = purchase
            raise
        track = rt.tracks.get(activation_id)
        if track is not None:
            track.unrecorded = None
        if late:
            rt.events_now()
        if purchase.reconciled:
            self.sweep_soon(row.account_id, now)
            rt.notify()
        settled = await self.tracker.sync(activation_id)
        assert settled is not None
        return settled
