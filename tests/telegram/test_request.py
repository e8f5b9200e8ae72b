"""The Bot API transport (bot/telegram/request.py): PTB's HTTPXRequest behaviour on
aiohttp — timeouts, pool limit, proxy, multipart, error mapping — against local
stand-ins on 127.0.0.1 (an echo server, a silent server, a full listen backlog, an
HTTP proxy). Timeouts are small and only their outcome (the exception) is asserted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import BodyPartReader, web
from pydantic import ValidationError
from telegram import Bot, InputFile
from telegram.error import NetworkError, RetryAfter, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from bot.config import Settings
from bot.liveness import FeedRequest
from bot.telegram.request import AiohttpRequest, make_request, maybe_delivered

TOKEN = "123456:TEST-transport-token"


def _ok(result: Any = True) -> web.Response:
    return web.json_response({"ok": True, "result": result})


class Echo:
    """An aiohttp server answering every POST with what it received; ``gate`` (when
    set) holds answers until it is opened; counts connections and peak concurrency."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.peak = 0
        self.peers: set[tuple[str, int]] = set()
        self.status = 200
        self.body: dict[str, Any] | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add(tuple(peer[:2]))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            entry: dict[str, Any] = {"method": request.method, "path": request.path,
                                     "content_type": request.content_type,
                                     "headers": dict(request.headers)}
            if request.content_type == "multipart/form-data":
                reader = await request.multipart()
                parts: dict[str, Any] = {}
                async for part in reader:
                    assert isinstance(part, BodyPartReader) and part.name is not None
                    parts[part.name] = {"filename": part.filename,
                                        "type": part.headers.get("Content-Type"),
                                        "data": await part.read()}
                entry["parts"] = parts
            elif request.content_type == "application/json":
                entry["json"] = await request.json()
            else:
                entry["form"] = dict(await request.post())
            self.seen.append(entry)
            if self.gate is not None:
                await self.gate.wait()
            if self.body is not None:
                return web.json_response(self.body, status=self.status)
            return _ok({"path": request.path})
        finally:
            self.in_flight -= 1

    async def start(self) -> Echo:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    server = await Echo().start()
    yield server
    await server.close()


@contextlib.asynccontextmanager
async def opened(request: BaseRequest) -> AsyncIterator[BaseRequest]:
    await request.initialize()
    try:
        yield request
    finally:
        await request.shutdown()


def _data(**params: Any) -> RequestData:
    return RequestData([RequestParameter.from_input(k, v) for k, v in params.items()])


async def _silent_server(*, read_body: bool = True
                         ) -> tuple[asyncio.Server, str, list[asyncio.Transport]]:
    """Accepts connections and never answers (``read_body=False``: never reads either)."""
    transports: list[asyncio.Transport] = []

    class Silent(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transports.append(transport)
            if not read_body:
                transport.set_write_buffer_limits(0)
                transport.pause_reading()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", transports


# ------------------------------------------------------------------- basic behaviour


async def test_post_json_body_user_agent_and_answer(echo: Echo) -> None:
    """Parameters go as a JSON body (the Bot API accepts one; cheaper than form
    quoting), nested objects as JSON objects."""
    async with opened(AiohttpRequest()) as req:
        code, payload = await req.do_request(
            f"{echo.url}/bot{TOKEN}/sendMessage", "POST",
            _data(chat_id=7, text="hé & <b>", reply_markup={"inline_keyboard": []}))
    assert code == 200
    assert json.loads(payload)["result"] == {"path": f"/bot{TOKEN}/sendMessage"}
    (seen,) = echo.seen
    assert seen["content_type"] == "application/json"
    assert seen["json"] == {"chat_id": 7, "text": "hé & <b>",
                            "reply_markup": {"inline_keyboard": []}}
    assert seen["headers"]["User-Agent"] == BaseRequest.USER_AGENT


async def test_through_ptb_bot_and_status_handling_stays_in_base_request(echo: Echo) -> None:
    """The Bot's own calls go through it; a 429 answer still becomes RetryAfter."""
    bot = Bot(TOKEN, base_url=f"{echo.url}/bot", request=AiohttpRequest(),
              get_updates_request=AiohttpRequest(1))
    echo.body = {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "B",
                                        "username": "b_bot"}}
    async with bot:
        assert (await bot.get_me()).username == "b_bot"
        echo.status = 429
        echo.body = {"ok": False, "error_code": 429, "description": "Too Many Requests",
                     "parameters": {"retry_after": 3}}
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(1, "x")
    assert caught.value.retry_after == 3


