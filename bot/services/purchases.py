"""Purchases and their reconciliation.

A purchase is first written as ``purchasing`` (with its request id and the
funding policy's hold) and committed, *then* sent. A lost response or a crash
leaves the row in ``purchasing``; it is reconciled through /history (the client's
``reconcile_purchase``) before the account buys the same service again, at
start-up and on a timer. Purchases are serialised per DaisySim account and
service so the reconciliation (service name, time window, ids not known yet) is
unambiguous; other services go ahead. A purchase left in doubt raises
PurchasePending; its outcome is a ``purchased`` or ``failed`` event. Purchases in
doubt stay watched for a late order afterwards (see :mod:`bot.services.sweep`).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from bot.daisysim import errors as ds
from bot.daisysim.client import DaisySimClient
from bot.daisysim.models import App, Purchase
from bot.domain.activation import ActivationState
from bot.domain.quoting import purchase_choice
from bot.services.accounts import Accounts
from bot.services.alerts import Alerts
from bot.services.api import (
    Activation,
    DuplicateRequest,
    EngineError,
    OperatorFundsLow,
    PriceChanged,
    PurchasePending,
    QuoteExpired,
    QuoteNotFound,
    SoldOut,
    TooBusy,
    UpstreamUnavailable,
)
from bot.services.cancels import AUTH_RETRY
from bot.services.catalogue import Catalogue
from bot.services.errors import map_error
from bot.services.outcomes import Outcomes
from bot.services.runtime import Runtime
from bot.services.timers import backoff
from bot.services.tracker import Tracker
from bot.services.tracking import Account, Track
from storage.quotes import QuoteRow
from storage.repositories import DuplicateError
from storage.rows import ActivationRow

__all__ = ["Purchases", "quote_request_id"]

logger = logging.getLogger("bot.services")

RECONCILE_LOOKBACK = 3600.0  # ids bought this long before a lost purchase are excluded
RECONCILE_SETTLE = 5.0  # after a crash, give the server this long before reading /history
RECONCILE_RETRY = 10.0  # while a lost purchase is in doubt, re-read /history this often

S = ActivationState


def quote_request_id(quote_id: int) -> str:
    """The purchase request id of a quote: one purchase per quote."""
    return f"quote:{quote_id}"


def _labels(row: ActivationRow | App) -> set[str]:
    """The ``service`` strings an order of this purchase may carry in /history."""
    if isinstance(row, App):
        return {row.code, row.name}
    return {row.service_code, row.service_name}


class Purchases:
    def __init__(
        self,
        rt: Runtime,
        accounts: Accounts,
        tracker: Tracker,
        outcomes: Outcomes,
        catalogue: Catalogue,
        *,
        alerts: Alerts | None = None,
    ) -> None:
        self.rt = rt
        self.alerts = alerts
        self.accounts = accounts
        self.tracker = tracker
        self.outcomes = outcomes
        self.catalogue = catalogue

    # ------------------------------------------------------------------ buying
    async def check_quote(self, user_id: int, quote_id: int) -> QuoteRow:
        """The stored quote if it can still be bought by this user, else raise
        QuoteNotFound / DuplicateRequest / QuoteExpired (with a fresh quote)."""
        rt = self.rt
        stored = await self.catalogue.stored(int(quote_id))
        if stored is None or stored.user_id != user_id:
            raise QuoteNotFound("no such quote")
        existing = await rt.repos.activations.by_request_id(quote_request_id(stored.id))
        if existing is not None or stored.consumed:
            raise self._duplicate(existing, user_id)
        if rt.clock.now() >= stored.expires_at:
            acc = await self.accounts.funding_account(user_id)
            raise QuoteExpired(
                "the quote expired",
                quote=await self.catalogue.requote(
                    user_id, acc, stored.service_code, stored.provider_id
                ),
            )
        return stored

    async def buy_quote(
        self, user_id: int, quote_id: int, *, chat_id: int | None, message_id: int | None
    ) -> Activation:
        stored = await self.check_quote(user_id, quote_id)
        request_id = quote_request_id(stored.id)
        return await self.buy(
            user_id, stored.service_code, stored.provider_id, stored.price,
            request_id=request_id, chat_id=chat_id, message_id=message_id,
            pool=stored.pool, quote_id=stored.id,
        )

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
        quote_id: int | None = None,
    ) -> Activation:
        rt = self.rt
        if not request_id:
            raise ValueError("request_id is required")
        await self.accounts.ensure_user(user_id)
        existing = await rt.repos.activations.by_request_id(request_id)
        if existing is not None:
            raise self._duplicate(existing, user_id)
        acc = await self.accounts.funding_account(user_id)
        client = self.accounts.require_client(acc)
        # Fresh prices: never the cache, which may predate a sell-out or a price rise.
        apps = await self.catalogue.apps(acc, force=True)
        app_info, service = self.catalogue.find_app(apps, app)
        choice = purchase_choice(service, provider_id, pool)
        pid, price = choice.pool, choice.price
        if price > max_price:
            raise PriceChanged(
                "the price went up",
                quote=await self.catalogue.quote_from(user_id, acc, apps, app, provider_id),
            )
        async with acc.purchase_lock(app_info.name):
            await self._reconcile_pending(acc, app_info)
            budget = client.limiter.purchase
            if budget.available() <= 0:
                raise TooBusy("purchase budget used up", retry_after=budget.wait_time())
            now = rt.clock.now()
            try:
                async with rt.db.transaction():
                    activation_id = await rt.repos.activations.insert_purchasing(
                        user_id=user_id, account_id=acc.id, service_code=app_info.code,
                        service_name=app_info.name,
                        # The user's choice (None: cheapest available); ``pid`` is bought.
                        provider_id=pid if provider_id is not None else None, price=price,
                        request_id=request_id, sent_at=now, chat_id=chat_id,
                        message_id=message_id if chat_id is not None else None,
                    )
                    if quote_id is not None and not await self.catalogue.quotes.consume(
                        quote_id, activation_id, now
                    ):
                        raise self._duplicate(None, user_id)  # rolled back: nothing written
                    await rt.policy.hold(user_id, activation_id, price)
            except DuplicateError:
                # The request id is taken. Looked up after the rollback: on PostgreSQL
                # the failed INSERT aborted the transaction (no statement runs in it).
                dup = await rt.repos.activations.by_request_id(request_id)
                raise self._duplicate(dup, user_id) from None
            track = self.tracker.new_purchase(activation_id, user_id, acc.id)
            row = await self._purchase(acc, client, track, app_info, pid, price)
        rt.notify()
        return rt.to_activation(row)

    def _duplicate(self, row: ActivationRow | None, user_id: int) -> DuplicateRequest:
        mine = row is not None and row.user_id == user_id
        return DuplicateRequest(
            "this purchase request was already made",
            activation=self.rt.to_activation(row) if mine and row is not None else None,
        )

    async def _purchase(
        self,
        acc: Account,
        client: DaisySimClient,
        track: Track,
        app_info: App,
        provider_id: str | None,
        price: Decimal,
    ) -> ActivationRow:
        rt = self.rt
        resolved = False
        try:
            exclude = await self.exclude_ids(acc, track.purchase_sent_at - RECONCILE_LOOKBACK)
            if client.limiter.purchase.available() <= 0:
                # Taken by a purchase of another service meanwhile (they run
                # concurrently): nothing was sent. No await between this check and
                # the client taking its slot.
                budget = client.limiter.purchase
                await self.outcomes.fail_purchase(
                    track.id, "purchase budget used up", emit=False
                )
                resolved = True
                raise TooBusy("purchase budget used up", retry_after=budget.wait_time())
            try:
                purchase = await self._send(client, app_info, provider_id, exclude)
            except ds.PurchaseOutcomeUnknown:
                logger.warning("activation %d: purchase outcome unknown; will reconcile", track.id)
                raise await self._pending_error(track.id) from None
            except ds.DaisySimError as err:
                # Not bought: refused, or the client reconciled a lost response and
                # /history showed no order (PurchaseFailed). That last one is not
                # proven (the server may finish it late): the sweep watches it.
                await self.outcomes.fail_purchase(
                    track.id, f"purchase refused: {err.code or type(err).__name__}", emit=False,
                    watch=isinstance(err, ds.PurchaseFailed),
                )
                resolved = True
                raise await self._refusal(
                    err, track.user_id, acc, app_info.code, provider_id, price
                ) from None
            try:
                row = await self.outcomes.settle_purchase(track.id, purchase)
            except Exception:
                logger.exception("activation %d: bought but not recorded yet", track.id)
                raise await self._pending_error(track.id) from None
            resolved = True
            logger.info(
                "activation %d: bought %s (%s)", track.id, app_info.code, acc.row.key_masked
            )
            if self.alerts is not None:
                await self.alerts.purchased(purchase.balance_after)
            return row
        finally:
            if not resolved:
                row_now = await rt.repos.activations.get(track.id)
                if row_now is not None and row_now.state == S.PURCHASING:
                    track.reconcile_at = rt.clock.now() + RECONCILE_SETTLE
                    self.tracker.schedule_act(track)

    async def _pending_error(self, activation_id: int) -> EngineError:
        row = await self.rt.repos.activations.get(activation_id)
        if row is None or row.state != S.PURCHASING:
            return UpstreamUnavailable("the purchase could not be completed")
        return PurchasePending(
            "DaisySim did not answer; the purchase is being reconciled",
            activation=self.rt.to_activation(row),
        )

    async def _send(
        self, client: DaisySimClient, app_info: App, provider_id: str | None, exclude: list[str]
    ) -> Purchase:
        attempts = 0
        while True:
            attempts += 1
            try:
                return await client.purchase(
                    self.rt.settings.daisysim_country, app_info.code, provider_id,
                    app_name=app_info.name, exclude_ids=exclude,
                )
            except ds.ConcurrentError:
                # Proven not applied ("retry immediately"): one more try if allowed.
                if attempts < 2 and client.limiter.purchase.available() > 0:
                    continue
                raise

    async def _refusal(
        self,
        err: ds.DaisySimError,
        user_id: int,
        acc: Account,
        app: str,
        provider_id: str | None,
        price: Decimal,
    ) -> Exception:
        if isinstance(err, ds.PurchaseFailed):
            return UpstreamUnavailable("DaisySim did not answer; nothing was bought")
        if isinstance(err, ds.OutOfStock):
            service = await self.catalogue.refreshed_service(acc, app)
            return SoldOut("no numbers in stock", service=service, pool=provider_id)
        if isinstance(err, ds.PriceVerificationFailed):
            return PriceChanged(
                "price verification failed",
                quote=await self.catalogue.requote(user_id, acc, app, provider_id),
            )
        if isinstance(err, ds.InsufficientBalance):
            short = await self.rt.policy.upstream_short(user_id, acc.client, price)
            if isinstance(short, OperatorFundsLow) and self.alerts is not None:
                await self.alerts.operator_empty()  # the admins' alert; the user: unavailable
            return short
        return map_error(err)

    # ------------------------------------------------------------------ reconciliation
    async def exclude_ids(self, acc: Account, since: float) -> list[str]:
        """Ids a reconciliation must never claim: the account's activations and the
        stray orders the sweep found."""
        known = await self.rt.repos.activations.known_remote_ids(acc.id, since)
        return known + await self.rt.repos.strays.ids(acc.id)

    async def _reconcile_pending(self, acc: Account, app_info: App) -> None:
        """Before buying a service on an account, resolve the purchases of the
        same service left in doubt, so that a later reconciliation is never
        ambiguous. Purchases of other services cannot be confused with this one
        (reconciliation matches the service): they do not hold it up."""
        labels = _labels(app_info)
        pending: list[Track] = []
        for t in list(self.rt.tracks.values()):
            if t.account_id != acc.id or t.state != S.PURCHASING:
                continue
            row = await self.rt.repos.activations.get(t.id)
            if row is not None and row.state == S.PURCHASING and _labels(row) & labels:
                pending.append(t)
        for track in sorted(pending, key=lambda t: t.id):
            track.reconcile_at = self.rt.clock.now()
            if not await self._reconcile_locked(track, acc):
                self.tracker.schedule_act(track)
                raise UpstreamUnavailable(
                    "an earlier purchase is still being reconciled with DaisySim"
                )

    async def reconcile(self, track: Track) -> None:
        """A ``purchasing`` track's timer: read /history for its order."""
        acc = await self.accounts.account(track.account_id)
        row = await self.rt.repos.activations.get(track.id)
        if row is None or row.state != S.PURCHASING:
            await self.tracker.sync(track.id)
            return
        lock = acc.purchase_lock(row.service_name)
        if lock.locked():  # a purchase of this service is on the wire: try again soon
            track.reconcile_at = self.rt.clock.now() + RECONCILE_SETTLE
            return
        async with lock:
            await self._reconcile_locked(track, acc)

    async def _reconcile_locked(self, track: Track, acc: Account) -> bool:
        """Resolve one ``purchasing`` row (account purchase lock held). True if
        resolved (waiting or failed)."""
        rt = self.rt
        row = await rt.repos.activations.get(track.id)
        if row is None or row.state != S.PURCHASING:
            await self.tracker.sync(track.id)
            return True
        if track.unrecorded is not None:
            await self.outcomes.settle_purchase(track.id, track.unrecorded, late=True)
            return True
        now = rt.clock.now()
        client = acc.client
        if client is None:
            track.reconcile_at = now + AUTH_RETRY
            return False
        exclude = await self.exclude_ids(acc, row.purchase_sent_at - RECONCILE_LOOKBACK)
        try:
            found = await client.reconcile_purchase(
                row.service_name, row.purchase_sent_at, exclude, app=row.service_code
            )
        except ds.DaisySimError as err:
            track.reconcile_failures += 1
            track.reconcile_at = rt.clock.now() + backoff(track.reconcile_failures, 10.0)
            logger.warning(
                "activation %d: purchase not reconciled yet (%s)", track.id, type(err).__name__
            )
            return False
        if found is None:
            deadline = row.purchase_sent_at + rt.purchase_settle
            if now < deadline:
                track.reconcile_at = min(deadline, now + RECONCILE_RETRY)
                logger.info("activation %d: no order in /history yet; checking again", track.id)
                return False
            logger.info("activation %d: reconciled: nothing was bought", track.id)
            # Not proven: DaisySim may still finish it. The sweep watches /history
            # for its order as long as such a number could exist.
            await self.outcomes.fail_purchase(
                track.id, "not bought (reconciled)", emit=True, watch=True
            )
        else:
            logger.info("activation %d: reconciled: the purchase went through", track.id)
            await self.outcomes.settle_purchase(track.id, found, late=True)
        return True
