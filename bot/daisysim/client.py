"""Async DaisySim client.

One :class:`httpx.AsyncClient` per :class:`DaisySimClient`; the transport is
injectable (``httpx.MockTransport``, an ASGI app, the real network).

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
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx

from bot.clock import Clock, SystemClock
from bot.daisysim.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    DaisySimError,
    MalformedResponse,
    OutOfStock,
    PurchaseFailed,
    PurchaseOutcomeUnknown,
    RateLimited,
    error_from_response,
)
from bot.daisysim.limits import Budget, KeyLimiter, get_limiter, key_fingerprint
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
    decode_json,
    parse_catalogue,
    parse_data,
    unwrap_success,
)
from bot.daisysim.retry import DEFAULT_MAX_ATTEMPTS, decide

__all__ = ["CHECK_ALL_MAX", "DEFAULT_BASE_URL", "DaisySimClient", "HistoryStatus", "mask_key"]

logger = logging.getLogger("bot.daisysim")

DEFAULT_BASE_URL = "https://daisysim.com/api/v1/server7"
CHECK_ALL_MAX = 20
HISTORY_MAX_PER_PAGE = 100
HistoryStatus = Literal["completed", "waiting", "cancelled"]
_HISTORY_STATUSES = ("completed", "waiting", "cancelled")

# Transport failures that happen before any byte of the request left.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)


_MAX_REJECTED_LOGGED = 256  # distinct (entry, reason) pairs remembered per client


def mask_key(api_key: str) -> str:
    """``"…9f2a"``: enough to tell keys apart, never the key."""
    return "…" + api_key[-4:] if len(api_key) >= 12 else "…"


class _Countries(_Model):
    countries: list[Country]


class DaisySimClient:
    """Typed async client for the DaisySim server7 API."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
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
        """
        if not api_key:
            raise ValueError("api_key is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not timeout > 0:
            raise ValueError("timeout (the total deadline of a request) must be > 0")
        self._api_key = api_key
        self._fingerprint = key_fingerprint(api_key)
        self.base_url = base_url.rstrip("/")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._limiter = limiter if limiter is not None else get_limiter(api_key, self._clock)
        self._tracker = self._limiter.purchases
        self._rng = rng if rng is not None else random.Random()
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._reconcile_window = reconcile_window
        self._reconcile_delay = reconcile_delay
        self._app_names: dict[tuple[str, str], str] = {}
        self._rejected_entries: set[tuple[str, str]] = set()
        # Set once the transport reports httpcore trace events: from then on a
        # request that timed out before its headers were written was not sent.
        self._traced = False
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "daisybot",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    # ------------------------------------------------------------------ lifecycle

    def __repr__(self) -> str:
        return f"DaisySimClient(base_url={self.base_url!r}, api_key={mask_key(self._api_key)!r})"

    @property
    def limiter(self) -> KeyLimiter:
        return self._limiter

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def key_fingerprint(self) -> str:
        return self._fingerprint

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ endpoints

    async def balance(self) -> Balance:
        data = await self._call("GET", "/balance")
        return parse_data(Balance, data)

    async def countries(self) -> list[Country]:
        data = await self._call("GET", "/countries")
        return parse_data(_Countries, data).countries

    async def apps(self, country: str = "USA") -> list[App]:
        """The catalogue. An entry (app, or one pool) whose fields do not validate
        (e.g. a price of 0, below zero or 1e30) is left out, logged once per
        client and entry."""
        data = await self._call("GET", f"/apps/{_seg(country)}")
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
        data = await self._call(
            "GET", f"/check/{_seg(str(activation_id))}", budget=self._limiter.check
        )
        return parse_data(CheckResult, data)

    async def check_all(self, ids: Iterable[str]) -> list[CheckResult]:
        """Batch poll (max 20 ids; more raises ValueError, the caller splits)."""
        id_list = [str(i) for i in ids]
        if len(id_list) > CHECK_ALL_MAX:
            raise ValueError(f"check_all takes at most {CHECK_ALL_MAX} ids, got {len(id_list)}")
        if not id_list:
            return []
        data = await self._call(
            "POST", "/check-all", budget=self._limiter.check, json={"ids": id_list}
        )
        result: list[CheckResult] = parse_data(list[CheckResult], data)
        return result

    async def cancel(self, activation_id: str) -> CancelResult:
        """Cancel with full refund. Raises TooEarly / CodeReceived / NotFound...;
        a lost response raises (APIConnectionError / ServerError): retry later."""
        data = await self._call(
            "POST",
            f"/cancel/{_seg(str(activation_id))}",
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
        data = await self._call("GET", "/history", params=params)
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
                data = await self._send_once("POST", "/purchase", budget=budget, json=body)
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
                    err, attempt, idempotent=False, rng=self._rng, max_attempts=self._max_attempts
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
        deadline = time.monotonic() + self._timeout + 5.0
        # Polling (not an Event): the tracker is shared by clients that may live
        # on different event loops; requests in flight finish in real time.
        while self._tracker.in_flight > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ plumbing

    async def _call(
        self,
        method: str,
        path: str,
        *,
        budget: Budget | None = None,
        idempotent: bool = True,
        json: Any = None,
        params: dict[str, str | int] | None = None,
    ) -> Any:
        attempt = 0
        while True:
            attempt += 1
            if budget is not None:
                await budget.acquire()
            try:
                return await self._send_once(method, path, budget=budget, json=json, params=params)
            except DaisySimError as err:
                delay = decide(
                    err,
                    attempt,
                    idempotent=idempotent,
                    rng=self._rng,
                    max_attempts=self._max_attempts,
                )
                if delay is None:
                    raise
                logger.info(
                    "%s %s: %s, retry %d in %.2fs",
                    method, path, type(err).__name__, attempt, delay,
                )
                await self._clock.sleep(delay)

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        budget: Budget | None,
        json: Any = None,
        params: dict[str, str | int] | None = None,
    ) -> Any:
        """One HTTP exchange -> the envelope's ``data``, or a DaisySimError.

        The whole exchange (pool wait, connect, writing the request, reading the
        headers and the whole body) has one deadline of ``timeout`` seconds
        (httpx's own timeouts bound only each phase / each gap between reads, so
        a body trickled one byte a second would never time out). Past it:
        :class:`APITimeoutError`, ``request_sent`` True unless the transport's
        trace shows the request headers were never started."""
        started = time.perf_counter()
        probe = _SendProbe(self)
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.request(
                    method, path, json=json, params=params, extensions={"trace": probe.trace}
                )
        except TimeoutError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            logger.warning(
                "%s %s -> deadline of %.1f s passed after %.0f ms",
                method, path, self._timeout, elapsed,
            )
            raise APITimeoutError(
                f"deadline passed on {method} {path}", request_sent=probe.maybe_sent()
            ) from exc
        except httpx.RequestError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            sent = not isinstance(exc, _NOT_SENT)
            logger.warning(
                "%s %s -> %s after %.0f ms", method, path, type(exc).__name__, elapsed
            )
            message = f"{type(exc).__name__} on {method} {path}"
            if isinstance(exc, httpx.TimeoutException):
                raise APITimeoutError(message, request_sent=sent) from exc
            raise APIConnectionError(message, request_sent=sent) from exc
        elapsed = (time.perf_counter() - started) * 1000
        status = response.status_code
        logger.debug("%s %s -> %d in %.0f ms", method, path, status, elapsed)

        error: APIError | None = None
        if 200 <= status < 300:
            try:
                payload = decode_json(response.content)
            except MalformedResponse as exc:
                exc.status = status
                raise
            if isinstance(payload, dict) and payload.get("success") is False:
                error = error_from_response(status, payload, response.headers)
            else:
                try:
                    return unwrap_success(payload)
                except MalformedResponse as exc:
                    exc.status = status
                    raise
        else:
            error = error_from_response(status, response.content, response.headers)
        if isinstance(error, RateLimited) and budget is not None and error.retry_after:
            budget.block_for(error.retry_after)
        raise error


class _SendProbe:
    """httpcore trace events of one request: did its bytes start to leave?"""

    __slots__ = ("_client", "_headers_started")

    def __init__(self, client: DaisySimClient) -> None:
        self._client = client
        self._headers_started = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        self._client._traced = True
        if event.endswith(".send_request_headers.started"):
            self._headers_started = True

    def maybe_sent(self) -> bool:
        """False only when the transport is known to trace (httpcore) and this
        request never began writing its headers (waiting for the pool, DNS, TCP
        or TLS): then the server cannot have seen it. Unknown counts as sent."""
        return self._headers_started or not self._client._traced


def _seg(value: str) -> str:
    """One URL path segment."""
    return quote(value, safe="")


def _maybe_applied(err: DaisySimError) -> bool:
    """Could the purchase have happened although we did not get its answer?"""
    if isinstance(err, APIConnectionError):
        return err.request_sent
    if isinstance(err, MalformedResponse):
        return True  # a 2xx whose body we cannot read
    if isinstance(err, APIError) and not isinstance(err, OutOfStock):
        return err.status is not None and err.status >= 500
    return False
