"""Async DaisySim client: the endpoints, and purchase recovery.

The HTTP exchange, the deadline, the envelope and the retries are the
:class:`~bot.daisysim.wire.Wire`'s. Clients of many keys share one
:class:`~bot.daisysim.wire.Pool` (one :class:`httpx.AsyncClient`: one bounded
connection pool and one SSL context; each request carries its own key); a
client made without one has a pool of its own. The transport is injectable
(``httpx.MockTransport``, an ASGI app, the real network).

* Every call to a limited endpoint first takes a slot from the key's shared
  :class:`~bot.daisysim.limits.KeyLimiter` (check and check-all share one
  budget), so the client itself never causes a 429. A 429 still received
  (the key is used elsewhere) blocks that budget for ``retry_after``.
* Every HTTP exchange has one total deadline of ``timeout`` seconds (connect,
  write, headers and the whole body; a slow-loris body cannot stretch it):
  past it :class:`~bot.daisysim.errors.APITimeoutError`, with ``request_sent``
  False only when the request provably never started to leave.
* Money is bounded at parsing (:mod:`bot.daisysim.models`): an /apps entry with
  an absurd price is left out (logged once); a purchase answer that does not
  validate (e.g. ``amount_charged`` 0 or 1e30) is treated like a lost answer.
* Idempotent calls (balance, countries, apps, check, check-all, history) are
  retried per :func:`bot.daisysim.retry.decide`, sleeping on the clock.
* ``purchase`` and ``cancel`` are only retried on answers that prove nothing
  happened (RATE_LIMITED, CONCURRENT_ERROR). A purchase whose response is lost
  (the request may have reached the server: read/write timeout, connection
  reset, a 5xx other than OUT_OF_STOCK, an unreadable 2xx body) is reconciled
  through ``/history``:

  - an order "of this service" has ``service`` equal to the ``app_name`` sent,
    or (no ``app_name`` sent) to the app code or the service's display name
    from /apps (the server's default label is not pinned down by the spec);
  - exactly one unknown order of this service created at or after
    ``sent_at - reconcile_window`` -> returned as ``Purchase(reconciled=True,
    balance_after=None)``;
  - several -> the oldest one is taken (a warning is logged): the others belong
    to purchases made elsewhere with the same key, which learn their own ids;
  - none, after the server answered with an error status ->
    :class:`~bot.daisysim.errors.PurchaseFailed` (nothing was bought);
  - none, after a timeout or reset (no answer: the server may still be
    working on it), or after a 2xx answer that did not validate, or /history
    unreachable ->
    :class:`~bot.daisysim.errors.PurchaseOutcomeUnknown`: the caller keeps the
    purchase open and calls :meth:`DaisySimClient.reconcile_purchase` again
    until well past the request timeout.

  Ids returned by purchases of this process (for the same key) are excluded
  automatically, and reconciliation waits for this key's other purchase
  requests still on the wire, so two concurrent purchases of one service in
  one process cannot claim the same number. Ids known from elsewhere (e.g. the
  database after a restart) are passed as ``exclude_ids``.

  A cancel whose response is lost raises (never treated as a success): the
  caller retries later, and the server never refunds twice.

The API key never appears in logs, reprs or exception messages.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Collection, Iterable
from typing import Literal, Self

import httpx

from bot.clock import Clock, SystemClock
from bot.daisysim.errors import (
    APIConnectionError,
    APIError,
    DaisySimError,
    MalformedResponse,
    OutOfStock,
    PurchaseFailed,
    PurchaseOutcomeUnknown,
)
from bot.daisysim.keys import key_fingerprint
from bot.daisysim.limits import KeyLimiter, get_limiter
from bot.daisysim.models import (
    App,
    Balance,
    CancelResult,
    CheckResult,
    Country,
    HistoryPage,
    Order,
    Purchase,
    _Model,
    parse_catalogue,
    parse_data,
)
from bot.daisysim.retry import DEFAULT_MAX_ATTEMPTS, decide
from bot.daisysim.wire import Pool, Wire, segment

__all__ = [
    "CHECK_ALL_MAX",
    "DEFAULT_BASE_URL",
    "HISTORY_MAX_PER_PAGE",
    "DaisySimClient",
    "HistoryStatus",
]

logger = logging.getLogger("bot.daisysim")

DEFAULT_BASE_URL = "https://daisysim.com/api/v1/server7"
CHECK_ALL_MAX = 20
HISTORY_MAX_PER_PAGE = 100
HistoryStatus = Literal["completed", "waiting", "cancelled"]
_HISTORY_STATUSES = ("completed", "waiting", "cancelled")
_MAX_REJECTED_LOGGED = 256  # distinct (entry, reason) pairs remembered per client


class _Countries(_Model):
    countries: list[Country]


class DaisySimClient:
    """Typed async client for the DaisySim server7 API."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pool: Pool | None = None,
        timeout: float = 20.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        limiter: KeyLimiter | None = None,
        rng: random.Random | None = None,
        reconcile_window: float = 10.0,
        reconcile_delay: float = 2.0,
    ) -> None:
        """
        ``reconcile_window``: orders created up to this many seconds before the
        lost purchase was sent still count as candidates (clock skew).
        ``reconcile_delay``: after a timeout / dropped connection the server may
        still be working on the purchase; wait this long (on ``clock``) before
        reading /history.
        ``pool``: the shared connection pool (its base URL and transport are
        used; ``base_url`` and ``transport`` are then not given). Without it the
        client has a pool of its own, closed by :meth:`aclose`.
        """
        if not api_key:
            raise ValueError("api_key is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not timeout > 0:
            raise ValueError("timeout (the total deadline of a request) must be > 0")
        if pool is not None and base_url is not None and base_url.rstrip("/") != pool.base_url:
            raise ValueError("base_url differs from the shared pool's")
        self._fingerprint = key_fingerprint(api_key)
        if pool is not None:
            self.base_url = pool.base_url
        else:
            self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._limiter = limiter if limiter is not None else get_limiter(api_key, self._clock)
        self._tracker = self._limiter.purchases
        self._reconcile_window = reconcile_window
        self._reconcile_delay = reconcile_delay
        self._app_names: dict[tuple[str, str], str] = {}
        self._rejected_entries: set[tuple[str, str]] = set()
        self._wire = Wire(
            api_key,
            base_url=self.base_url,
            clock=self._clock,
            transport=transport,
            timeout=timeout,
            max_attempts=max_attempts,
            # Jitter only: clients of a shared pool share its generator (a
            # Mersenne Twister holds 2.5 KB of state; 10,000 keys, 25 MB).
            rng=rng if rng is not None else pool.rng if pool is not None else random.Random(),
            pool=pool,
        )

    # ------------------------------------------------------------------ lifecycle

    def __repr__(self) -> str:
        return f"DaisySimClient(base_url={self.base_url!r}, key={self._fingerprint!r})"

    @property
    def limiter(self) -> KeyLimiter:
        return self._limiter

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def pool(self) -> Pool:
        """The connection pool this client's requests go through."""
        return self._wire.pool

    @property
    def key_fingerprint(self) -> str:
        """The key's log-safe id (:func:`bot.daisysim.keys.key_fingerprint`)."""
        return self._fingerprint

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ endpoints

    async def balance(self) -> Balance:
        data = await self._wire.call("GET", "/balance")
        return parse_data(Balance, data)

    async def countries(self) -> list[Country]:
        data = await self._wire.call("GET", "/countries")
        return parse_data(_Countries, data).countries

    async def apps(self, country: str = "USA") -> list[App]:
        """The catalogue. An entry (app, or one pool) whose fields do not validate
        (e.g. a price of 0, below zero or 1e30) is left out, logged once per
        client and entry."""
        data = await self._wire.call("GET", f"/apps/{segment(country)}")
        result, rejected = parse_catalogue(data)
        for entry, reason in rejected:
            if (entry, reason) in self._rejected_entries:
                continue
            if len(self._rejected_entries) < _MAX_REJECTED_LOGGED:
                self._rejected_entries.add((entry, reason))
            logger.warning("/apps: entry %r left out: %s", entry, reason)
        for app in result:  # service code -> display name, for reconciliation
            self._app_names[(country, app.code)] = app.name
        return result

    async def check(self, activation_id: str) -> CheckResult:
        data = await self._wire.call(
            "GET", f"/check/{segment(str(activation_id))}", budget=self._limiter.check
        )
        return parse_data(CheckResult, data)

    async def check_all(self, ids: Iterable[str]) -> list[CheckResult]:
        """Batch poll (max 20 ids; more raises ValueError, the caller splits)."""
        id_list = [str(i) for i in ids]
        if len(id_list) > CHECK_ALL_MAX:
            raise ValueError(f"check_all takes at most {CHECK_ALL_MAX} ids, got {len(id_list)}")
        if not id_list:
            return []
        data = await self._wire.call(
            "POST", "/check-all", budget=self._limiter.check, json={"ids": id_list}
        )
        result: list[CheckResult] = parse_data(list[CheckResult], data)
        return result

    async def cancel(self, activation_id: str) -> CancelResult:
        """Cancel with full refund. Raises TooEarly / CodeReceived / NotFound...;
        a lost response raises (APIConnectionError / ServerError): retry later."""
        data = await self._wire.call(
            "POST",
            f"/cancel/{segment(str(activation_id))}",
            budget=self._limiter.cancel,
            idempotent=False,
        )
        return parse_data(CancelResult, data)

    async def history(
        self, status: HistoryStatus | None = None, per_page: int = 20, page: int = 1
    ) -> HistoryPage:
        if status is not None and status not in _HISTORY_STATUSES:
            raise ValueError(f"status must be one of {_HISTORY_STATUSES} or None")
        if not 1 <= per_page <= HISTORY_MAX_PER_PAGE:
            raise ValueError(f"per_page must be in 1..{HISTORY_MAX_PER_PAGE}")
        if page < 1:
            raise ValueError("page must be >= 1")
        params: dict[str, str | int] = {"per_page": per_page, "page": page}
        if status is not None:
            params["status"] = status
        data = await self._wire.call("GET", "/history", params=params)
        return parse_data(HistoryPage, data)

    async def iter_history(
        self, status: HistoryStatus | None = None, per_page: int = HISTORY_MAX_PER_PAGE
    ) -> AsyncIterator[Order]:
        """Every order, newest first, walking pages up to ``pagination.last_page``.
        An order that moves to the next page while walking is yielded once."""
        seen: set[str] = set()
        page = 1
        while True:
            result = await self.history(status=status, per_page=per_page, page=page)
            for order in result.orders:
                if order.activation_id not in seen:
                    seen.add(order.activation_id)
                    yield order
            if not result.orders or page >= result.pagination.last_page:
                return
            page += 1

    async def purchase(
        self,
        country: str,
        app: str,
        provider_id: str | None = None,
        app_name: str | None = None,
        country_name: str | None = None,
        *,
        exclude_ids: Collection[str] = (),
    ) -> Purchase:
        """Buy a number. Never retried blindly (see the module docstring).

        Outcomes: a :class:`Purchase` (bought; ``reconciled=True`` if recovered
        via /history); :class:`PurchaseOutcomeUnknown` (maybe bought, reconcile
        later); any other :class:`DaisySimError` (nothing was bought —
        including :class:`PurchaseFailed` after a lost response).
        """
        body: dict[str, str] = {"country": country, "app": app}
        if provider_id is not None:
            body["provider_id"] = str(provider_id)
        if app_name is not None:
            body["app_name"] = app_name
        if country_name is not None:
            body["country_name"] = country_name
        budget = self._limiter.purchase
        attempt = 0
        while True:
            attempt += 1
            await budget.acquire()
            sent_at = self._clock.now()
            self._tracker.in_flight += 1
            try:
                data = await self._wire.send_once("POST", "/purchase", budget=budget, json=body)
                purchase: Purchase = parse_data(Purchase, data)
            except DaisySimError as err:
                self._tracker.in_flight -= 1
                if _maybe_applied(err):
                    return await self._recover_purchase(
                        err,
                        country=country,
                        sent_at=sent_at,
                        app=app,
                        app_name=app_name,
                        exclude_ids=exclude_ids,
                    )
                delay = decide(
                    err,
                    attempt,
                    idempotent=False,
                    rng=self._wire.rng,
                    max_attempts=self._wire.max_attempts,
                )
                if delay is None:
                    raise
                await self._clock.sleep(delay)
                continue
            except BaseException:
                self._tracker.in_flight -= 1
                raise
            self._tracker.in_flight -= 1
            self._tracker.remember(purchase.activation_id)
            return purchase

    async def reconcile_purchase(
        self,
        app_name: str,
        sent_at: float,
        exclude_ids: Collection[str] = (),
        *,
        app: str | None = None,
    ) -> Purchase | None:
        """Find the order of a purchase whose response was lost (e.g. one left in
        ``purchasing`` by a restart): an order created at or after ``sent_at -
        reconcile_window`` whose service is ``app_name`` (or ``app``) and whose id
        is neither in ``exclude_ids`` nor already handed out by this process.
        Returns it (``reconciled=True``) or None if there is none. Raises
        :class:`PurchaseOutcomeUnknown` if /history cannot be read."""
        try:
            labels = {app_name} if app is None else {app_name, app}
            return await self._reconcile(labels, sent_at, exclude_ids)
        except DaisySimError as err:
            raise PurchaseOutcomeUnknown(
                f"cannot read /history to reconcile the purchase: {err.message}",
                sent_at=sent_at,
                app=app or app_name,
                app_name=app_name,
                cause=err,
            ) from err

    # ------------------------------------------------------------------ purchase recovery

    async def _labels(self, country: str, app: str, app_name: str | None) -> set[str]:
        """The ``service`` strings the lost order may carry. Without an explicit
        ``app_name`` the server labels the order itself: the spec says with the
        app code, but it may use the display name (the spec's own example shows
        "WhatsApp 3" for ``sb_wa``), so both are accepted; the name comes from
        the last /apps answer, or a fresh one."""
        if app_name is not None:
            return {app, app_name}
        name = self._app_names.get((country, app))
        if name is None:
            await self.apps(country)
            name = self._app_names.get((country, app))
        return {app} if name is None else {app, name}

    async def _recover_purchase(
        self,
        err: DaisySimError,
        *,
        country: str,
        sent_at: float,
        app: str,
        app_name: str | None,
        exclude_ids: Collection[str],
    ) -> Purchase:
        logger.warning(
            "purchase response lost (%s); reconciling through /history", type(err).__name__
        )
        if isinstance(err, APIConnectionError) and self._reconcile_delay > 0:
            await self._clock.sleep(self._reconcile_delay)
        try:
            labels = await self._labels(country, app, app_name)
            found = await self._reconcile(labels, sent_at, exclude_ids)
        except DaisySimError as history_err:
            raise PurchaseOutcomeUnknown(
                f"purchase outcome unknown ({type(err).__name__}) and /history unreadable "
                f"({type(history_err).__name__})",
                sent_at=sent_at,
                app=app,
                app_name=app_name,
                cause=err,
            ) from err
        if found is None:
            if isinstance(err, APIConnectionError | MalformedResponse):
                # The request went out and no (readable) answer came back: the server
                # may still be working on it, or answered 2xx with a body that does not
                # validate (e.g. amount_charged 0 or 1e30: it did sell something), so
                # an empty /history now proves nothing. The caller keeps the purchase
                # open and reconciles again later.
                logger.info("reconciliation: no order yet; outcome still unknown")
                raise PurchaseOutcomeUnknown(
                    f"purchase response lost ({type(err).__name__}) and no order in "
                    "/history yet",
                    sent_at=sent_at,
                    app=app,
                    app_name=app_name,
                    cause=err,
                ) from err
            # The server answered (an error status after the request was processed):
            # its /history is authoritative now.
            logger.info("reconciliation: no order found, nothing was bought")
            raise PurchaseFailed(err) from err
        logger.info("reconciliation: purchase recovered from /history")
        return found

    async def _reconcile(
        self, labels: set[str], sent_at: float, exclude_ids: Collection[str]
    ) -> Purchase | None:
        await self._wait_for_other_purchases()
        since = sent_at - self._reconcile_window
        candidates: dict[str, Order] = {}
        page = 1
        while True:
            result = await self.history(per_page=HISTORY_MAX_PER_PAGE, page=page)
            older_seen = False
            for order in result.orders:
                if order.created_at.timestamp() < since:
                    older_seen = True
                    continue
                if order.service in labels:
                    candidates[order.activation_id] = order
            if older_seen or not result.orders or page >= result.pagination.last_page:
                break
            page += 1
        # Decided synchronously after the walk, so concurrent reconciliations in
        # this process cannot claim the same id.
        excluded = set(exclude_ids) | set(self._tracker.known)
        unknown = [o for o in candidates.values() if o.activation_id not in excluded]
        if not unknown:
            return None
        unknown.sort(key=lambda o: (o.created_at, o.activation_id))
        if len(unknown) > 1:
            logger.warning(
                "reconciliation: %d candidate orders for one lost purchase; taking the oldest",
                len(unknown),
            )
        order = unknown[0]
        self._tracker.remember(order.activation_id)
        return Purchase(
            activation_id=order.activation_id,
            phone_number=order.phone_number,
            service=order.service,
            country=order.country,
            amount_charged=order.amount_charged,
            balance_after=None,
            reconciled=True,
        )

    async def _wait_for_other_purchases(self) -> None:
        """Let this key's other purchase requests on the wire finish (their ids
        become known) before choosing; bounded by the request timeout."""
        deadline = time.monotonic() + self._wire.timeout + 5.0
        # Polling (not an Event): the tracker is shared by clients that may live
        # on different event loops; requests in flight finish in real time.
        while self._tracker.in_flight > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

def _maybe_applied(err: DaisySimError) -> bool:
    """Could the purchase have happened although we did not get its answer?"""
    if isinstance(err, APIConnectionError):
        return err.request_sent
    if isinstance(err, MalformedResponse):
        return True  # a 2xx whose body we cannot read
    if isinstance(err, APIError) and not isinstance(err, OutOfStock):
        return err.status is not None and err.status >= 500
    return False