async def test_not_initialized_then_shutdown_twice_and_again(echo: Echo) -> None:
    req = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await req.do_request(f"{echo.url}/x", "POST")
    await req.initialize()
    await req.shutdown()
    await req.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="not initialized"):
        await req.do_request(f"{echo.url}/x", "POST")
    async with opened(req):  # usable again after a new initialize
        assert (await req.do_request(f"{echo.url}/x", "POST"))[0] == 200


def test_only_http_1_1_and_a_positive_pool() -> None:
    with pytest.raises(ValueError, match=r"HTTP/1\.1"):
        AiohttpRequest(http_version="2")
    with pytest.raises(ValueError):
        AiohttpRequest(0)


# -------------------------------------------------------------------------- multipart


async def test_multipart_upload_fields_and_file(echo: Echo) -> None:
    doc = InputFile(b"\x00\x01binary\xff", filename="report.csv")
    async with opened(AiohttpRequest()) as req:
        code, _ = await req.do_request(f"{echo.url}/bot{TOKEN}/sendDocument", "POST",
                                       _data(chat_id=5, caption="cap", document=doc))
    assert code == 200
    (seen,) = echo.seen
    assert seen["content_type"] == "multipart/form-data"
    parts = seen["parts"]
    assert parts["chat_id"]["data"] == b"5"
    assert parts["caption"]["data"] == b"cap"
    (attached,) = (p for p in parts.values() if p["filename"] == "report.csv")
    assert attached["data"] == b"\x00\x01binary\xff"
    assert attached["type"] == "text/csv"


# ------------------------------------------------------------------- timeouts, errors


async def test_read_timeout_is_timed_out_default_and_per_call() -> None:
    server, url, _ = await _silent_server()
    try:
        async with opened(AiohttpRequest(read_timeout=0.2)) as req:
            with pytest.raises(TimedOut) as caught:
                await req.do_request(f"{url}/x", "POST")  # DEFAULT_NONE: the object's 0.2 s
        assert maybe_delivered(caught.value)  # sent, no answer: Telegram may have done it
        async with opened(AiohttpRequest(read_timeout=None)) as req:
            with pytest.raises(TimedOut):
                await req.do_request(f"{url}/x", "POST", read_timeout=0.2)
    finally:
        server.close()


async def test_write_timeout_is_timed_out_when_the_server_reads_nothing() -> None:
    server, url, _ = await _silent_server(read_body=False)
    big = "x" * (48 * 1024 * 1024)  # far more than both socket buffers hold
    try:
        async with opened(AiohttpRequest(read_timeout=None)) as req:
            with pytest.raises(TimedOut):
                await req.do_request(f"{url}/x", "POST", _data(text=big), write_timeout=0.3)
    finally:
        server.close()


