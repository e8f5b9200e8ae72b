"""The HTTP side of a :class:`~bot.daisysim.client.DaisySimClient`: one
:class:`httpx.AsyncClient` over an injectable transport, one total deadline per
exchange, the envelope decoded into ``data`` or a
:class:`~bot.daisysim.errors.DaisySimError`, and retries per the pure policy
:func:`bot.daisysim.retry.decide`, sleeping on the clock.

The API key is only ever put into the ``Authorization`` header: never into a
log line, a repr or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
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

__all__ = ["Wire", "segment"]

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


class Wire:
    """One HTTP connection pool to the API for one key."""

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
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.rng = rng
        # Set once the transport reports httpcore trace events: from then on a
        # request that timed out before its headers were written was not sent.
        self._traced = False
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "daisybot",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

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
            async with asyncio.timeout(self.timeout):
                response = await self._http.request(
                    method, path, json=json, params=params, extensions={"trace": probe.trace}
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

    __slots__ = ("_client", "_headers_started")

    def __init__(self, owner: Wire) -> None:
        self._client = owner
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


def segment(value: str) -> str:
    """One URL path segment."""
    return quote(value, safe="")
