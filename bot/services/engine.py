"""The durable activation engine (implements :class:`bot.services.api.EngineAPI`).

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
* What is bought (both modes; ``bot.services.quoting``): a quote names its pool
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
import contextlib
import contextvars
import functools
import heapq
import itertools
import logging
import math
import sqlite3
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import httpx

from bot.clock import Clock, SystemClock, VirtualClock
from bot.config import FundingMode, Settings
from bot.daisysim import errors as ds
from bot.daisysim.client import DaisySimClient
from bot.daisysim.models import App, Purchase
from bot.services.api import (
    AccountUnavailable,
    Activation,
    ActivationNotFound,
    CancelOutcome,
    DuplicateRequest,
    EngineError,
    EventHandler,
    EventKind,
    HistoryFilter,
    InsufficientFunds,
    InvalidKey,
    KeyInfo,
    KeyRequired,
    LedgerEntry,
    NotAllowed,
    OrderPage,
    Pool,
    PriceChanged,
    PurchasePending,
    Quote,
    RefundReason,
    RetryLater,
    Service,
    ServiceStat,
    ServiceUnavailable,
    SoldOut,
    Stats,
    TooBusy,
    UpstreamUnavailable,
    WalletView,
)
from bot.services.crypto import ConfigurationError, KeyVault, key_hash, mask_key, valid_key_format
from bot.services.events import activation_to_json, event_from_row, to_activation
from bot.services.poller import (
    PollSlot,
    due_slots,
    next_round_time,
    round_gap,
    split_batches,
)
from bot.services.pricing import quantize, user_price
from bot.services.quoting import purchase_choice, quote_choice
from bot.services.rounds import Rounds
from bot.services.sweep import AccountRef, Sweeper
from bot.services.wallets import Wallets
from storage.db import Database
from storage.repositories import DuplicateError, Repositories
from storage.rows import OPEN_STATES, AccountRow, ActivationRow, dec

__all__ = ["ConfigurationError", "Engine"]

logger = logging.getLogger("bot.services")

CATALOGUE_TTL = 300.0  # the per-account price view is cached 5 minutes upstream too
RECONCILE_LOOKBACK = 3600.0  # ids bought this long before a lost purchase are excluded
RECONCILE_SETTLE = 5.0  # after a crash, give the server this long before reading /history
RECONCILE_RETRY = 10.0  # while a lost purchase is in doubt, re-read /history this often
# A lost purchase is only written off as "not bought" once /history has shown no order
# for this long after the request was sent (the server may finish it after our timeout).
MIN_PURCHASE_SETTLE = 60.0
EVENT_MAX_ATTEMPTS = 20  # then the event is dead-lettered (logged, marked delivered)
AUTH_RETRY = 300.0  # key rejected / account blocked: retry this much later
MAX_PASSES = 20  # run_due: passes over timers that became due while working
POLL_CONCURRENCY = 8  # accounts whose poll rounds run at the same time
POLL_PATIENCE = 2.0  # real s run_due waits for a slow round before leaving it running
MIN_RETRY = 0.05

POLLABLE = ("waiting", "cancelling", "expired")
CANCELLING = ("cancelling", "expired")
HISTORY_STATES: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "completed": ("completed",),
    "waiting": OPEN_STATES,
    "cancelled": ("refunded", "failed"),
}

TimerKey = Hashable
ClientFactory = Callable[[str], DaisySimClient]


# --------------------------------------------------------------------------- internals


class _Timers:
    """A heap of (time, key) with lazy invalidation: one live time per key."""

    def __init__(self) -> None:
        self._due: dict[TimerKey, float] = {}
        self._heap: list[tuple[float, int, TimerKey]] = []
        self._seq = itertools.count()

    def set(self, key: TimerKey, when: float | None) -> None:
        if when is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if len(self._heap) > 4 * len(self._due) + 64:
            self._heap = [(w, next(self._seq), k) for k, w in self._due.items()]
            heapq.heapify(self._heap)

    def get(self, key: TimerKey) -> float | None:
        return self._due.get(key)

    def _clean(self) -> None:
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) == when:
                return
            heapq.heappop(self._heap)

    def peek(self) -> float | None:
        self._clean()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[TimerKey]:
        keys: list[TimerKey] = []
        while True:
            self._clean()
            if not self._heap or self._heap[0][0] > now:
                return keys
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            keys.append(key)

    def clear(self) -> None:
        self._due.clear()
        self._heap.clear()


@dataclass(slots=True)
class _Track:
    """In-memory scheduling view of one open activation (the DB is the truth)."""

    id: int
    user_id: int
    account_id: int
    remote_id: str | None
    state: str
    purchase_sent_at: float
    cancel_after: float
    expires_at: float
    unlock_emitted: bool
    next_cancel_at: float | None
    cancel_attempts: int
    reconcile_at: float | None = None
    reconcile_failures: int = 0
    poll_stopped: bool = False  # Not Found while cancelling: the cancel resolves it
    # A purchase DaisySim confirmed but that could not be written yet (database
    # error): settled from memory on the next attempt, never "reconciled" away.
    unrecorded: Purchase | None = None


class _Account:
    """Runtime of one DaisySim account: client, poll slots, locks, caches."""

    def __init__(self, row: AccountRow, client: DaisySimClient | None) -> None:
        self.id = row.id
        self.row = row
        self.client = client
        # One lock per service name: purchases that reconciliation could confuse
        # (same service) are serialised; other services go ahead.
        self._purchase_locks: dict[str, asyncio.Lock] = {}
        self.slots: dict[int, PollSlot] = {}
        self.last_round: float | None = None
        self.poll_backoff_until = 0.0
        self.poll_failures = 0
        self.catalogue: tuple[float, list[App]] | None = None

    def purchase_lock(self, service_name: str) -> asyncio.Lock:
        lock = self._purchase_locks.get(service_name)
        if lock is None:
            lock = self._purchase_locks[service_name] = asyncio.Lock()
        return lock


def _labels(row: ActivationRow | App) -> set[str]:
    """The ``service`` strings an order of this purchase may carry in /history."""
    if isinstance(row, App):
        return {row.code, row.name}
    return {row.service_code, row.service_name}


def _order_name(orders: dict[int, ActivationRow], activation_id: int | None) -> str | None:
    row = orders.get(activation_id) if activation_id is not None else None
    return row.service_name if row is not None else None


def _refund_reason(
    orders: dict[int, ActivationRow], activation_id: int | None
) -> RefundReason | None:
    row = orders.get(activation_id) if activation_id is not None else None
    if row is None or row.refund_reason is None:
        return None
    try:
        return RefundReason(row.refund_reason)
    except ValueError:
        return None


def _backoff(attempt: int, base: float = 5.0, cap: float = 300.0) -> float:
    return min(cap, base * (2 ** max(0, attempt - 1)))


def _month_start(now: float) -> float:
    dt = datetime.fromtimestamp(now, UTC)
    return datetime(dt.year, dt.month, 1, tzinfo=UTC).timestamp()


def _already_cancelled(err: ds.DaisySimError) -> bool:
    if isinstance(err, ds.NotFound):
        return True
    return isinstance(err, ds.APIError) and (err.code or "").upper() == "ALREADY_CANCELLED"


def _map_error(err: ds.DaisySimError) -> EngineError:
    """A DaisySim error outside /purchase, as the UI's error."""
    if isinstance(err, ds.Unauthenticated):
        return InvalidKey("DaisySim rejected the API key")
    if isinstance(err, ds.AccountSuspended):
        return AccountUnavailable("DaisySim account suspended", locked=False)
    if isinstance(err, ds.AccountLocked):
        return AccountUnavailable("DaisySim account locked", locked=True)
    if isinstance(err, ds.RateLimited):
        return TooBusy("rate limited", retry_after=float(err.retry_after or 60.0))
    if isinstance(err, ds.InvalidCountry):
        return ServiceUnavailable("country not supported")
    return UpstreamUnavailable(f"DaisySim unavailable: {type(err).__name__}")