async def test_connect_timeout_is_timed_out() -> None:
    """A listening socket whose backlog is full: the SYN is dropped, connect() hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    await asyncio.sleep(0.1)
    try:
        async with opened(AiohttpRequest()) as req:
            with pytest.raises(TimedOut) as caught:
                await req.do_request(f"http://127.0.0.1:{port}/x", "POST", connect_timeout=0.3)
        assert not maybe_delivered(caught.value)
    finally:
        for s in (*fillers, listener):
            s.close()


async def test_connection_refused_is_network_error() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    async with opened(AiohttpRequest()) as req:
        with pytest.raises(NetworkError) as caught:
            await req.do_request(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe", "POST")
    assert not isinstance(caught.value, TimedOut)
    assert "aiohttp.ClientConnectorError" in caught.value.message
    assert not maybe_delivered(caught.value)


async def test_reset_connection_is_network_error() -> None:
    server, url, transports = await _silent_server()

    async def reset_soon() -> None:
        while not transports:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        transports[0].abort()

    try:
        async with opened(AiohttpRequest()) as req:
            task = asyncio.ensure_future(reset_soon())
            with pytest.raises(NetworkError) as caught:
                await req.do_request(f"{url}/x", "POST")
            await task
        assert not isinstance(caught.value, TimedOut)
        assert maybe_delivered(caught.value)
    finally:
        server.close()


# -------------------------------------------------------------------------- the pool


async def test_pool_limit_holds_and_connections_are_reused(echo: Echo) -> None:
    echo.gate = asyncio.Event()
    async with opened(AiohttpRequest(2, pool_timeout=None)) as req:
        calls = [asyncio.ensure_future(req.do_request(f"{echo.url}/m{i}", "POST"))
                 for i in range(6)]
        while echo.in_flight < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert echo.in_flight == 2  # the other four wait for a connection
        echo.gate.set()
        results = await asyncio.gather(*calls)
    assert [code for code, _ in results] == [200] * 6
    assert echo.peak == 2
    assert len(echo.peers) <= 2  # keep-alive: six requests over at most two connections


async def test_pool_timeout_is_timed_out_and_not_sent(echo: Echo) -> None:
    echo.gate = asyncio.Event()
    async with opened(AiohttpRequest(1, pool_timeout=0.1)) as req:
        first = asyncio.ensure_future(req.do_request(f"{echo.url}/first", "POST"))
        while echo.in_flight < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        with pytest.raises(TimedOut, match="Pool timeout") as caught:
            await req.do_request(f"{echo.url}/second", "POST")
        assert not maybe_delivered(caught.value)
        echo.gate.set()
        assert (await first)[0] == 200
        assert (await req.do_request(f"{echo.url}/third", "POST"))[0] == 200  # slot returned
    assert [s["path"] for s in echo.seen] == ["/first", "/third"]


# ------------------------------------------------------------------------- the proxy


class Proxy:
    """A forward HTTP proxy stand-in: absolute-form requests (``POST http://...``)
    are forwarded to the target; CONNECT opens a tunnel. Records request lines and
    Proxy-Authorization headers."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.auth: list[str | None] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            request_line = lines[0]
            headers = {k.lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            self.lines.append(request_line)
            self.auth.append(headers.get("proxy-authorization"))
            method, target, _ = request_line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            # absolute form: forward one request with Connection: close
            rest = target.split("://", 1)[1]
            hostport, _, path = rest.partition("/")
            host, _, port = hostport.partition(":")
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length)
            up_reader, up_writer = await asyncio.open_connection(host, int(port or 80))
            keep = [line for line in lines[1:] if line and not line.lower().startswith(
                ("proxy-", "connection:"))]
            up_writer.write((f"{method} /{path} HTTP/1.1\r\n" + "\r\n".join(keep)
                             + "\r\nConnection: close\r\n\r\n").encode("latin-1") + body)
            await up_writer.drain()
            answer = await up_reader.read()
            up_writer.close()
            answer = answer.replace(b"Connection: keep-alive", b"Connection: close", 1)
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    server = await Proxy().start()
    yield server
    await server.close()


async def test_proxy_setting_is_used_with_its_credentials(echo: Echo, proxy: Proxy) -> None:
    with_auth = proxy.url.replace("http://", "http://user:s3cret@")
    async with opened(AiohttpRequest(proxy=with_auth)) as req:
        code, payload = await req.do_request(f"{echo.url}/bot{TOKEN}/getMe", "POST",
                                             _data(a=1))
    assert code == 200 and json.loads(payload)["ok"] is True
    assert proxy.lines == [f"POST {echo.url}/bot{TOKEN}/getMe HTTP/1.1"]
    assert proxy.auth == ["Basic dXNlcjpzM2NyZXQ="]  # user:s3cret
    assert echo.seen[0]["json"] == {"a": 1}


async def test_env_proxy_applies_without_a_setting_and_no_proxy_is_honoured(
    echo: Echo, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
                 "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with opened(AiohttpRequest()) as req:
        assert (await req.do_request(f"{echo.url}/via", "POST"))[0] == 200
    assert proxy.lines == [f"POST {echo.url}/via HTTP/1.1"]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with opened(AiohttpRequest()) as req:
        assert (await req.do_request(f"{echo.url}/direct", "POST"))[0] == 200
    assert len(proxy.lines) == 1
    assert [s["path"] for s in echo.seen] == ["/via", "/direct"]


async def test_unreachable_proxy_is_network_error(echo: Echo) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    async with opened(AiohttpRequest(proxy=f"http://127.0.0.1:{port}")) as req:
        with pytest.raises(NetworkError):
            await req.do_request(f"{echo.url}/x", "POST")
    assert echo.seen == []


def test_proxy_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="SOCKS proxies need TELEGRAM_HTTP_BACKEND=httpx"):
        Settings(_env_file=None, telegram_proxy_url="socks5://127.0.0.1:1080")
    with pytest.raises(ValidationError, match="TELEGRAM_PROXY_URL must be a URL"):
        Settings(_env_file=None, telegram_proxy_url="127.0.0.1:3128")
    ok = Settings(_env_file=None, telegram_http_backend="httpx",
                  telegram_proxy_url="socks5://127.0.0.1:1080")
    assert ok.telegram_proxy_url == "socks5://127.0.0.1:1080"
    with pytest.raises(ValueError, match="SOCKS"):
        AiohttpRequest(proxy="socks5://127.0.0.1:1080")


# ---------------------------------------------------------------------- the wiring


def _app_settings(tmp_path: Any, **extra: Any) -> Settings:
    from bot.config import FundingMode

    return Settings(_env_file=None, bot_token=TOKEN, daisysim_api_key="k" * 32,
                    funding_mode=FundingMode.OPERATOR,
                    database_path=str(tmp_path / "bot.sqlite3"), **extra)


def test_the_application_runs_on_aiohttp_by_default(tmp_path: Any) -> None:
    from bot.app import build_application

    app = build_application(_app_settings(tmp_path))
    main, updates = app.bot._request[1], app.bot._request[0]
    assert isinstance(main, AiohttpRequest)
    assert main.connection_pool_size == 32
    assert isinstance(updates, FeedRequest)
    assert isinstance(updates.inner, AiohttpRequest)
    assert updates.inner.connection_pool_size == 1


def test_httpx_stays_selectable_and_the_pool_size_is_a_setting(tmp_path: Any) -> None:
    from bot.app import build_application

    app = build_application(_app_settings(tmp_path, telegram_http_backend="httpx",
                                          telegram_connection_pool_size=3))
    main, updates = app.bot._request[1], app.bot._request[0]
    assert isinstance(main, HTTPXRequest)
    assert isinstance(updates, FeedRequest) and isinstance(updates.inner, HTTPXRequest)
    app2 = build_application(_app_settings(tmp_path, telegram_connection_pool_size=3))
    assert app2.bot._request[1].connection_pool_size == 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown Bot API backend"):
        make_request("requests")


def test_maybe_delivered_reads_either_backends_errors() -> None:
    import httpx

    def failed(cause: BaseException) -> NetworkError:
        try:
            raise NetworkError("x") from cause
        except NetworkError as exc:
            return exc

    assert maybe_delivered(failed(httpx.ReadTimeout("r")))
    assert maybe_delivered(failed(httpx.RemoteProtocolError("cut")))
    assert not maybe_delivered(failed(httpx.ConnectError("refused")))
    assert not maybe_delivered(failed(httpx.PoolTimeout("pool")))
    assert not maybe_delivered(NetworkError("Bad Gateway"))  # a real answer (5xx)
