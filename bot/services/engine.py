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

Durability: every state change is one named Step of
:data:`bot.domain.activation.TRANSITIONS`, a guarded ``UPDATE … WHERE state IN
(…)`` written in one transaction with its ledger entries and its outbox event
(:mod:`~bot.services.outcomes`); final states are protected by a trigger. A
purchase is written (and its price held) before it is sent, and reconciled
through /history when its answer is lost (:mod:`~bot.services.purchases`); a
cancel is recorded before it is sent and retried until DaisySim answers
(:mod:`~bot.services.cancels`). Money rules: :mod:`bot.domain.funding`. Events
and their delivery: :mod:`~bot.services.outbox`.

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
from bot.daisysim.wire import Pool
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
from bot.services.crypto import ConfigurationError, KeyVault
from bot.services.engine_admin import AdminTools, TopUpDesk
from bot.services.funding import StoredPolicy, funding_policy
from bot.services.inspect import Inspector
from bot.services.runtime import Runtime
from bot.services.timers import Timers, Waker
from bot.services.wiring import Services
from storage import open_database
from storage.db import Database
from storage.repositories import Repositories

__all__ = ["ConfigurationError", "Engine"]

logger = logging.getLogger("bot.services")

MAX_PASSES = 20  # run_due: passes over timers that became due while working


class Engine(AdminTools, TopUpDesk):
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
        self._pool: Pool | None = None  # made with the first client, shared by all
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
        self._alert_listener: Callable[[], None] | None = None
        self._s: Services | None = None
        self._run_lock = asyncio.Lock()
        self._in_run: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"engine_run_{id(self)}", default=False
        )
        self._rerun = False
        self.inspect = Inspector(lambda: self._s)

    def pool(self) -> Pool:
        """The one DaisySim connection pool of every key (made on first use)."""
        if self._pool is None or self._pool.closed:
            self._pool = Pool(
                self.settings.daisysim_base_url,
                transport=self._transport,
                timeout=self.settings.daisysim_timeout_seconds,
                max_connections=self.settings.daisysim_max_connections,
                keepalive=self.settings.daisysim_keepalive_seconds,
            )
        return self._pool

    def _default_client(self, api_key: str) -> DaisySimClient:
        # No hidden retries/sleeps inside the client: the engine schedules its own
        # retries (a sleep on a VirtualClock would also block until time moves).
        return DaisySimClient(
            api_key,
            clock=self.clock,
            pool=self.pool(),
            timeout=self.settings.daisysim_timeout_seconds,
            max_attempts=1,
            reconcile_delay=0.0 if isinstance(self.clock, VirtualClock) else 2.0,
        )

    @property
    def services(self) -> Services:
        if self._s is None:
            raise RuntimeError("Engine.start() has not been called")
        return self._s

    @property
    def database(self) -> Database:
        """The engine's own connection: the health probe writes through it, so a
        locked or full database shows up exactly as the engine would meet it."""
        return self.services.rt.db

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._s is not None:
            return
        if self._db is None:
            self._db = await open_database(self.settings.database_target)
        repos = Repositories(self._db)
        rt = Runtime(
            self.settings, self.clock, self._db, repos, self.policy, self._timers, self._waker
        )
        accounts = Accounts(
            rt, client_factory=self._client_factory, vault=self._vault,
            shared_transport=self._transport is not None,
        )
        s = Services(rt, accounts)
        s.alerts.set_listener(self._alert_listener)
        await s.load(self._handler)
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
            pool, self._pool = self._pool, None
            if pool is not None and self._transport is None:
                # An injected transport is the caller's (it may serve a next engine).
                await pool.aclose()
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
                    await self._s.run(keys, now)
            finally:
                self._in_run.reset(token)
        due = self.next_due()
        self._waker.reported = due
        return due

    # ================================================================== public API
    @property
    def users_bring_keys(self) -> bool:
        return self.policy.users_bring_keys

    def is_admin(self, user_id: int) -> bool:
        return Accounts.is_admin(self.settings, user_id)

    async def ensure_user(
        self, user_id: int, *, locale: str | None = None, seen: bool = False
    ) -> str | None:
        return await self.services.accounts.ensure_user(user_id, locale=locale, seen=seen)

    async def choose_locale(self, user_id: int, locale: str) -> None:
        await self.services.accounts.choose_locale(user_id, locale)

    async def user_locale(self, user_id: int) -> str | None:
        return await self.services.accounts.user_locale(user_id)

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

    async def check_quote(self, user_id: int, quote_id: int) -> Quote:
        row = await self.services.purchases.check_quote(user_id, quote_id)
        return await self.services.catalogue.shown(user_id, row)

    async def withdraw_quotes(self, user_id: int) -> None:
        await self.services.catalogue.withdraw(user_id)

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

    def set_alert_listener(self, listener: Callable[[], None] | None) -> None:
        self._alert_listener = listener
        if self._s is not None:
            self._s.alerts.set_listener(listener)