# --------------------------------------------------------------------------- engine


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
        self.mode = FundingMode(settings.funding_mode)
        self._vault: KeyVault | None = None
        if settings.encryption_key is not None:
            self._vault = KeyVault(settings.encryption_key.get_secret_value())
        if self.mode is FundingMode.OWN_KEY and self._vault is None:
            raise ConfigurationError(
                "FUNDING_MODE=own_key stores users' DaisySim keys encrypted: set ENCRYPTION_KEY "
                "(a Fernet key)"
            )
        if self.mode is FundingMode.OPERATOR and settings.daisysim_api_key is None:
            raise ConfigurationError("FUNDING_MODE=operator needs DAISYSIM_API_KEY")
        self.interval = float(settings.poll_interval_seconds)
        self.cancel_lock = float(settings.cancel_lock_seconds)
        self.give_up = float(settings.give_up_seconds)
        self._purchase_settle = max(MIN_PURCHASE_SETTLE, 3.0 * settings.daisysim_timeout_seconds)
        self.markup = Decimal(settings.markup_percent)
        self._repos: Repositories | None = None
        self._wallets: Wallets | None = None
        self._timers = _Timers()
        self._tracks: dict[int, _Track] = {}
        self._accounts: dict[int, _Account] = {}
        self._operator_account_id: int | None = None
        self._cancel_inflight: set[int] = set()
        self._handler: EventHandler | None = None
        self._waker: Callable[[float], None] | None = None
        self._reported: float | None = None
        self._run_lock = asyncio.Lock()
        self._in_run: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"engine_run_{id(self)}", default=False
        )
        self._rerun = False
        self._started = False
        self._events_ignore_backoff = False
        self.poll_rounds = Rounds(
            concurrency=POLL_CONCURRENCY, patience=POLL_PATIENCE, on_late_done=self._notify
        )
        self._sweeper: Sweeper | None = None

    # ------------------------------------------------------------------ plumbing
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

    async def _close_client(self, client: DaisySimClient | None) -> None:
        # An injected transport is shared by every client and owned by the caller:
        # closing a client would close it too.
        if client is None or self._transport is not None:
            return
        with contextlib.suppress(Exception):
            await client.aclose()

    @property
    def repos(self) -> Repositories:
        if self._repos is None:
            raise RuntimeError("Engine.start() has not been called")
        return self._repos

    @property
    def wallets(self) -> Wallets:
        if self._wallets is None:
            raise RuntimeError("Engine.start() has not been called")
        return self._wallets

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("Engine.start() has not been called")
        return self._db

    def _to_activation(self, row: ActivationRow) -> Activation:
        return to_activation(row, cancel_lock=self.cancel_lock, give_up=self.give_up)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._started:
            return
        if self._db is None:
            self._db = await Database.open(self.settings.database_path)
        self._repos = Repositories(self._db)
        self._wallets = Wallets(self._repos, self.clock)
        now = self.clock.now()
        if self.mode is FundingMode.OPERATOR:
            await self._ensure_operator_account(now)
        for row in await self.repos.activations.list_open():
            track = self._track_from_row(row, now)
            if row.state == "purchasing":
                track.reconcile_at = max(now, row.purchase_sent_at + RECONCILE_SETTLE)
            elif row.state in CANCELLING:
                track.next_cancel_at = max(now, row.next_cancel_at or now)
            self._tracks[row.id] = track
            await self._place(track, now, first_poll=max(now, self._first_poll(row)))
        self._sweeper = Sweeper(
            self.repos, self.clock, cancel_lock=self.cancel_lock,
            operator_mode=self.mode is FundingMode.OPERATOR, account=self._account_ref,
        )
        for account_id in await self._sweeper.accounts():
            self._timers.set(("sweep", account_id), now)
        await self._wipe_unused_keys()
        if await self.repos.events.next_attempt() is not None:
            self._timers.set(("events",), now)
            self._events_ignore_backoff = True  # a restart is a good time to retry
        self._started = True
        logger.info(
            "engine started (%s mode): %d open activations", self.mode.value, len(self._tracks)
        )
        self._notify()

    async def close(self) -> None:
        await self.poll_rounds.close()
        async with self._run_lock:
            for acc in self._accounts.values():
                await self._close_client(acc.client)
            self._accounts.clear()
            self._tracks.clear()
            self._timers.clear()
            if self._own_db and self._db is not None:
                await self._db.close()
                self._db = None
            self._started = False

    def subscribe(self, handler: EventHandler) -> None:
        if self._handler is not None and self._handler is not handler:
            logger.warning("replacing the engine's event handler")
        self._handler = handler
        self._events_ignore_backoff = True
        if self._started:
            self._timers.set(("events",), self.clock.now())
            self._notify()

    def set_waker(self, waker: Callable[[float], None]) -> None:
        self._waker = waker
        self._reported = None
        self._notify()

    def next_due(self) -> float | None:
        return self._timers.peek()

    def _notify(self) -> None:
        due = self.next_due()
        if due is None or self._waker is None:
            return
        if self._reported is not None and due >= self._reported:
            return
        self._reported = due
        try:
            self._waker(due)
        except Exception:
            logger.exception("engine waker failed")

    async def run_due(self) -> float | None:
        if not self._started:
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
                    if not keys and not self._rerun:
                        break
                    await self._run_keys(keys, now)
            finally:
                self._in_run.reset(token)
        due = self.next_due()
        self._reported = due
        return due

    async def _run_keys(self, keys: list[TimerKey], now: float) -> None:
        cancels: list[_Track] = []
        polls: list[int] = []
        events = False
        for key in keys:
            assert isinstance(key, tuple)
            kind = key[0]
            if kind == "act":
                track = self._tracks.get(key[1])
                if track is None:
                    continue
                try:
                    if track.state == "purchasing":
                        await self._reconcile_track(track)
                    elif track.state == "waiting":
                        await self._waiting_due(track, now)
                    elif track.state in CANCELLING:
                        cancels.append(track)
                        continue
                except Exception:
                    logger.exception("activation %d: scheduled work failed", track.id)
                    self._timers.set(("act", track.id), now + 30.0)
                    continue
                if track.id in self._tracks:
                    self._schedule_act(track)
            elif kind == "poll":
                polls.append(key[1])
            elif kind == "events":
                events = True
            elif kind == "sweep":
                await self._sweep(key[1], now)
        if cancels:
            await self._run_cancels(cancels, now)
        if polls:  # concurrently, one slow account never holding up the others
            await self.poll_rounds.run({
                acc.id: functools.partial(self._poll_account, acc, now)
                for acc in (self._accounts.get(a) for a in polls) if acc is not None
            })
        if events:
            try:
                await self._dispatch(now)
            except Exception:
                logger.exception("event dispatch failed")
                self._timers.set(("events",), now + 30.0)

    async def _poll_account(self, acc: _Account, now: float) -> None:
        try:
            await self._poll_round(acc, now)
        except Exception:
            logger.exception("account %d: poll round failed", acc.id)
            acc.poll_backoff_until = now + 30.0
            self._schedule_poll(acc, now)

    # ------------------------------------------------------------------ sweep
    async def _account_ref(self, account_id: int) -> AccountRef:
        acc = await self._account(account_id)
        return AccountRef(acc.row, acc.client)

    async def _sweep(self, account_id: int, now: float) -> None:
        """Stray orders of one account (see :mod:`bot.services.sweep`)."""
        assert self._sweeper is not None
        try:
            when = await self._sweeper.run(account_id)
        except Exception:
            logger.exception("account %d: stray-order sweep failed", account_id)
            when = now + 60.0
        self._timers.set(("sweep", account_id), when)
        if when is None:  # nothing watched any more: an unlinked key can go
            await self._maybe_wipe(account_id)

    def _sweep_soon(self, account_id: int, when: float) -> None:
        current = self._timers.get(("sweep", account_id))
        if current is None or when < current:
            self._timers.set(("sweep", account_id), when)

    async def _exclude_ids(self, acc: _Account, since: float) -> list[str]:
        """Ids a reconciliation must never claim: the account's activations and the
        stray orders the sweep found."""
        known = await self.repos.activations.known_remote_ids(acc.id, since)
        return known + await self.repos.strays.ids(acc.id)

    # ------------------------------------------------------------------ accounts
    async def _ensure_operator_account(self, now: float) -> None:
        secret = self.settings.daisysim_api_key
        assert secret is not None
        key = secret.get_secret_value()
        digest = key_hash(key)
        encrypted = self._vault.encrypt(key) if self._vault is not None else None
        async with self.db.transaction():
            row = await self.repos.accounts.by_hash(digest)
            if row is None:
                account_id = await self.repos.accounts.insert(
                    kind="operator", owner_user_id=None, key_hash=digest,
                    key_encrypted=encrypted, key_masked=mask_key(key), email=None, now=now,
                )
            else:
                account_id = row.id
                if row.removed_at is not None or row.key_encrypted != encrypted:
                    await self.repos.accounts.relink(
                        account_id, owner_user_id=None, key_encrypted=encrypted,
                        key_masked=mask_key(key), email=row.email,
                    )
            other = await self.repos.accounts.active_operator()
            while other is not None and other.id != account_id:
                # The operator key changed: the old account keeps finishing its
                # numbers if its key was stored encrypted.
                await self.repos.accounts.remove(other.id, now)
                other = await self.repos.accounts.active_operator()
        self._operator_account_id = account_id

    def _client_for(self, row: AccountRow) -> DaisySimClient | None:
        key: str | None = None
        if row.kind == "operator" and row.id == self._operator_account_id:
            secret = self.settings.daisysim_api_key
            key = secret.get_secret_value() if secret is not None else None
        elif row.key_encrypted is not None and self._vault is not None:
            key = self._vault.decrypt(row.key_encrypted)
        if key is None:
            logger.error("account %d (%s): no usable API key", row.id, row.key_masked)
            return None
        return self._client_factory(key)

    async def _account(self, account_id: int) -> _Account:
        acc = self._accounts.get(account_id)
        if acc is None:
            row = await self.repos.accounts.get(account_id)
            if row is None:
                raise RuntimeError(f"unknown account {account_id}")
            acc = _Account(row, self._client_for(row))
            self._accounts[account_id] = acc
        return acc

    async def _funding_account(self, user_id: int) -> _Account:
        if self.mode is FundingMode.OPERATOR:
            assert self._operator_account_id is not None
            return await self._account(self._operator_account_id)
        row = await self.repos.accounts.active_for_user(user_id)
        if row is None:
            raise KeyRequired("link a DaisySim API key first")
        return await self._account(row.id)

    def _require_client(self, acc: _Account) -> DaisySimClient:
        if acc.client is None:
            raise InvalidKey("the DaisySim key of this account is not available")
        return acc.client

    async def _wipe_unused_keys(self) -> None:
        now = self.clock.now()
        for row in await self.repos.accounts.removed_keys_without_open_activations(now):
            if await self.repos.accounts.wipe_key(row.id):
                logger.info("account %d (%s): key wiped after unlink", row.id, row.key_masked)
            acc = self._accounts.pop(row.id, None)
            if acc is not None:
                await self._close_client(acc.client)

    # ------------------------------------------------------------------ tracking
    def _first_poll(self, row: ActivationRow) -> float:
        base = row.purchased_at if row.purchased_at is not None else row.purchase_sent_at
        return base + self.interval

    def _track_from_row(self, row: ActivationRow, now: float) -> _Track:
        act = self._to_activation(row)
        return _Track(
            id=row.id,
            user_id=row.user_id,
            account_id=row.account_id,
            remote_id=row.remote_id,
            state=row.state,
            purchase_sent_at=row.purchase_sent_at,
            cancel_after=act.cancel_after,
            expires_at=act.expires_at,
            unlock_emitted=row.cancel_available_emitted,
            next_cancel_at=row.next_cancel_at,
            cancel_attempts=row.cancel_attempts,
        )

    async def _place(self, track: _Track, now: float, *, first_poll: float) -> None:
        """Put a track's poll slot and timers in place (after a load or a change)."""
        acc = await self._account(track.account_id)
        pollable = track.state in POLLABLE and track.remote_id is not None
        if pollable and not track.poll_stopped:
            if track.id not in acc.slots:
                assert track.remote_id is not None
                acc.slots[track.id] = PollSlot(track.id, track.remote_id, first_poll)
        else:
            acc.slots.pop(track.id, None)
        self._schedule_poll(acc, now)
        self._schedule_act(track)

    def _schedule_act(self, track: _Track) -> None:
        when: float | None = None
        if track.id in self._cancel_inflight:
            when = None
        elif track.state == "purchasing":
            when = track.reconcile_at
        elif track.state == "waiting":
            when = track.expires_at
            if not track.unlock_emitted:
                when = min(when, track.cancel_after)
        elif track.state in CANCELLING:
            when = track.next_cancel_at if track.next_cancel_at is not None else self.clock.now()
        self._timers.set(("act", track.id), when)

    def _schedule_poll(self, acc: _Account, now: float) -> None:
        if acc.client is None or not acc.slots:
            self._timers.set(("poll", acc.id), None)
            return
        budget = acc.client.limiter.check
        gap = round_gap(len(acc.slots), self.interval, budget.limit)
        when = next_round_time(
            acc.slots.values(),
            last_round=acc.last_round,
            gap=gap,
            now=now,
            budget_wait=budget.wait_time() if budget.available() <= 0 else 0.0,
            backoff_until=acc.poll_backoff_until,
        )
        self._timers.set(("poll", acc.id), when)

    async def _sync(self, activation_id: int) -> ActivationRow | None:
        """Refresh the in-memory view of one activation from the database."""
        row = await self.repos.activations.get(activation_id)
        now = self.clock.now()
        if row is None or not row.is_open:
            track = self._tracks.pop(activation_id, None)
            self._timers.set(("act", activation_id), None)
            account_id: int | None = None
            if row is not None:
                account_id = row.account_id
            elif track is not None:
                account_id = track.account_id
            if account_id is not None:
                acc = self._accounts.get(account_id)
                if acc is not None:
                    acc.slots.pop(activation_id, None)
                    self._schedule_poll(acc, now)
                if acc is not None and acc.row.kind == "user":
                    await self._maybe_wipe(account_id)
            return row
        track = self._tracks.get(activation_id)
        fresh = self._track_from_row(row, now)
        if track is None:
            track = fresh
            self._tracks[activation_id] = track
        else:
            track.remote_id = fresh.remote_id
            track.state = fresh.state
            track.cancel_after = fresh.cancel_after
            track.expires_at = fresh.expires_at
            track.unlock_emitted = fresh.unlock_emitted
            track.next_cancel_at = fresh.next_cancel_at
            track.cancel_attempts = fresh.cancel_attempts
        if track.state in CANCELLING and track.next_cancel_at is None:
            track.next_cancel_at = now
        await self._place(track, now, first_poll=self._first_poll(row))
        return row

    async def _maybe_wipe(self, account_id: int) -> None:
        row = await self.repos.accounts.get(account_id)
        if row is None or row.removed_at is None or row.key_encrypted is None:
            return
        if await self.repos.activations.count_open_for_account(account_id) == 0:
            await self._wipe_unused_keys()

    # ------------------------------------------------------------------ transitions
    async def _emit(self, activation_id: int, kind: EventKind) -> None:
        """Write an outbox event (inside the caller's transaction)."""
        row = await self.repos.activations.get(activation_id)
        assert row is not None
        await self.repos.events.add(
            activation_id, kind.value, activation_to_json(self._to_activation(row)),
            self.clock.now(),
        )

    def _events_now(self) -> None:
        self._timers.set(("events",), self.clock.now())

    async def _complete(self, activation_id: int, code: str) -> bool:
        now = self.clock.now()
        async with self.db.transaction():
            done = await self.repos.activations.transition(
                activation_id, POLLABLE, "completed", code=code, finished_at=now,
                next_cancel_at=None,
            )
            if done:
                await self._emit(activation_id, EventKind.CODE_RECEIVED)
        if done:
            logger.info("activation %d: code received", activation_id)
            self._events_now()
        else:
            row = await self.repos.activations.get(activation_id)
            if row is not None and row.state in ("refunded", "failed"):
                logger.error(
                    "activation %d: a code arrived after it was %s", activation_id, row.state
                )
        await self._sync(activation_id)
        return done

    async def _refunded(self, activation_id: int, upstream_refund: Decimal | None) -> bool:
        """The cancel went through upstream (or had already): refund once."""
        now = self.clock.now()
        async with self.db.transaction():
            row = await self.repos.activations.get(activation_id)
            if row is None or row.state not in CANCELLING:
                done = False
            else:
                reason = "user_cancel" if row.state == "cancelling" else "expired"
                if self.mode is FundingMode.OPERATOR:
                    amount = await self.wallets.charged(activation_id) or Decimal(0)
                elif upstream_refund is not None:
                    amount = upstream_refund
                else:
                    amount = row.cost if row.cost is not None else row.price
                done = await self.repos.activations.transition(
                    activation_id, [row.state], "refunded", refund_amount=amount,
                    refund_reason=reason, finished_at=now, next_cancel_at=None,
                )
                if done:
                    if self.mode is FundingMode.OPERATOR:
                        await self.wallets.refund(
                            row.user_id, activation_id, note=f"refund ({reason})"
                        )
                    await self._emit(activation_id, EventKind.REFUNDED)
        if done:
            logger.info("activation %d: refunded", activation_id)
            self._events_now()
        await self._sync(activation_id)
        return done

    async def _fail_unresolvable(self, activation_id: int, status: str) -> bool:
        """Not Found / Invalid upstream for a waiting number: failed, money back."""
        now = self.clock.now()
        async with self.db.transaction():
            row = await self.repos.activations.get(activation_id)
            done = False
            if row is not None and row.state == "waiting":
                amount: Decimal | None = None
                if self.mode is FundingMode.OPERATOR:
                    amount = await self.wallets.charged(activation_id) or Decimal(0)
                done = await self.repos.activations.transition(
                    activation_id, ["waiting"], "failed", finished_at=now,
                    failure_reason=f"upstream status: {status}"[:200], refund_reason="failed",
                    refund_amount=amount,
                )
                if done:
                    if self.mode is FundingMode.OPERATOR:
                        await self.wallets.refund(row.user_id, activation_id, note="not found")
                    await self._emit(activation_id, EventKind.FAILED)
        if done:
            logger.warning("activation %d: %s upstream, marked failed", activation_id, status)
            self._events_now()
        await self._sync(activation_id)
        return done

    async def _waiting_due(self, track: _Track, now: float) -> None:
        if now >= track.expires_at:
            async with self.db.transaction():
                done = await self.repos.activations.transition(
                    track.id, ["waiting"], "expired", next_cancel_at=now
                )
                if done:
                    await self._emit(track.id, EventKind.EXPIRED)
            if done:
                logger.info("activation %d: give-up time reached, cancelling", track.id)
                self._events_now()
            await self._sync(track.id)
            return
        if not track.unlock_emitted and now >= track.cancel_after:
            async with self.db.transaction():
                done = await self.repos.activations.update(
                    track.id, only_states=["waiting"], cancel_available_emitted=True
                )
                if done:
                    await self._emit(track.id, EventKind.CANCEL_AVAILABLE)
            if done:
                self._events_now()
            await self._sync(track.id)

    # ------------------------------------------------------------------ cancels
    async def _run_cancels(self, tracks: list[_Track], now: float) -> None:
        by_account: dict[int, list[_Track]] = {}
        for track in tracks:
            by_account.setdefault(track.account_id, []).append(track)
        for account_id, group in by_account.items():
            # User cancels first, then auto-cancels, oldest request first.
            group.sort(
                key=lambda t: (t.state != "cancelling", t.next_cancel_at or 0.0, t.id)
            )
            acc = await self._account(account_id)
            if acc.client is None:
                for track in group:
                    track.next_cancel_at = now + AUTH_RETRY
                    self._schedule_act(track)
                continue
            budget = acc.client.limiter.cancel
            for index, track in enumerate(group):
                if (
                    track.id not in self._tracks
                    or track.state not in CANCELLING
                    or track.id in self._cancel_inflight  # its finally reschedules it
                ):
                    continue
                if track.next_cancel_at is not None and track.next_cancel_at > now:
                    self._schedule_act(track)
                    continue
                if budget.available() <= 0:
                    retry = now + max(budget.wait_time(), MIN_RETRY)
                    for later in group[index:]:
                        if later.id in self._tracks:
                            later.next_cancel_at = max(later.next_cancel_at or 0.0, retry)
                            self._schedule_act(later)
                    break
                try:
                    await self._cancel_upstream(track, acc)
                except Exception:
                    logger.exception("activation %d: cancel failed", track.id)
                    await self._retry_cancel(track, self.clock.now() + 30.0, count=True)

    async def _retry_cancel(self, track: _Track, when: float, *, count: bool) -> None:
        attempts = track.cancel_attempts + (1 if count else 0)
        await self.repos.activations.update(
            track.id, only_states=CANCELLING, next_cancel_at=when, cancel_attempts=attempts
        )
        await self._sync(track.id)

    async def _cancel_upstream(
        self, track: _Track, acc: _Account
    ) -> tuple[Literal["refunded", "code_received", "too_early", "pending"], int | None]:
        """One cancel request for an activation in cancelling/expired."""
        client = self._require_client(acc)
        assert track.remote_id is not None
        self._cancel_inflight.add(track.id)
        self._timers.set(("act", track.id), None)
        try:
            try:
                result = await client.cancel(track.remote_id)
            except ds.CodeReceived as err:
                if err.code_value:
                    await self._complete(track.id, err.code_value)
                    return "code_received", None
                # No code in the answer: poll it now, retry the cancel later.
                slot = acc.slots.get(track.id)
                if slot is not None:
                    slot.due = self.clock.now()
                    self._schedule_poll(acc, self.clock.now())
                await self._retry_cancel(track, self.clock.now() + self.interval, count=True)
                return "pending", None
            except ds.TooEarly as err:
                seconds = max(1, int(err.seconds_left) if err.seconds_left else 5)
                await self._retry_cancel(track, self.clock.now() + seconds, count=False)
                return "too_early", seconds
            except ds.RateLimited as err:
                wait = float(err.retry_after or 60.0)
                await self._retry_cancel(track, self.clock.now() + wait, count=False)
                return "pending", None
            except (ds.Unauthenticated, ds.AccountSuspended, ds.AccountLocked) as err:
                logger.warning("activation %d: cancel refused (%s)", track.id, type(err).__name__)
                await self._retry_cancel(track, self.clock.now() + AUTH_RETRY, count=True)
                return "pending", None
            except ds.DaisySimError as err:
                if _already_cancelled(err):
                    logger.warning(
                        "activation %d: cancel answered %s: already cancelled upstream",
                        track.id, err.code or type(err).__name__,
                    )
                    await self._refunded(track.id, None)
                    return "refunded", None
                attempts = track.cancel_attempts + 1
                logger.info(
                    "activation %d: cancel attempt %d failed (%s), will retry",
                    track.id, attempts, type(err).__name__,
                )
                await self._retry_cancel(
                    track, self.clock.now() + _backoff(attempts, 5.0, 120.0), count=True
                )
                return "pending", None
            await self._refunded(track.id, result.refund)
            return "refunded", None
        finally:
            self._cancel_inflight.discard(track.id)
            if track.id in self._tracks:
                self._schedule_act(self._tracks[track.id])

    # ------------------------------------------------------------------ polling
    async def _poll_round(self, acc: _Account, now: float) -> None:
        client = acc.client
        if client is None or not acc.slots:
            self._schedule_poll(acc, now)
            return
        if now < acc.poll_backoff_until:
            self._schedule_poll(acc, now)
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
                acc.poll_backoff_until = self.clock.now() + float(err.retry_after or 60.0)
                logger.warning("account %d: check rate limited upstream", acc.id)
                break
            except (ds.Unauthenticated, ds.AccountSuspended, ds.AccountLocked) as err:
                acc.poll_backoff_until = self.clock.now() + AUTH_RETRY
                logger.warning("account %d: polling refused (%s)", acc.id, type(err).__name__)
                break
            except ds.DaisySimError as err:
                acc.poll_failures += 1
                acc.poll_backoff_until = self.clock.now() + _backoff(acc.poll_failures, 5.0, 120.0)
                logger.info("account %d: poll failed (%s)", acc.id, type(err).__name__)
                break
            acc.poll_failures = 0
            polled_at = self.clock.now()
            by_remote = {slot.remote_id: slot for slot in batch}
            for result in results:
                slot = by_remote.get(result.activation_id)
                if slot is None:
                    continue
                track = self._tracks.get(slot.activation_id)
                if track is None:
                    continue
                if result.completed:
                    assert result.code is not None
                    await self._complete(track.id, result.code)
                elif result.unresolvable:
                    if track.state == "waiting":
                        await self._fail_unresolvable(track.id, result.status)
                    else:
                        track.poll_stopped = True  # the pending cancel resolves it
                        acc.slots.pop(track.id, None)
                else:
                    slot.due = polled_at + self.interval
        self._schedule_poll(acc, self.clock.now())

    # ------------------------------------------------------------------ reconciliation
    async def _reconcile_track(self, track: _Track) -> None:
        acc = await self._account(track.account_id)
        row = await self.repos.activations.get(track.id)
        if row is None or row.state != "purchasing":
            await self._sync(track.id)
            return
        lock = acc.purchase_lock(row.service_name)
        if lock.locked():  # a purchase of this service is on the wire: try again soon
            track.reconcile_at = self.clock.now() + RECONCILE_SETTLE
            return
        async with lock:
            await self._reconcile_locked(track, acc)

    async def _reconcile_locked(self, track: _Track, acc: _Account) -> bool:
        """Resolve one ``purchasing`` row (account purchase lock held). True if
        resolved (waiting or failed)."""
        row = await self.repos.activations.get(track.id)
        if row is None or row.state != "purchasing":
            await self._sync(track.id)
            return True
        if track.unrecorded is not None:
            await self._settle_purchase(track.id, track.unrecorded, late=True)
            return True
        now = self.clock.now()
        client = acc.client
        if client is None:
            track.reconcile_at = now + AUTH_RETRY
            return False
        exclude = await self._exclude_ids(acc, row.purchase_sent_at - RECONCILE_LOOKBACK)
        try:
            found = await client.reconcile_purchase(
                row.service_name, row.purchase_sent_at, exclude, app=row.service_code
            )
        except ds.DaisySimError as err:
            track.reconcile_failures += 1
            track.reconcile_at = self.clock.now() + _backoff(track.reconcile_failures, 10.0)
            logger.warning(
                "activation %d: purchase not reconciled yet (%s)", track.id, type(err).__name__
            )
            return False
        if found is None:
            deadline = row.purchase_sent_at + self._purchase_settle
            if now < deadline:
                track.reconcile_at = min(deadline, now + RECONCILE_RETRY)
                logger.info("activation %d: no order in /history yet; checking again", track.id)
                return False
            logger.info("activation %d: reconciled: nothing was bought", track.id)
            # Not proven: DaisySim may still finish it. The sweep watches /history
            # for its order as long as such a number could exist.
            await self._fail_purchase(track.id, "not bought (reconciled)", emit=True, watch=True)
        else:
            logger.info("activation %d: reconciled: the purchase went through", track.id)
            await self._settle_purchase(track.id, found, late=True)
        return True

    def _watch_until(self, row: ActivationRow, now: float) -> float:
        """How long a purchase in doubt is watched for a late order: DaisySim may
        finish it up to the reconciliation window after sending (or until now, if
        later), and such a number lives a give-up window after that."""
        return max(now, row.purchase_sent_at + self._purchase_settle) + self.give_up

    async def _fail_purchase(
        self, activation_id: int, reason: str, *, emit: bool, watch: bool = False
    ) -> None:
        """``purchasing`` → ``failed`` (hold released). ``watch``: the write-off is
        not proven (the request may have reached DaisySim): the sweep looks for a
        late order for a give-up window from now."""
        now = self.clock.now()
        async with self.db.transaction():
            row = await self.repos.activations.get(activation_id)
            done = False
            if row is not None and row.state == "purchasing":
                done = await self.repos.activations.transition(
                    activation_id, ["purchasing"], "failed", finished_at=now,
                    failure_reason=reason[:200],
                    watch_until=self._watch_until(row, now) if watch else None,
                )
                if done and self.mode is FundingMode.OPERATOR:
                    await self.wallets.release(row.user_id, activation_id)
                if done and emit:
                    await self._emit(activation_id, EventKind.FAILED)
        if done and emit:
            self._events_now()
        if done and watch and row is not None:
            self._sweep_soon(row.account_id, now)
            self._notify()
        await self._sync(activation_id)

    async def _settle_purchase(
        self, activation_id: int, purchase: Purchase, *, late: bool = False
    ) -> ActivationRow:
        """``purchasing`` → ``waiting`` with the number. ``late``: settled after the
        ``buy()`` call that made it (reconciled later, or after a restart): the
        user is waiting for the outcome, so a ``purchased`` event is written."""
        now = self.clock.now()
        row = await self.repos.activations.get(activation_id)
        assert row is not None
        purchased_at = row.purchase_sent_at if purchase.reconciled else now
        purchased_at = min(purchased_at, now)
        try:
            async with self.db.transaction():
                if purchase.amount_charged is None:
                    # Recovered through /history with an unreadable amount: the
                    # price the user confirmed (and, in operator mode, held).
                    price = row.price
                elif self.mode is FundingMode.OPERATOR:
                    price = user_price(purchase.amount_charged, self.markup)
                else:
                    price = quantize(purchase.amount_charged)
                    if price > row.price:  # we named the quoted pool: upstream's doing
                        logger.warning(
                            "activation %d: DaisySim charged %s, above the confirmed %s",
                            activation_id, price, row.price,
                        )
                done = await self.repos.activations.transition(
                    activation_id, ["purchasing"], "waiting",
                    remote_id=purchase.activation_id, phone=purchase.phone_number,
                    cost=purchase.amount_charged, purchased_at=purchased_at,
                    cancel_after=purchased_at + self.cancel_lock,
                    expires_at=purchased_at + self.give_up,
                    # Matched by service and time: it may be another lost purchase's
                    # order, and its own may still come. The sweep watches it.
                    watch_until=self._watch_until(row, now) if purchase.reconciled else None,
                )
                if done and self.mode is FundingMode.OPERATOR:
                    held = await self.wallets.held(activation_id)
                    charged = await self.wallets.settle(row.user_id, activation_id, price)
                    if price > held:
                        logger.warning(
                            "activation %d: upstream charged more than quoted (%s for %s); "
                            "the user pays the confirmed price", activation_id, price, held,
                        )
                    price = charged
                if done:
                    await self.repos.activations.update(activation_id, price=price)
                    if late:
                        await self._emit(activation_id, EventKind.PURCHASED)
        except sqlite3.IntegrityError:
            # The same remote id twice: never attach one number to two orders.
            logger.exception("activation %d: cannot record the purchase", activation_id)
            await self._fail_purchase(activation_id, "purchase could not be recorded", emit=True)
            raise
        except Exception:
            track = self._tracks.get(activation_id)
            if track is not None:
                track.unrecorded = purchase
            raise
        track = self._tracks.get(activation_id)
        if track is not None:
            track.unrecorded = None
        if late:
            self._events_now()
        if purchase.reconciled:
            self._sweep_soon(row.account_id, now)
            self._notify()
        settled = await self._sync(activation_id)
        assert settled is not None
        return settled

    # ------------------------------------------------------------------ events
    async def _dispatch(self, now: float) -> None:
        handler = self._handler
        if handler is None:
            return
        ignore_backoff, self._events_ignore_backoff = self._events_ignore_backoff, False
        blocked: set[int] = set()
        for row in await self.repos.events.pending():
            if row.activation_id in blocked:
                continue
            due = row.next_attempt_at if row.next_attempt_at is not None else row.created_at
            if due > now and not ignore_backoff:
                blocked.add(row.activation_id)  # keep each activation's events in order
                continue
            try:
                event = event_from_row(row)
                # Committed before the handler runs: if the process dies inside it,
                # the redelivery knows (Event.interrupted) and must not repeat it.
                await self.repos.events.mark_dispatching(row.id)
                await handler(event)
            except RetryLater as later:
                blocked.add(row.activation_id)
                logger.warning("event %d (%s) deferred %.0f s: %s",
                               row.id, row.kind, later.delay, later)
                await self.repos.events.mark_deferred(
                    row.id, self.clock.now() + max(later.delay, 0.5), repr(later)
                )
                continue
            except Exception as exc:
                attempts = row.attempts + 1
                blocked.add(row.activation_id)
                if attempts >= EVENT_MAX_ATTEMPTS:
                    logger.error(
                        "event %d (%s, activation %d) failed %d times; dropped",
                        row.id, row.kind, row.activation_id, attempts,
                    )
                    await self.repos.events.mark_failed(row.id, now, repr(exc))
                    await self.repos.events.mark_delivered(row.id, self.clock.now())
                else:
                    logger.warning(
                        "event %d (%s) handler failed (%s); retrying",
                        row.id, row.kind, type(exc).__name__,
                    )
                    await self.repos.events.mark_failed(
                        row.id, now + _backoff(attempts, 5.0, 600.0), repr(exc)
                    )
                continue
            await self.repos.events.mark_delivered(row.id, self.clock.now())
        self._timers.set(("events",), await self.repos.events.next_attempt())

    # ================================================================== public API
    @property
    def users_bring_keys(self) -> bool:
        return self.mode is FundingMode.OWN_KEY

    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError("Engine.start() has not been called")

    async def ensure_user(self, user_id: int, *, locale: str | None = None) -> None:
        self._check_started()
        await self.repos.users.ensure(user_id, self.clock.now(), locale)

    async def user_exists(self, user_id: int) -> bool:
        self._check_started()
        return await self.repos.users.get(user_id) is not None

    # ------------------------------------------------------------------ keys
    async def link_key(self, user_id: int, api_key: str) -> KeyInfo:
        self._check_started()
        if self.mode is not FundingMode.OWN_KEY:
            raise NotAllowed("keys are linked only in own-key mode")
        assert self._vault is not None
        key = api_key.strip()
        if not valid_key_format(key):
            raise InvalidKey("this does not look like a DaisySim API key")
        await self.ensure_user(user_id)
        client = self._client_factory(key)
        try:
            balance = await client.balance()
        except ds.DaisySimError as err:
            raise _map_error(err) from None
        finally:
            await self._close_client(client)
        digest = key_hash(key)
        masked = mask_key(key)
        encrypted = self._vault.encrypt(key)
        now = self.clock.now()
        old_id: int | None = None
        async with self.db.transaction():
            existing = await self.repos.accounts.by_hash(digest)
            if existing is not None and (
                existing.kind != "user"
                or (existing.removed_at is None and existing.owner_user_id != user_id)
            ):
                raise NotAllowed("this key is already linked by someone else")
            current = await self.repos.accounts.active_for_user(user_id)
            if current is not None and (existing is None or current.id != existing.id):
                await self.repos.accounts.remove(current.id, now)
                old_id = current.id
            if existing is not None:
                await self.repos.accounts.relink(
                    existing.id, owner_user_id=user_id, key_encrypted=encrypted,
                    key_masked=masked, email=balance.email,
                )
                account_id = existing.id
            else:
                account_id = await self.repos.accounts.insert(
                    kind="user", owner_user_id=user_id, key_hash=digest,
                    key_encrypted=encrypted, key_masked=masked, email=balance.email, now=now,
                )
        stale = self._accounts.get(account_id)
        if stale is not None:
            stale.row = (await self.repos.accounts.get(account_id)) or stale.row
            if stale.client is None:
                stale.client = self._client_for(stale.row)
        if old_id is not None:
            await self._maybe_wipe(old_id)
        logger.info("user %d linked key %s", user_id, masked)
        return KeyInfo(masked=masked, balance=balance.balance, email=balance.email)

    async def unlink_key(self, user_id: int) -> bool:
        self._check_started()
        row = await self.repos.accounts.active_for_user(user_id)
        if row is None:
            return False
        removed = await self.repos.accounts.remove(row.id, self.clock.now())
        acc = self._accounts.get(row.id)
        if acc is not None:
            acc.catalogue = None
        if removed:
            logger.info("user %d unlinked key %s", user_id, row.key_masked)
            await self._maybe_wipe(row.id)
        return removed

    async def key_info(self, user_id: int) -> str | None:
        self._check_started()
        row = await self.repos.accounts.active_for_user(user_id)
        return None if row is None else row.key_masked

    # ------------------------------------------------------------------ catalogue
    async def _catalogue(self, acc: _Account, *, force: bool = False) -> list[App]:
        now = self.clock.now()
        if not force and acc.catalogue is not None and now - acc.catalogue[0] < CATALOGUE_TTL:
            return acc.catalogue[1]
        client = self._require_client(acc)
        try:
            apps = await client.apps(self.settings.daisysim_country)
        except ds.DaisySimError as err:
            raise _map_error(err) from None
        acc.catalogue = (self.clock.now(), apps)
        return apps

    def _service(self, app: App) -> Service:
        markup = self.markup if self.mode is FundingMode.OPERATOR else Decimal(0)

        def price(p: Decimal) -> Decimal:
            return user_price(p, markup)

        return Service(
            code=app.code,
            name=app.name,
            price=price(app.price),
            pools=tuple(Pool(p.provider_id, price(p.price), p.count) for p in app.providers),
        )

    def _find_app(self, apps: list[App], app_code: str) -> tuple[App, Service]:
        match = next((a for a in apps if a.code == app_code), None)
        if match is None:
            raise ServiceUnavailable(f"unknown service {app_code!r}")
        return match, self._service(match)

    async def _user_balance(self, user_id: int, acc: _Account) -> Decimal | None:
        if self.mode is FundingMode.OPERATOR:
            return await self.wallets.balance(user_id)
        if acc.client is None:
            return None
        try:
            return (await acc.client.balance()).balance
        except ds.DaisySimError:
            return None

    async def list_services(self, user_id: int) -> list[Service]:
        self._check_started()
        acc = await self._funding_account(user_id)
        return [self._service(a) for a in await self._catalogue(acc)]

    async def quote(
        self, user_id: int, app: str, provider_id: str | None, *, fresh: bool = False
    ) -> Quote:
        self._check_started()
        acc = await self._funding_account(user_id)
        return await self._quote(user_id, acc, app, provider_id, force=fresh)

    async def _quote(
        self, user_id: int, acc: _Account, app: str, provider_id: str | None, *,
        force: bool = False,
    ) -> Quote:
        apps = await self._catalogue(acc, force=force)
        return await self._quote_from(user_id, acc, apps, app, provider_id)

    async def _quote_from(
        self, user_id: int, acc: _Account, apps: list[App], app: str, provider_id: str | None
    ) -> Quote:
        _, service = self._find_app(apps, app)
        choice = quote_choice(service, provider_id)
        balance = await self._user_balance(user_id, acc)
        return Quote(
            service=service,
            provider_id=choice.pool if provider_id is not None else None,
            price=choice.price,
            balance=balance,
            balance_after=None if balance is None else balance - choice.price,
            pool=choice.pool,
        )

    async def _requote(
        self, user_id: int, acc: _Account, app: str, provider_id: str | None
    ) -> Quote | None:
        acc.catalogue = None
        try:
            return await self._quote(user_id, acc, app, provider_id, force=True)
        except EngineError:
            return None

    async def _refreshed_service(self, acc: _Account, app: str) -> Service | None:
        acc.catalogue = None
        try:
            apps = await self._catalogue(acc, force=True)
        except EngineError:
            return None
        match = next((a for a in apps if a.code == app), None)
        return None if match is None else self._service(match)

    # ------------------------------------------------------------------ buying
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
        self._check_started()
        if not request_id:
            raise ValueError("request_id is required")
        await self.ensure_user(user_id)
        existing = await self.repos.activations.by_request_id(request_id)
        if existing is not None:
            raise self._duplicate(existing, user_id)
        acc = await self._funding_account(user_id)
        client = self._require_client(acc)
        # Fresh prices: never the cache, which may predate a sell-out or a price rise.
        apps = await self._catalogue(acc, force=True)
        app_info, service = self._find_app(apps, app)
        choice = purchase_choice(service, provider_id, pool)
        pid, price = choice.pool, choice.price
        if price > max_price:
            raise PriceChanged(
                "the price went up",
                quote=await self._quote_from(user_id, acc, apps, app, provider_id),
            )
        async with acc.purchase_lock(app_info.name):
            await self._reconcile_pending(acc, app_info)
            budget = client.limiter.purchase
            if budget.available() <= 0:
                raise TooBusy("purchase budget used up", retry_after=budget.wait_time())
            now = self.clock.now()
            async with self.db.transaction():
                try:
                    activation_id = await self.repos.activations.insert_purchasing(
                        user_id=user_id, account_id=acc.id, service_code=app_info.code,
                        service_name=app_info.name,
                        # The user's choice (None: cheapest available); ``pid`` is bought.
                        provider_id=pid if provider_id is not None else None, price=price,
                        request_id=request_id, sent_at=now, chat_id=chat_id,
                        message_id=message_id if chat_id is not None else None,
                    )
                except DuplicateError:
                    dup = await self.repos.activations.by_request_id(request_id)
                    raise self._duplicate(dup, user_id) from None
                if self.mode is FundingMode.OPERATOR:
                    await self.wallets.hold(user_id, activation_id, price)
            track = _Track(
                id=activation_id, user_id=user_id, account_id=acc.id, remote_id=None,
                state="purchasing", purchase_sent_at=now, cancel_after=now + self.cancel_lock,
                expires_at=now + self.give_up, unlock_emitted=False, next_cancel_at=None,
                cancel_attempts=0,
            )
            self._tracks[activation_id] = track
            row = await self._purchase(acc, client, track, app_info, pid, price)
        self._notify()
        return self._to_activation(row)

    def _duplicate(self, row: ActivationRow | None, user_id: int) -> DuplicateRequest:
        mine = row is not None and row.user_id == user_id
        assert row is None or isinstance(row, ActivationRow)
        return DuplicateRequest(
            "this purchase request was already made",
            activation=self._to_activation(row) if mine and row is not None else None,
        )

    async def _reconcile_pending(self, acc: _Account, app_info: App) -> None:
        """Before buying a service on an account, resolve the purchases of the
        same service left in doubt, so that a later reconciliation is never
        ambiguous. Purchases of other services cannot be confused with this one
        (reconciliation matches the service): they do not hold it up."""
        labels = _labels(app_info)
        pending: list[_Track] = []
        for t in list(self._tracks.values()):
            if t.account_id != acc.id or t.state != "purchasing":
                continue
            row = await self.repos.activations.get(t.id)
            if row is not None and row.state == "purchasing" and _labels(row) & labels:
                pending.append(t)
        for track in sorted(pending, key=lambda t: t.id):
            track.reconcile_at = self.clock.now()
            if not await self._reconcile_locked(track, acc):
                self._schedule_act(track)
                raise UpstreamUnavailable(
                    "an earlier purchase is still being reconciled with DaisySim"
                )

    async def _purchase(
        self,
        acc: _Account,
        client: DaisySimClient,
        track: _Track,
        app_info: App,
        provider_id: str | None,
        price: Decimal,
    ) -> ActivationRow:
        resolved = False
        try:
            exclude = await self._exclude_ids(acc, track.purchase_sent_at - RECONCILE_LOOKBACK)
            if client.limiter.purchase.available() <= 0:
                # Taken by a purchase of another service meanwhile (they run
                # concurrently): nothing was sent. No await between this check and
                # the client taking its slot.
                budget = client.limiter.purchase
                await self._fail_purchase(track.id, "purchase budget used up", emit=False)
                resolved = True
                raise TooBusy("purchase budget used up", retry_after=budget.wait_time())
            try:
                purchase = await self._send_purchase(client, app_info, provider_id, exclude)
            except ds.PurchaseOutcomeUnknown:
                logger.warning("activation %d: purchase outcome unknown; will reconcile", track.id)
                raise await self._pending_error(track.id) from None
            except ds.DaisySimError as err:
                # Not bought: refused, or the client reconciled a lost response and
                # /history showed no order (PurchaseFailed). That last one is not
                # proven (the server may finish it late): the sweep watches it.
                await self._fail_purchase(
                    track.id, f"purchase refused: {err.code or type(err).__name__}", emit=False,
                    watch=isinstance(err, ds.PurchaseFailed),
                )
                resolved = True
                raise await self._purchase_error(
                    err, track.user_id, acc, app_info.code, provider_id, price
                ) from None
            try:
                row = await self._settle_purchase(track.id, purchase)
            except Exception:
                logger.exception("activation %d: bought but not recorded yet", track.id)
                raise await self._pending_error(track.id) from None
            resolved = True
            logger.info(
                "activation %d: bought %s (%s)", track.id, app_info.code, acc.row.key_masked
            )
            return row
        finally:
            if not resolved:
                row_now = await self.repos.activations.get(track.id)
                if row_now is not None and row_now.state == "purchasing":
                    track.reconcile_at = self.clock.now() + RECONCILE_SETTLE
                    self._schedule_act(track)

    async def _pending_error(self, activation_id: int) -> EngineError:
        row = await self.repos.activations.get(activation_id)
        if row is None or row.state != "purchasing":
            return UpstreamUnavailable("the purchase could not be completed")
        return PurchasePending(
            "DaisySim did not answer; the purchase is being reconciled",
            activation=self._to_activation(row),
        )

    async def _send_purchase(
        self,
        client: DaisySimClient,
        app_info: App,
        provider_id: str | None,
        exclude: list[str],
    ) -> Purchase:
        attempts = 0
        while True:
            attempts += 1
            try:
                return await client.purchase(
                    self.settings.daisysim_country, app_info.code, provider_id,
                    app_name=app_info.name, exclude_ids=exclude,
                )
            except ds.ConcurrentError:
                # Proven not applied ("retry immediately"): one more try if allowed.
                if attempts < 2 and client.limiter.purchase.available() > 0:
                    continue
                raise

    async def _purchase_error(
        self,
        err: ds.DaisySimError,
        user_id: int,
        acc: _Account,
        app: str,
        provider_id: str | None,
        price: Decimal,
    ) -> EngineError:
        if isinstance(err, ds.PurchaseFailed):
            return UpstreamUnavailable("DaisySim did not answer; nothing was bought")
        if isinstance(err, ds.OutOfStock):
            service = await self._refreshed_service(acc, app)
            return SoldOut("no numbers in stock", service=service, pool=provider_id)
        if isinstance(err, ds.PriceVerificationFailed):
            return PriceChanged(
                "price verification failed",
                quote=await self._requote(user_id, acc, app, provider_id),
            )
        if isinstance(err, ds.InsufficientBalance):
            if self.mode is FundingMode.OPERATOR:
                logger.error("the operator's DaisySim balance is too low for purchases")
                return UpstreamUnavailable("the service wallet is empty; try again later")
            balance = await self._user_balance(user_id, acc)
            return InsufficientFunds("DaisySim balance too low", balance=balance, price=price)
        return _map_error(err)

    # ------------------------------------------------------------------ cancel
    async def cancel(self, user_id: int, activation_id: int) -> CancelOutcome:
        self._check_started()
        row = await self.repos.activations.get_for_user(user_id, activation_id)
        if row is None:
            raise ActivationNotFound("no such activation")
        act = self._to_activation(row)
        now = self.clock.now()
        if act.state.is_final:
            return CancelOutcome("already_final", act)
        if row.state in CANCELLING:
            return CancelOutcome("pending", act)
        if row.state == "purchasing" or now < act.cancel_after:
            left = max(1, math.ceil(act.cancel_after - now))
            return CancelOutcome("too_early", act, seconds_left=left)
        acc = await self._account(row.account_id)
        client = self._require_client(acc)
        budget = client.limiter.cancel
        retry_at = None if budget.available() > 0 else now + max(budget.wait_time(), MIN_RETRY)
        moved = await self.repos.activations.transition(
            activation_id, ["waiting"], "cancelling", next_cancel_at=retry_at or now,
            cancel_attempts=0,
        )
        row2 = await self._sync(activation_id)
        assert row2 is not None
        if not moved:  # changed meanwhile (e.g. the code just arrived)
            return await self._cancel_result_from(row2)
        track = self._tracks.get(activation_id)
        if retry_at is not None or track is None:
            self._notify()
            return CancelOutcome("pending", self._to_activation(row2))
        outcome, seconds = await self._cancel_upstream(track, acc)
        if outcome == "too_early":
            wait = seconds or 5
            await self.repos.activations.transition(
                activation_id, ["cancelling"], "waiting", cancel_after=self.clock.now() + wait,
                next_cancel_at=None,
            )
            row3 = await self._sync(activation_id)
            assert row3 is not None
            self._notify()
            return CancelOutcome("too_early", self._to_activation(row3), seconds_left=wait)
        self._notify()
        final = await self.repos.activations.get(activation_id)
        assert final is not None
        return await self._cancel_result_from(final)

    async def _cancel_result_from(self, row: ActivationRow) -> CancelOutcome:
        act = self._to_activation(row)
        if row.state == "refunded":
            return CancelOutcome("refunded", act, refund=row.refund_amount)
        if row.state == "completed":
            return CancelOutcome("code_received", act)
        if row.state == "failed":
            return CancelOutcome("already_final", act)
        return CancelOutcome("pending", act)

    # ------------------------------------------------------------------ views
    async def set_message(
        self, user_id: int, activation_id: int, chat_id: int, message_id: int
    ) -> None:
        self._check_started()
        row = await self.repos.activations.get_for_user(user_id, activation_id)
        if row is None:
            raise ActivationNotFound("no such activation")
        await self.repos.activations.update(activation_id, chat_id=chat_id, message_id=message_id)

    async def get_activation(self, user_id: int, activation_id: int) -> Activation:
        self._check_started()
        row = await self.repos.activations.get_for_user(user_id, activation_id)
        if row is None:
            raise ActivationNotFound("no such activation")
        return self._to_activation(row)

    async def active(self, user_id: int) -> list[Activation]:
        self._check_started()
        rows = await self.repos.activations.list_for_user(user_id, OPEN_STATES, limit=1000)
        return [self._to_activation(r) for r in rows]

    async def history(
        self, user_id: int, filter: HistoryFilter = "all", page: int = 1, per_page: int = 5
    ) -> OrderPage:
        self._check_started()
        if filter not in HISTORY_STATES:
            raise ValueError(f"unknown history filter {filter!r}")
        per_page = max(1, min(int(per_page), 100))
        states = HISTORY_STATES[filter]
        total = await self.repos.activations.count_for_user(user_id, states)
        pages = max(1, math.ceil(total / per_page))
        page = max(1, min(int(page), pages))
        rows = await self.repos.activations.list_for_user(
            user_id, states, limit=per_page, offset=(page - 1) * per_page
        )
        return OrderPage(
            items=tuple(self._to_activation(r) for r in rows),
            page=page, pages=pages, total=total, filter=filter,
        )

    async def wallet(self, user_id: int) -> WalletView:
        self._check_started()
        now = self.clock.now()
        active_count = await self.repos.activations.count_for_user(user_id, OPEN_STATES)
        spent = sum(
            await self.repos.activations.prices_between(user_id, _month_start(now), now + 1),
            Decimal(0),
        )
        if self.mode is FundingMode.OPERATOR:
            balance = await self.wallets.balance(user_id)
            entries = await self.repos.ledger.entries(user_id, limit=200)
            open_ids = {
                t.id for t in self._tracks.values()
                if t.user_id == user_id and t.state == "purchasing"
            }
            visible = [
                e for e in entries
                # Hold/release pairs are bookkeeping; show only holds still open.
                if e.kind not in ("hold", "release")
                or (e.kind == "hold" and e.activation_id in open_ids)
            ][:20]
            orders: dict[int, ActivationRow] = {}
            for e in visible:
                if e.activation_id is not None and e.activation_id not in orders:
                    order = await self.repos.activations.get(e.activation_id)
                    if order is not None:
                        orders[e.activation_id] = order
            shown = [
                LedgerEntry(
                    e.id, e.amount, e.kind, e.note, e.activation_id, e.created_at,
                    service_name=_order_name(orders, e.activation_id),
                    refund_reason=_refund_reason(orders, e.activation_id)
                    if e.kind == "refund" else None,
                )
                for e in visible
            ]
            return WalletView(
                mode="operator", balance=balance, email=None, ledger=tuple(shown),
                active_count=active_count, spent_this_month=spent,
            )
        row = await self.repos.accounts.active_for_user(user_id)
        if row is None:
            return WalletView(
                mode="own_key", balance=None, email=None, active_count=active_count,
                spent_this_month=spent,
            )
        acc = await self._account(row.id)
        client = self._require_client(acc)
        try:
            info = await client.balance()
        except ds.DaisySimError as err:
            raise _map_error(err) from None
        if info.email != row.email:
            await self.repos.accounts.set_email(row.id, info.email)
        return WalletView(
            mode="own_key", balance=info.balance, email=info.email, active_count=active_count,
            spent_this_month=spent,
        )

    async def recent_services(self, user_id: int, limit: int = 3) -> list[str]:
        self._check_started()
        return await self.repos.activations.recent_service_codes(user_id, max(0, limit))

    # ------------------------------------------------------------------ admin
    def _check_admin(self, admin_id: int) -> None:
        if admin_id not in self.settings.admin_ids:
            raise NotAllowed("admins only")

    async def admin_adjust(
        self, admin_id: int, user_id: int, amount: Decimal, note: str
    ) -> Decimal:
        self._check_started()
        self._check_admin(admin_id)
        if self.mode is not FundingMode.OPERATOR:
            raise NotAllowed("wallets are DaisySim wallets in own-key mode")
        amount = Decimal(amount)
        if not amount.is_finite():
            raise ValueError("amount must be finite")
        amount = quantize(amount)
        note = (note or "").strip()[:500]
        if amount > 0:
            balance = await self.wallets.credit(user_id, amount, actor_id=admin_id, note=note)
        elif amount < 0:
            balance = await self.wallets.debit(user_id, -amount, actor_id=admin_id, note=note)
        else:
            await self.ensure_user(user_id)
            balance = await self.wallets.balance(user_id)
        logger.info("admin %d adjusted user %d by %s", admin_id, user_id, amount)
        return balance

    async def stats(self, admin_id: int) -> Stats:
        self._check_started()
        self._check_admin(admin_id)
        # Per service and pool, bought orders only (a number was assigned).
        rows = await self.db.fetchall(
            "SELECT service_name, provider_id, state, COUNT(*) AS n,"
            " MAX(CASE WHEN substr(service_code, 1, 3) = 'sb_' THEN 1 ELSE 0 END) AS sb"
            " FROM activations WHERE remote_id IS NOT NULL"
            " GROUP BY service_name, provider_id, state"
        )
        groups: dict[tuple[str, str | None], dict[str, int]] = {}
        multi: set[str] = set()
        for r in rows:
            name, pid = str(r["service_name"]), r["provider_id"]
            counts = groups.setdefault((name, pid), {})
            counts[str(r["state"])] = counts.get(str(r["state"]), 0) + int(r["n"])
            if pid is not None or int(r["sb"]):
                multi.add(name)
        per_service = [
            ServiceStat(
                service_name=name,
                provider_id=pid,
                total=sum(counts.values()),
                completed=counts.get("completed", 0),
                open=sum(counts.get(s, 0) for s in OPEN_STATES),
                refunded=counts.get("refunded", 0),
                failed=counts.get("failed", 0),
                multi_pool=name in multi,
            )
            for (name, pid), counts in groups.items()
        ]
        per_service.sort(key=lambda st: (-st.total, st.service_name, st.provider_id or ""))
        spend_rows = await self.db.fetchall(
            "SELECT state, price FROM activations WHERE remote_id IS NOT NULL"
            " AND state IN ('completed', 'waiting', 'cancelling', 'expired')"
        )
        completed_spend = sum(
            (dec(r["price"]) for r in spend_rows if r["state"] == "completed"), Decimal(0)
        )
        open_spend = sum(
            (dec(r["price"]) for r in spend_rows if r["state"] != "completed"), Decimal(0)
        )
        strays = await self.repos.strays.summary()
        none = (0, Decimal(0))
        return Stats(
            users=await self.repos.users.count(),
            activations_by_state=await self.repos.activations.counts_by_state(),
            spend=sum(await self.repos.activations.settled_prices(), Decimal(0)),
            per_service=tuple(per_service),
            completed_spend=completed_spend,
            open_spend=open_spend,
            strays_cancelling=strays.get("cancelling", none),
            strays_refunded=strays.get("refunded", none),
            strays_lost=strays.get("lost", none),
        )

    # ------------------------------------------------------------------ testing aids
    def tracked(self) -> dict[int, str]:
        """Open activations the engine is working on (id -> state)."""
        return {t.id: t.state for t in self._tracks.values()}
