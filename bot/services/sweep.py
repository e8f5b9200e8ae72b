"""The stray-order sweep: no order the bot's key paid for is left unaccounted.

A purchase whose answer was lost is reconciled through /history for a while
(engine: ``MIN_PURCHASE_SETTLE``) and then written off as "not bought": the
user's hold is released. DaisySim may still finish it later. Such a write-off is
*watched* (``activations.watch_until``: a give-up window after the later of
the write-off and the end of its reconciliation window, as long as such a number
could still exist). So is a purchase that reconciliation
matched to an order (by service and time: it may have been another lost
purchase's late order, and its own may still come). While any purchase of an
account is watched, this sweep reads the account's /history:

* at most :data:`SWEEP_MAX_PAGES` pages of 100 orders per sweep, newest first,
  down to the oldest watched purchase, and at most once per
  :data:`SWEEP_INTERVAL` per account (half the cancel lock if that is shorter;
  /history has no published limit; this is our own bound); cancels take the
  key's cancel budget only when it has a free slot, so the sweep never causes a
  429;
* an order no activation owns whose service is that of a watched purchase and
  that was created in its window (from ``purchase_sent_at`` − 10 s to the end of
  the watch) is that purchase's late order: recorded in ``stray_orders`` (one per
  order, one per purchase), then cancelled for the refund as soon as the 3-minute
  lock allows. If its code arrives first, the cancel answers CODE_RECEIVED: the
  order is recorded as a *loss* (code kept) and shown in admin stats;
* in operator mode (the key belongs to the bot) any other unknown order created
  in the same span, after the account was registered, is recorded and cancelled
  too. In own-key mode only orders that match a purchase the bot sent are
  touched: a user's other orders on their own key are left alone;
* an order that a purchase still in ``purchasing`` could claim (same service,
  created from its sending on) is left for that purchase's reconciliation.

Every change is a guarded transition (``UPDATE … WHERE state = 'cancelling'``),
committed before the next request, so a restart anywhere repeats nothing: a
cancel whose answer was lost is retried and answered ALREADY_CANCELLED (taken as
done; the server never refunds twice). No user ledger entry is written: the
user's hold was released at the write-off, and the refund goes to the key's
DaisySim wallet.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from bot.clock import Clock
from bot.daisysim import errors as ds
from bot.daisysim.client import HISTORY_MAX_PER_PAGE, DaisySimClient
from bot.daisysim.models import Order
from bot.domain.strays import StrayState
from bot.services.errors import already_cancelled
from bot.services.timers import backoff
from storage.repositories import Repositories
from storage.rows import AccountRow, ActivationRow, StrayRow

__all__ = ["SWEEP_INTERVAL", "SWEEP_MAX_PAGES", "AccountRef", "Sweeper"]

logger = logging.getLogger("bot.services.sweep")

SWEEP_INTERVAL = 30.0  # while a purchase is watched, read /history this often
MIN_SWEEP_INTERVAL = 2.0
SWEEP_MAX_PAGES = 3  # /history pages (100 orders each) per sweep at most
MATCH_SLACK = 10.0  # an order may carry a created_at this much before the request
CODE_RETRY = 15.0  # CODE_RECEIVED without a code in the answer: ask again then
AUTH_RETRY = 300.0
MIN_RETRY = 0.05


@dataclass(slots=True)
class AccountRef:
    """What the sweep needs of one engine account."""

    row: AccountRow
    client: DaisySimClient | None


@dataclass(slots=True)
class _State:
    last_walk: float | None = None
    failures: int = 0


def _cancelled(order: Order) -> bool:
    return not order.completed and "cancel" in order.status.strip().lower()


class Sweeper:
    """Runs the sweep of one account at a time (the engine serialises calls)."""

    def __init__(
        self,
        repos: Repositories,
        clock: Clock,
        *,
        cancel_lock: float,
        owns_every_order: bool,
        account: Callable[[int], Awaitable[AccountRef]],
    ) -> None:
        self._repos = repos
        self._clock = clock
        self._cancel_lock = cancel_lock
        self._owns_every_order = owns_every_order
        self._account = account
        self._state: dict[int, _State] = {}
        # No later than needed to cancel soon after the lock opens.
        self.interval = max(MIN_SWEEP_INTERVAL, min(SWEEP_INTERVAL, cancel_lock / 2))

    async def accounts(self) -> list[int]:
        """Accounts that need the sweep now (at start-up)."""
        return await self._repos.strays.accounts_to_sweep(self._clock.now())

    async def run(self, account_id: int) -> float | None:
        """One sweep of the account: read /history if due, cancel what is due.
        Returns when the account needs the sweep next (None: not any more)."""
        ref = await self._account(account_id)
        state = self._state.setdefault(account_id, _State())
        now = self._clock.now()
        client = ref.client
        if client is None:
            return now + AUTH_RETRY if await self._needed(account_id, now) else None
        due: list[float] = []
        # One more walk after a watch ends: an order created just before its end
        # is seen by the next walk.
        watches = await self._repos.strays.watches(account_id, now - self.interval)
        if watches:
            walk_at = (
                now if state.last_walk is None else state.last_walk + self.interval
            )
            if state.failures:
                walk_at = max(walk_at, (state.last_walk or now) + backoff(state.failures))
            if walk_at <= now:
                await self._walk(ref, client, watches, state)
                walk_at = self._clock.now() + (
                    backoff(state.failures) if state.failures else self.interval
                )
            if await self._repos.strays.watches(account_id, self._clock.now() - self.interval):
                due.append(walk_at)
        for stray in await self._repos.strays.open(account_id):
            when: float | None = (
                stray.next_attempt_at if stray.next_attempt_at is not None else now
            )
            if when is not None and when <= self._clock.now():
                when = await self._cancel(client, stray)
            if when is not None:
                due.append(when)
        if not due:
            self._state.pop(account_id, None)
            return None
        return min(due)

    async def _needed(self, account_id: int, now: float) -> bool:
        return bool(
            await self._repos.strays.watches(account_id, now - self.interval)
            or await self._repos.strays.open(account_id)
        )

    # ------------------------------------------------------------------ /history
    async def _walk(
        self,
        ref: AccountRef,
        client: DaisySimClient,
        watches: list[ActivationRow],
        state: _State,
    ) -> None:
        since = min(w.purchase_sent_at for w in watches) - MATCH_SLACK
        orders: list[Order] = []
        try:
            for page in range(1, SWEEP_MAX_PAGES + 1):
                result = await client.history(per_page=HISTORY_MAX_PER_PAGE, page=page)
                orders.extend(result.orders)
                if (
                    not result.orders
                    or page >= result.pagination.last_page
                    or min(o.created_at.timestamp() for o in result.orders) < since
                ):
                    break
        except ds.DaisySimError as err:
            state.failures += 1
            state.last_walk = self._clock.now()
            logger.info(
                "account %d: /history sweep failed (%s); will retry", ref.row.id,
                type(err).__name__,
            )
            return
        state.failures = 0
        state.last_walk = self._clock.now()
        # Read after the walk: an order of a purchase made meanwhile is either
        # known by now or its purchase is still "purchasing" (then left alone).
        busy = await self._repos.strays.purchasing_labels(ref.row.id)
        known = await self._repos.strays.known_ids(ref.row.id)
        known |= set(client.limiter.purchases.known)

        def maybe_theirs(order: Order) -> bool:
            # A purchase still in doubt claims only orders created from its sending
            # on (minus the client's slack): older ones cannot be its order.
            sent = busy.get(order.service)
            return sent is not None and order.created_at.timestamp() >= sent - MATCH_SLACK

        candidates = sorted(
            (
                o for o in orders
                if o.activation_id not in known
                and o.created_at.timestamp() >= since
                and not maybe_theirs(o)
            ),
            key=lambda o: (o.created_at, o.activation_id),
        )
        claimed: set[str] = set()
        for watch in watches:
            labels = {watch.service_name, watch.service_code}
            end = watch.watch_until if watch.watch_until is not None else since
            for order in candidates:
                created = order.created_at.timestamp()
                if (
                    order.activation_id not in claimed
                    and order.service in labels
                    and watch.purchase_sent_at - MATCH_SLACK <= created <= end
                ):
                    claimed.add(order.activation_id)
                    await self._record(ref, order, watch)
                    break
        if not self._owns_every_order:
            return
        floor = max(since, ref.row.created_at - MATCH_SLACK)
        for order in candidates:
            if (
                order.activation_id in claimed
                or _cancelled(order)
                or order.created_at.timestamp() < floor
            ):
                continue
            await self._record(ref, order, None)

    async def _record(
        self, ref: AccountRef, order: Order, watch: ActivationRow | None
    ) -> None:
        now = self._clock.now()
        created = order.created_at.timestamp()
        state: StrayState
        if order.completed:
            state, next_at = StrayState.LOST, None
        elif _cancelled(order):
            state, next_at = StrayState.REFUNDED, None  # refunded upstream already
        else:
            state, next_at = StrayState.CANCELLING, max(now, created + self._cancel_lock)
        stray_id = await self._repos.strays.insert(
            account_id=ref.row.id,
            remote_id=order.activation_id,
            activation_id=watch.id if watch is not None else None,
            service=order.service,
            phone=order.phone_number,
            # /history's amount is unreadable (absurd): the watched purchase's
            # confirmed price, else 0 (an unknown order of unknown cost).
            amount=order.amount_charged if order.amount_charged is not None else (
                watch.price if watch is not None else Decimal(0)),
            ordered_at=created,
            now=now,
            state=state,
            code=order.code,
            next_attempt_at=next_at,
        )
        if stray_id is None:
            return
        whose = (
            f"the late order of written-off purchase {watch.id}"
            if watch is not None else "an order the bot does not know"
        )
        if state == StrayState.LOST:
            logger.error(
                "account %d: %s (%s, %s) already has its code: recorded as a loss",
                ref.row.id, whose, order.activation_id, order.amount_charged,
            )
        else:
            logger.warning(
                "account %d: found %s (%s); %s", ref.row.id, whose, order.activation_id,
                "cancelling it for the refund" if state == StrayState.CANCELLING
                else "already cancelled upstream",
            )

    # ------------------------------------------------------------------ cancel
    async def _cancel(self, client: DaisySimClient, stray: StrayRow) -> float | None:
        """One cancel attempt. Returns the next attempt time (None: finished)."""
        budget = client.limiter.cancel
        now = self._clock.now()
        if budget.available() <= 0:
            return now + max(budget.wait_time(), MIN_RETRY)
        strays = self._repos.strays
        try:
            result = await client.cancel(stray.remote_id)
        except ds.CodeReceived as err:
            if err.code_value:
                if await strays.transition(
                    stray.id, [StrayState.CANCELLING], StrayState.LOST, code=err.code_value,
                    finished_at=self._clock.now(), next_attempt_at=None,
                ):
                    logger.error(
                        "stray order %s: its code arrived before the cancel was allowed: "
                        "a loss of %s", stray.remote_id, stray.amount,
                    )
                return None
            return await self._retry(stray, self._clock.now() + CODE_RETRY)
        except ds.TooEarly as err:
            seconds = max(1, int(err.seconds_left) if err.seconds_left else 5)
            return await self._retry(stray, self._clock.now() + seconds, count=False)
        except ds.RateLimited as err:
            return await self._retry(
                stray, self._clock.now() + float(err.retry_after or 60.0), count=False
            )
        except (ds.Unauthenticated, ds.AccountSuspended, ds.AccountLocked):
            return await self._retry(stray, self._clock.now() + AUTH_RETRY)
        except ds.DaisySimError as err:
            if already_cancelled(err):
                # An earlier cancel went through and its answer was lost.
                await strays.transition(
                    stray.id, [StrayState.CANCELLING], StrayState.REFUNDED, refund=stray.amount,
                    finished_at=self._clock.now(), next_attempt_at=None,
                )
                logger.warning("stray order %s: already cancelled upstream", stray.remote_id)
                return None
            return await self._retry(
                stray, self._clock.now() + backoff(stray.attempts + 1, 5.0, 120.0)
            )
        if await strays.transition(
            stray.id, [StrayState.CANCELLING], StrayState.REFUNDED, refund=result.refund,
            finished_at=self._clock.now(), next_attempt_at=None,
        ):
            logger.warning(
                "stray order %s cancelled: %s refunded to the key's wallet",
                stray.remote_id, result.refund,
            )
        return None

    async def _retry(self, stray: StrayRow, when: float, *, count: bool = True) -> float:
        await self._repos.strays.transition(
            stray.id, [StrayState.CANCELLING], StrayState.CANCELLING, next_attempt_at=when,
            attempts=stray.attempts + (1 if count else 0),
        )
        return when
