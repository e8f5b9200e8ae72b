"""The durable activation engine: a thin facade implementing
:class:`bot.services.api.EngineAPI` over one service per concern.

=================  ===========================================================
module             concern
=================  ===========================================================
``funding``        the funding policy (operator ledger / own key), chosen once
``accounts``       users, DaisySim accounts and keys, admin rights
``catalogue``      services with the user's prices, quotes persisted with an id
``purchases``      buying, and reconciling purchases left in doubt
``polling``        poll rounds (``poller`` plans them, ``rounds`` runs them)
``cancels``        the user's cancel, expiry and the cancel requests
``outcomes``       every state change (a named Step), with ledger and outbox
``outbox``         event dispatch to the UI's handler
``reports``        orders, history, wallet, admin stats
``sweep``          stray upstream orders of purchases in doubt
``timers``         the timer heap, the waker, the one backoff
``tracking``       the in-memory view (``tracker`` keeps it in step)
``inspect``        read-only inspection for tests and benchmarks
=================  ===========================================================

It buys numbers, polls them, delivers each code exactly once, refunds every number
that gets no code exactly once, and survives restarts (``kill -9`` anywhere).

It buys numbers, polls them, delivers each code exactly once, refunds every number
that gets no code exactly once, and survives restarts (``kill -9`` anywhere).

Durability rules
----------------
* Every state change is a guarded ``UPDATE … WHERE state IN (…)`` and is written in
  one transaction together with its ledger entries and its outbox event; final
  states are protected by a trigger.
* A purchase is first written as ``purchasing`` (with its request id and, in
  operator mode, the wallet hold) and committed, *then* sent. A lost response or a
  crash leaves the row in ``purchasing``; it is reconciled through /history (the
  client's ``reconcile_purchase``) before the account buys the same service
  again, at start-up and on a timer. Purchases are serialised per DaisySim account
  and service so the reconciliation (service name, time window, ids not known yet)
  is unambiguous; other services go ahead. A purchase left in doubt raises
  PurchasePending; its outcome is a ``purchased`` or ``failed`` event. Purchases in
  doubt stay watched for a late order afterwards (see :mod:`bot.services.sweep`).
* A cancel is first recorded (``cancelling`` / ``expired``), then sent; it is
  retried until DaisySim answers. ``NOT_FOUND`` or ``ALREADY_CANCELLED`` for a
  number we bought and are cancelling is taken as *already cancelled upstream*
  (a previous attempt succeeded but its outcome was lost): the activation is
  marked refunded, and the user's wallet refund (operator mode) is written once
  (UNIQUE ledger entry), whatever the number of attempts.
* Events go through the outbox (UNIQUE per activation and kind): they are emitted
  exactly once, handed to the subscribed handler at least once, acknowledged when
  the handler returns.

Money
-----
* Operator mode: the user price is ``upstream × (1 + markup%)`` rounded to 4 dp
  ROUND_HALF_UP, in lists, quotes and charges. The quoted price is held before the
  purchase is sent (balance check and hold in one transaction); on success the
  charge is the user price of ``amount_charged`` capped at the hold (the user never
  pays more than the price confirmed) and the hold is released; a refund returns
  the charge, once. An upstream INSUFFICIENT_BALANCE there means the operator's
  wallet is empty: logged as an error, raised as UpstreamUnavailable.
* Own-key mode: prices as DaisySim gives them (no markup); the wallet is the
  DaisySim balance. The engine records every activation's price in both modes.
* What is bought (both modes; ``bot.domain.quoting``): a quote names its pool
  ("cheapest available" = the cheapest pool with numbers when quoted). ``buy``
  re-reads /apps (never the 5-minute cache) and names that pool upstream: no
  numbers there → SoldOut with the fresh pools, never another pool; a fresh
  price above the confirmed one → PriceChanged. DaisySim charging more than its own
  /apps said anyway is logged (operator mode: the hold caps the user's charge).

Events (``subscribe(handler)``, ``async def handler(event: Event) -> None``)
-------------------------------------------------------------------------
Each event carries an outbox id, its kind, ``created_at`` and a snapshot of the
activation at emission time (incl. ``chat_id``/``message_id`` from ``buy`` /
``set_message``). At most one per (activation, kind); an activation's events are
handed over in order; a handler that raises gets the event again later (backoff
5 s doubling to 10 min; after 20 failures it is logged and dropped), and on
restart; an event can be handed over twice only if the process dies between the
handler returning and the acknowledgement. Return normally for permanent
failures (e.g. the user blocked the bot); raise :class:`RetryLater` when nothing
was delivered and the event should come back after a delay (a flood pause: not
counted as a failed attempt, never dropped).

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

User calls that change state (``cancel``) also emit their event, so every view of
the order can be updated; render idempotently.

Scheduling
----------
The engine never sleeps. It keeps an in-memory timer heap (rebuilt from the database
by :meth:`start`): poll rounds per account, unlock and expiry times, cancel and
reconciliation retries, event (re)delivery. :meth:`run_due` does everything due and
returns the next due time (clock time) or None; :meth:`next_due` tells it without
doing anything. Poll rounds of different accounts run concurrently; one that takes
longer than ``poll_rounds.patience`` real seconds (a slow upstream; every request has a
total deadline) finishes in the background and calls the waker when done, so a slow
account never delays the others (the only background tasks; ``close`` ends them).
The waker given to
:meth:`set_waker` is called (synchronously) with a due time whenever new work
appears earlier than the time last returned/reported (after ``buy``, a pending
cancel, a new event, ``subscribe``, ``start``). With PTB's JobQueue: keep one
pending ``run_once`` job at the earliest reported time; the job calls
``run_due()`` and schedules itself at the returned time; the waker reschedules it
if the new time is earlier. ``run_due`` is safe to call at any time, concurrently
(calls are serialised) and from inside the event handler (returns at once).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from decimal import Decimal

import httpx

from bot.clock import Clock, SystemClock, VirtualClock
from bot.config import Settings
from bot.daisysim.client import DaisySimClient
from bot.domain.activation import CANCELLING_STATES, ActivationState
from bot.services.accounts import Accounts, ClientFactory
from bot.services.api import (
    Activation,
    CancelOutcome,
    EventHandler,
    HistoryFilter,
    KeyInfo,
    OrderPage,
    Quote,
    Service,
    Stats,
    WalletView,
)
from bot.services.cancels import Cancels
from bot.services.catalogue import Catalogue
from bot.services.crypto import ConfigurationError, KeyVault
from bot.services.funding import StoredPolicy, funding_policy
from bot.services.inspect import Inspector
from bot.services.outbox import Outbox
from bot.services.outcomes import Outcomes
from bot.services.polling import Polling
from bot.services.purchases import RECONCILE_SETTLE, Purchases
from bot.services.reports import Reports
from bot.services.runtime import Runtime
from bot.services.sweep import Sweeper
from bot.services.timers import TimerKey, Timers, Waker
from bot.services.tracker import Tracker
from bot.services.tracking import Track
from storage.db import Database
from storage.repositories import Repositories

__all__ = ["ConfigurationError", "Engine"]

logger = logging.getLogger("bot.services")

MAX_PASSES = 20  # run_due: passes over timers that became due while working
S = ActivationState


class Services:
    """The services of one started engine (built by :meth:`Engine.start`)."""

    def __init__(self, rt: Runtime, accounts: Accounts) -> None:
        self.rt = rt
        self.accounts = accounts
        self.tracker = Tracker(rt, accounts)
        self.outcomes = Outcomes(rt, self.tracker)
        self.catalogue = Catalogue(rt, accounts)
        self.cancels = Cancels(rt, accounts, self.tracker, self.outcomes)
        self.purchases = Purchases(rt, accounts, self.tracker, self.outcomes, self.catalogue)
        self.polling = Polling(rt, self.tracker, self.outcomes)
        self.outbox = Outbox(rt)
        self.reports = Reports(rt, accounts)
        self.sweeper = Sweeper(
            rt.repos, rt.clock, cancel_lock=rt.cancel_lock,
            owns_every_order=rt.policy.owns_every_order, account=accounts.account_ref,
        )


class Engine:
    """See the module docstring; the public methods follow :class:`EngineAPI`."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        db: Database | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._db = db
        self._own_db = db is None
        self._transport = transport
        self._client_factory = client_factory or self._default_client
        self._vault: KeyVault | None = None
        if settings.encryption_key is not None:
            self._vault = KeyVault(settings.encryption_key.get_secret_value())
        # The one place the funding mode is decided (raises ConfigurationError).
        self.policy: StoredPolicy = funding_policy(
            settings, self.clock, can_encrypt=self._vault is not None
        )
        self.interval = float(settings.poll_interval_seconds)
        self.cancel_lock = float(settings.cancel_lock_seconds)
        self.give_up = float(settings.give_up_seconds)
        self._timers = Timers()
        self._waker = Waker(self._timers)
        self._handler: EventHandler | None = None
        self._s: Services | None = None
        self._run_lock = asyncio.Lock()
        self._in_run: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"engine_run_{id(self)}", default=False
        )
        self._rerun = False
        self.inspect = Inspector(self)

    def _default_client(self, api_key: str) -> DaisySimClient:
        # No hidden retries/sleeps inside the client: the engine schedules its own
        # retries (a sleep on a VirtualClock would also block until time moves).
        return DaisySimClient(
            api_key,
            base_url=self.settings.daisysim_base_url,
            clock=self.clock,
            transport=self._transport,
            timeout=self.settings.daisysim_timeout_seconds,
            max_attempts=1,
            reconcile_delay=0.0 if isinstance(self.clock, VirtualClock) else 2.0,
        )

    @property
    def services(self) -> Services:
        if self._s is None:
            raise RuntimeError("Engine.start() has not been called")
        return self._s

    # Kept for the e2e tests and benchmarks until they use ``inspect``.
    @property
    def repos(self) -> Repositories:
        return self.services.rt.repos

    @property
    def db(self) -> Database:
        return self.services.rt.db

    def tracked(self) -> dict[int, str]:
        return self.inspect.tracked()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._s is not None:
            return
        if self._db is None:
            self._db = await Database.open(self.settings.database_path)
        repos = Repositories(self._db)
        rt = Runtime(
            self.settings, self.clock, self._db, repos, self.policy, self._timers, self._waker
        )
        accounts = Accounts(
            rt, client_factory=self._client_factory, vault=self._vault,
            shared_transport=self._transport is not None,
        )
        s = Services(rt, accounts)
        now = self.clock.now()
        await self.policy.start(repos, accounts)
        for row in await repos.activations.list_open():
            track = s.tracker.track_from_row(row)
            if track.state == S.PURCHASING:
                track.reconcile_at = max(now, row.purchase_sent_at + RECONCILE_SETTLE)
            elif track.state in CANCELLING_STATES:
                track.next_cancel_at = max(now, row.next_cancel_at or now)
            rt.tracks[row.id] = track
            await s.tracker.place(track, now, first_poll=max(now, s.tracker.first_poll(row)))
        for account_id in await s.sweeper.accounts():
            self._timers.set(("sweep", account_id), now)
        await accounts.wipe_unused_keys()
        await s.catalogue.start()
        if self._handler is not None:
            s.outbox.subscribe(self._handler)
        await s.outbox.start()
        self._s = s
        logger.info(
            "engine started (%s mode): %d open activations", self.policy.name, len(rt.tracks)
        )
        self._waker.notify()

    async def close(self) -> None:
        s = self._s
        if s is not None:
            await s.polling.close()
        async with self._run_lock:
            if s is not None:
                await s.accounts.close()
                s.rt.tracks.clear()
            self._timers.clear()
            if self._own_db and self._db is not None:
                await self._db.close()
                self._db = None
            self._s = None

    def subscribe(self, handler: EventHandler) -> None:
        self._handler = handler
        if self._s is not None:
            self._s.outbox.subscribe(handler)
            self._timers.set(("events",), self.clock.now())
            self._waker.notify()

    def set_waker(self, waker: Callable[[float], None]) -> None:
        self._waker.set_callback(waker)

    def next_due(self) -> float | None:
        return self._timers.peek()

    async def run_due(self) -> float | None:
        if self._s is None:
            return None
        if self._in_run.get():  # called from inside the event handler
            self._rerun = True
            return self.next_due()
        async with self._run_lock:
            token = self._in_run.set(True)
            try:
                for _ in range(MAX_PASSES):
                    self._rerun = False
                    now = self.clock.now()
                    keys = self._timers.pop_due(now)
                    if self._s is None or (not keys and not self._rerun):
                        break
                    await self._run_keys(self._s, keys, now)
            finally:
                self._in_run.reset(token)
        due = self.next_due()
        self._waker.reported = due
        return due

    async def _run_keys(self, s: Services, keys: list[TimerKey], now: float) -> None:
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
                    self._timers.set(("act", track.id), now + 30.0)
                    continue
                if track.id in s.rt.tracks:
                    s.tracker.schedule_act(track)
            elif kind == "poll":
                polls.append(key[1])
            elif kind == "events":
                events = True
            elif kind == "sweep":
                await self._sweep(s, key[1], now)
        if cancels:
            await s.cancels.run(cancels, now)
        if polls:
            await s.polling.run(polls, now)
        if events:
            try:
                await s.outbox.dispatch(now)
            except Exception:
                logger.exception("event dispatch failed")
                self._timers.set(("events",), now + 30.0)

    async def _sweep(self, s: Services, account_id: int, now: float) -> None:
        """Stray orders of one account (see :mod:`bot.services.sweep`)."""
        try:
            when = await s.sweeper.run(account_id)
        except Exception:
            logger.exception("account %d: stray-order sweep failed", account_id)
            when = now + 60.0
        self._timers.set(("sweep", account_id), when)
        if when is None:  # nothing watched any more: an unlinked key can go
            await s.accounts.maybe_wipe(account_id)

    # ================================================================== public API
    @property
    def users_bring_keys(self) -> bool:
        return self.policy.users_bring_keys

    async def ensure_user(self, user_id: int, *, locale: str | None = None) -> None:
        await self.services.accounts.ensure_user(user_id, locale=locale)

    async def user_exists(self, user_id: int) -> bool:
        return await self.services.accounts.user_exists(user_id)

    async def link_key(self, user_id: int, api_key: str) -> KeyInfo:
        return await self.services.accounts.link_key(user_id, api_key)

    async def unlink_key(self, user_id: int) -> bool:
        return await self.services.accounts.unlink_key(user_id)

    async def key_info(self, user_id: int) -> str | None:
        return await self.services.accounts.key_info(user_id)

    async def list_services(self, user_id: int) -> list[Service]:
        return await self.services.catalogue.list_services(user_id)

    async def quote(
        self, user_id: int, app: str, provider_id: str | None, *, fresh: bool = False
    ) -> Quote:
        return await self.services.catalogue.quote(user_id, app, provider_id, fresh=fresh)

    async def buy(
        self,
        user_id: int,
        app: str,
        provider_id: str | None,
        max_price: Decimal,
        *,
        request_id: str,
        chat_id: int | None = None,
        message_id: int | None = None,
        pool: str | None = None,
    ) -> Activation:
        return await self.services.purchases.buy(
            user_id, app, provider_id, max_price, request_id=request_id, chat_id=chat_id,
            message_id=message_id, pool=pool,
        )

    async def buy_quote(
        self,
        user_id: int,
        quote_id: int,
        *,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> Activation:
        return await self.services.purchases.buy_quote(
            user_id, quote_id, chat_id=chat_id, message_id=message_id
        )

    async def cancel(self, user_id: int, activation_id: int) -> CancelOutcome:
        return await self.services.cancels.cancel(user_id, activation_id)

    async def set_message(
        self, user_id: int, activation_id: int, chat_id: int, message_id: int
    ) -> None:
        await self.services.reports.set_message(user_id, activation_id, chat_id, message_id)

    async def get_activation(self, user_id: int, activation_id: int) -> Activation:
        return await self.services.reports.get_activation(user_id, activation_id)

    async def active(self, user_id: int) -> list[Activation]:
        return await self.services.reports.active(user_id)

    async def history(
        self, user_id: int, filter: HistoryFilter = "all", page: int = 1, per_page: int = 5
    ) -> OrderPage:
        return await self.services.reports.history(user_id, filter, page, per_page)

    async def wallet(self, user_id: int) -> WalletView:
        return await self.services.reports.wallet(user_id)

    async def recent_services(self, user_id: int, limit: int = 3) -> list[str]:
        return await self.services.reports.recent_services(user_id, limit)

    async def admin_adjust(
        self, admin_id: int, user_id: int, amount: Decimal, note: str
    ) -> Decimal:
        return await self.services.reports.admin_adjust(admin_id, user_id, amount, note)

    async def stats(self, admin_id: int) -> Stats:
        return await self.services.reports.stats(admin_id)
