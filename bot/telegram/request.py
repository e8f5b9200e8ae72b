"""The HTTP transport between python-telegram-bot and the Bot API.

:class:`AiohttpRequest` is a PTB :class:`~telegram.request.BaseRequest` on aiohttp,
behaving like PTB's own :class:`~telegram.request.HTTPXRequest` (same constructor
arguments, same per-call timeouts with ``DEFAULT_NONE`` meaning "the object's
default", same exceptions), at about an eighth of its CPU per request (see
``python -m tests.bench.update_cost``): httpcore scans its whole connection pool and
polls every pooled socket on each request, aiohttp hands out a free keep-alive
connection at once; the parameters go as one JSON body (the Bot API takes one)
rather than form-quoted. Status codes and the JSON answer are still handled by
``BaseRequest`` (``RetryAfter``, ``BadRequest``, ...).

* Timeouts: ``connect_timeout`` → aiohttp's ``connect`` (DNS, TCP, proxy and TLS
  set-up, as in httpx); ``read_timeout`` → ``sock_read`` (each wait for the answer's
  bytes, as in httpx);
  ``write_timeout`` bounds the sending of the request body (aiohttp has no write
  timeout of its own, so the body is sent by :class:`_TimedBody`); ``pool_timeout``
  bounds the wait for one of the ``connection_pool_size`` connections. File
  uploads use ``media_write_timeout`` unless a write timeout is passed. Any of
  them exceeded: :class:`~telegram.error.TimedOut` (the pool one says the request
  was not sent); any other transport failure (refused, reset, DNS, TLS, proxy):
  :class:`~telegram.error.NetworkError`.
* Proxy: ``proxy`` (``http://[user:pass@]host:port``; an ``https://`` target goes
  through it by ``CONNECT``). Without one, ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
  ``ALL_PROXY`` and ``NO_PROXY`` from the environment apply, as with httpx (looked
  up once per origin, not per request). SOCKS proxies need the httpx backend
  (``TELEGRAM_HTTP_BACKEND=httpx`` and ``python-telegram-bot[socks]``).
* HTTP/1.1 only (what the bot uses with httpx too).

:func:`make_request` builds the request object the settings choose (aiohttp by
default; ``TELEGRAM_HTTP_BACKEND=httpx`` keeps PTB's HTTPXRequest for one release).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiohttp.payload import BytesPayload
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.config import proxy_problem

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter
    from telegram._utils.types import ODVInput

__all__ = [
    "BACKENDS",
    "DEFAULT_POOL_SIZE",
    "AiohttpRequest",
    "PoolTimeout",
    "make_request",
    "maybe_delivered",
    "proxy_problem",
]

BACKENDS: Final = ("aiohttp", "httpx")
DEFAULT_POOL_SIZE: Final = 8
POOL_TIMEOUT_MESSAGE: Final = (
    "Pool timeout: All connections in the connection pool are occupied. Request was *not* "
    "sent to Telegram. Consider adjusting the connection pool size or the pool timeout."
)
_JSON: Final = "application/json"
_NO_ENV_PROXY: Final = object()


class PoolTimeout(TimeoutError):
    """No connection became free within the pool timeout: the request was not sent
    (the ``__cause__`` of that :class:`~telegram.error.TimedOut`)."""


# Failures before any byte of the request left (per transport); anything else after
# the connection was up (read/write timeout, connection reset) may have reached Telegram.
_NOT_SENT: Final = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
    aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, PoolTimeout,
)


def maybe_delivered(exc: NetworkError) -> bool:
    """True when the request went out and no answer came back (read or write timeout,
    connection cut): Telegram may have carried it out. False for real answers
    (BadRequest, 5xx — PTB raises those as NetworkError too) and for requests that
    never left (connection refused, connect or pool timeout). Either backend."""
    cause = exc.__cause__
    if isinstance(cause, _NOT_SENT):
        return False
    return isinstance(cause, httpx.HTTPError | aiohttp.ClientError | TimeoutError)


class _TimedBody(BytesPayload):
    """A request body whose sending must finish within ``write_timeout`` seconds."""

    def __init__(self, value: bytes, content_type: str, write_timeout: float | None) -> None:
        super().__init__(value, content_type=content_type)
        self._write_timeout = write_timeout

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        if self._write_timeout is None:
            await super().write_with_length(writer, content_length)
            return
        async with asyncio.timeout(self._write_timeout):
            await super().write_with_length(writer, content_length)


class AiohttpRequest(BaseRequest):
    """PTB's request interface on one :class:`aiohttp.ClientSession` (see the module).

    Arguments as :class:`~telegram.request.HTTPXRequest` (``http_version`` "1.1" only);
    ``connection_pool_size`` defaults to 8: requests to Telegram are short, and the
    flood limiter lets through about 30 a second."""

    __slots__ = (
        "_connect_timeout",
        "_env_proxies",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_proxy",
        "_read_timeout",
        "_session",
        "_slots",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = DEFAULT_POOL_SIZE,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        http_version: str = "1.1",
        proxy: str | None = None,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        if http_version != "1.1":
            raise ValueError("AiohttpRequest speaks HTTP/1.1 only")
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        problem = proxy_problem(proxy)
        if problem is not None:
            raise ValueError(problem)
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._proxy = proxy or None
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(connection_pool_size)
        self._env_proxies: dict[str, Any] = {}

    # -- BaseRequest ---------------------------------------------------------------
    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    @property
    def connection_pool_size(self) -> int:
        return self._pool_size

    async def initialize(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        # The semaphore (bound to this loop) admits pool_size requests; the connector's
        # limit is the same, so an admitted request never waits inside aiohttp.
        self._slots = asyncio.Semaphore(self._pool_size)
        connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
            # Env proxies are looked up by _env_proxy, once per origin (aiohttp's
            # trust_env would do it in a thread on every request).
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        if isinstance(read_timeout, DefaultValue):
            read_timeout = self._read_timeout
        if isinstance(connect_timeout, DefaultValue):
            connect_timeout = self._connect_timeout
        if isinstance(pool_timeout, DefaultValue):
            pool_timeout = self._pool_timeout
        if isinstance(write_timeout, DefaultValue):
            write_timeout = self._write_timeout if not files else self._media_write_timeout
        body = await self._body(request_data, files, write_timeout)
        proxy = self._proxy if self._proxy is not None else self._env_proxy(url)
        # connect: DNS, TCP, proxy and TLS set-up (as httpx's connect timeout); sock_read:
        # each wait for the answer's bytes (as httpx's read timeout).
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout,
                                        sock_connect=connect_timeout, sock_read=read_timeout)
        if self._slots.locked():  # every connection busy: wait at most pool_timeout
            try:
                async with asyncio.timeout(pool_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise TimedOut(message=POOL_TIMEOUT_MESSAGE) from PoolTimeout()
        else:
            await self._slots.acquire()  # free: returns at once
        try:
            async with session.request(method, url, data=body, timeout=timeout,
                                       proxy=proxy) as response:
                return response.status, await response.read()
        except TimeoutError as err:  # also aiohttp's ServerTimeoutError, ConnectionTimeoutError
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        finally:
            self._slots.release()

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    async def _body(request_data: RequestData | None, files: Mapping[str, Any] | None,
                    write_timeout: float | None) -> _TimedBody | None:
        """A JSON body, or a multipart one when there are files (the fields and files
        as httpx would send them)."""
        if request_data is None:
            return None
        if not files:
            # A JSON body (the Bot API takes one): the parameters are JSON values
            # already, and json.dumps costs a fraction of urlencode's form quoting.
            params = request_data.parameters
            if not params:
                return None
            return _TimedBody(json.dumps(params).encode(), _JSON, write_timeout)
        fields = request_data.json_parameters
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        for name, part in files.items():
            if isinstance(part, tuple):
                filename, content, *rest = part
                content_type = rest[0] if rest else None
            else:
                filename, content, content_type = None, part, None
            if not isinstance(content, bytes | bytearray):
                content = content.read()  # a file handle (PTB >= 21.5)
            form.add_field(name, bytes(content), filename=filename, content_type=content_type)
        writer = form()
        # One buffer, so that the write timeout covers the whole upload.
        return _TimedBody(await writer.as_bytes(), writer.content_type, write_timeout)

    def _env_proxy(self, url: str) -> str | None:
        """HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (minus NO_PROXY) for ``url``'s origin."""
        origin = url[: url.find("/", url.find("//") + 2)] if "//" in url else url
        cached = self._env_proxies.get(origin, _NO_ENV_PROXY)
        if cached is _NO_ENV_PROXY:
            cached = _lookup_env_proxy(origin)
            self._env_proxies[origin] = cached
        return cached


def _lookup_env_proxy(origin: str) -> str | None:
    parts = urlsplit(origin)
    host = parts.hostname or ""
    if not host or urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or proxy_problem(proxy) is not None:
        return None
    return proxy


def make_request(
    backend: str = "aiohttp",
    *,
    connection_pool_size: int = DEFAULT_POOL_SIZE,
    pool_timeout: float | None = 1.0,
    proxy: str | None = None,
) -> BaseRequest:
    """The Bot API request object for ``backend`` ("aiohttp", the default, or "httpx":
    PTB's HTTPXRequest, kept selectable for one release). Other timeouts: PTB's
    defaults (5 s; 20 s to upload files)."""
    if backend == "aiohttp":
        return AiohttpRequest(connection_pool_size, pool_timeout=pool_timeout, proxy=proxy)
    if backend == "httpx":
        return HTTPXRequest(connection_pool_size, pool_timeout=pool_timeout, proxy=proxy)
    raise ValueError(f"unknown Bot API backend {backend!r} (choose from {', '.join(BACKENDS)})")
