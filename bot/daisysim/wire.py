"""The HTTP side of a :class:`~bot.daisysim.client.DaisySimClient`: a
:class:`Pool` (a bounded set of sockets spread over a few httpx clients on an
injectable transport, one SSL context) shared by the wires of every key, one
total deadline per exchange, the envelope decoded into ``data`` or a
:class:`~bot.daisysim.errors.DaisySimError`, and retries per the pure policy
:func:`bot.daisysim.retry.decide`, sleeping on the clock.

The pool carries no key: each :class:`Wire` sends its key as the
``Authorization`` header of its own requests (the API authenticates per
request), so thousands of own-key accounts share one bounded set of sockets.
The API key is only ever put into that header: never into a log line, a repr
or an exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from bot.clock import Clock
from bot.daisysim.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    DaisySimError,
    MalformedResponse,
    RateLimited,
    error_from_response,
)
from bot.daisysim.limits import Budget
from bot.daisysim.models import decode_json, unwrap_success
from bot.daisysim.retry import decide

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_MAX_CONNECTIONS",
    "SHARD_CONNECTIONS",
    "Pool",
    "Wire",
    "segment",
]

logger = logging.getLogger("bot.daisysim")

# Transport failures that happen before any byte of the request left.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)


DEFAULT_MAX_CONNECTIONS = 64  # sockets to the API, for every key together
# Idle connections are kept this long: more than the 15-s poll interval, so each
# account's next round finds a warm connection (no new TCP + TLS handshake).
DEFAULT_KEEPALIVE = 60.0
# Sockets per httpx client inside the pool. httpcore scans every pooled connection
# (a poll() syscall per idle one) at the start and end of each request, so one
# client of 64 sockets cost ~11 ms of CPU per request where clients of 8 cost
# ~1.3 ms (measured, 64 requests at once); the pool spreads its bound over
# clients of this size that share one SSL context.
SHARD_CONNECTIONS = 8


class _Shard:
    __slots__ = ("busy", "http", "size")

    def __init__(self, http: httpx.AsyncClient, size: int) -> None:
        self.http = http
        self.size = size
        self.busy = 0


class Pool:
    """The HTTP connections (and the one SSL context) to the API, shared by the
    :class:`Wire` of every key. At most ``max_connections`` sockets are open, in
    httpx clients of :data:`SHARD_CONNECTIONS` each; a request beyond the bound
    waits for a free slot (within its own deadline, and counted as not sent) and
    then goes to the least busy client, so none of them ever queues. Idle
    sockets live ``keepalive`` seconds.

    ``transport`` (tests: ``httpx.MockTransport``, an ASGI app) replaces the
    network (one client over it); :meth:`aclose` closes it too."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        keepalive: float = DEFAULT_KEEPALIVE,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if not keepalive > 0:
            raise ValueError("keepalive must be > 0")
        self.base_url = base_url.rstrip("/")
        self.max_connections = max_connections
        self.keepalive = keepalive
        self.rng = random.Random()  # retry jitter of the wires that share this pool
        # Requests beyond the socket bound wait here, not in httpcore's queue.
        self.slots = asyncio.Semaphore(max_connections)
        # Set once the transport reports httpcore trace events: from then on a
        # request that timed out before its headers were written was not sent.
        self.traced = False
        if transport is not None:
            sizes = [max_connections]
            verify: ssl.SSLContext | bool = True
        else:
            full, rest = divmod(max_connections, SHARD_CONNECTIONS)
            sizes = [SHARD_CONNECTIONS] * full + ([rest] if rest else [])
            verify = httpx.create_ssl_context()  # one for every socket
        self._shards = [
            _Shard(httpx.AsyncClient(
                base_url=self.base_url,
                headers={"Accept": "application/json", "User-Agent": "daisybot"},
                timeout=httpx.Timeout(timeout),
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=size,
                    keepalive_expiry=keepalive,
                ),
                transport=transport,
                verify=verify,
                follow_redirects=False,
            ), size)
            for size in sizes
        ]

    def __repr__(self) -> str:
        return f"Pool(base_url={self.base_url!r}, max_connections={self.max_connections})"

    @property
    def clients(self) -> list[httpx.AsyncClient]:
        """The httpx clients the sockets are spread over."""
        return [shard.http for shard in self._shards]

    @property
    def closed(self) -> bool:
        return self._shards[0].http.is_closed

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        """A slot under the bound and the least busy client to use it on."""
        async with self.slots:
            shard = min(self._shards, key=lambda s: s.busy / s.size)
            shard.busy += 1
            try:
                yield shard.http
            finally:
                shard.busy -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.http.aclose()


class Wire:
    """The requests of one key, over a shared :class:`Pool` (or a pool of its
    own, closed with it, when none is given)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None,
        timeout: float,
        max_attempts: int,
        rng: random.Random,
        pool: Pool | None = None,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.rng = rng
        self._owns_pool = pool is None
        if pool is None:
            pool = Pool(base_url, transport=transport, timeout=timeout)
        elif transport is not None:
            raise ValueError("give the transport to the shared pool, not to one wire")
        self.pool = pool
        self._auth = {"Authorization": f"Bearer {api_key}"}

    def __repr__(self) -> str:
        return f"Wire(pool={self.pool!r})"

    async def aclose(self) -> None:
        """Closes the pool only if this wire made it (a shared one is its owner's)."""
        if self._owns_pool:
            await self.pool.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        budget: Budget | None = None,
        idempotent: bool = True,
        json: Any = None,
        params: dict[str, str | int] | None = None,
    ) -> Any:
        """The envelope's ``data``, taking a slot of ``budget`` per attempt and
        retrying as :func:`~bot.daisysim.retry.decide` says (a non-idempotent
        call only on answers that prove nothing happened)."""
        attempt = 0
        while True:
            attempt += 1
            if budget is not None:
                await budget.acquire()
            try:
                return await self.send_once(method, path, budget=budget, json=json, params=params)
            except DaisySimError as err:
                delay = decide(
                    err,
                    attempt,
                    idempotent=idempotent,
                    rng=self.rng,
                    max_attempts=self.max_attempts,
                )
                if delay is None:
                    raise
                logger.info(
                    "%s %s: %s, retry %d in %.2fs",
                    method, path, type(err).__name__, attempt, delay,
                )
                await self.clock.sleep(delay)

    async def send_once(
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
            async with asyncio.timeout(self.timeout), self.pool.client() as http:
                response = await http.request(
                    method, path, json=json, params=params, headers=self._auth,
                    extensions={"trace": probe.trace},
                )
        except TimeoutError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            logger.warning(
                "%s %s -> deadline of %.1f s passed after %.0f ms",
                method, path, self.timeout, elapsed,
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

    __slots__ = ("_headers_started", "_pool")

    def __init__(self, owner: Wire) -> None:
        self._pool = owner.pool
        self._headers_started = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        self._pool.traced = True
        if event.endswith(".send_request_headers.started"):
            self._headers_started = True

    def maybe_sent(self) -> bool:
        """False only when the transport is known to trace (httpcore) and this
        request never began writing its headers (waiting for the pool, DNS, TCP
        or TLS): then the server cannot have seen it. Unknown counts as sent."""
        return self._headers_started or not self._pool.traced


def segment(value: str) -> str:
    """One URL path segment."""
    return quote(value, safe="")
