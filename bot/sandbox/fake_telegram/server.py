"""The HTTP side of the fake Bot API (aiohttp): ``/bot<TOKEN>/<method>`` routing, token
checks, request parsing (query string, form, multipart, JSON body), injected failures,
and the records of every request and reply."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.sandbox.fake_telegram.errors import JSON, TelegramApiError, bad
from bot.sandbox.fake_telegram.faults import Faults
from bot.sandbox.fake_telegram.methods import METHODS, canonical_name, find_method
from bot.sandbox.fake_telegram.params import normalise_params
from bot.sandbox.fake_telegram.snapshots import RecordedCall, RecordedRequest
from bot.sandbox.fake_telegram.state import TOKEN_RE, BotState
from bot.sandbox.fake_telegram.webhook import start_delivery, stop_delivery


class FakeBotServer:
    """Serves the Bot API methods of :mod:`~bot.sandbox.fake_telegram.methods` over HTTP."""

    def __init__(
        self,
        state: BotState,
        faults: Faults,
        entry: Callable[[web.Request], Awaitable[web.Response]] | None = None,
        dispatch: Callable[[str, JSON], Any] | None = None,
    ) -> None:
        """``entry``: what the ``/bot<TOKEN>/<method>`` route calls (default:
        :meth:`handle`); ``dispatch(method, params)``: runs one Bot API method
        (default: the table in :mod:`.methods`). The facade routes both through its
        own overridable hooks."""
        self.state = state
        self.faults = faults
        self._entry = entry or self.handle
        self._dispatch = dispatch or (lambda method, params: METHODS[method](state, params))
        self.requests: list[RecordedRequest] = []
        self.calls: list[RecordedCall] = []
        self._call_seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- lifecycle -------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._entry)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("already started")
        self.state.closing = False
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        actual_port = sockets[0].getsockname()[1] if sockets else port
        self._runner = runner
        self.state.running = True
        self._url = f"http://{host}:{actual_port}"
        start_delivery(self.state)  # a webhook set before a restart

    async def close(self) -> None:
        self.state.closing = True
        self.state.notify()
        await stop_delivery(self.state)
        runner, self._runner = self._runner, None
        self.state.running = False
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._url

    # -- requests --------------------------------------------------------------------
    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _read_params(self, request: web.Request) -> JSON:
        raw: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise bad("can't parse JSON encoded request") from exc
                if not isinstance(body, dict):
                    raise bad("JSON object expected")
                return normalise_params(raw) | body
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    raw[key] = value
                elif isinstance(value, bytes | bytearray):
                    raw[key] = value.decode("utf-8", "replace")
                # uploaded files are ignored (no media support)
        return normalise_params(raw)

    async def handle(self, request: web.Request) -> web.Response:
        """One Bot API request: checks, the method, the reply, the records."""
        state = self.state
        token = request.match_info["token"]
        method_raw = request.match_info["method"]
        if not TOKEN_RE.match(token):
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        if token != state.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        handler = find_method(method_raw)
        method = canonical_name(method_raw)
        counted = method != "getUpdates"  # a long poll is not "work in progress"
        if counted:
            state.in_flight += 1
        state.notify()
        params: JSON = {}
        at = state.now()
        try:
            if handler is None:
                raise TelegramApiError(404, "Not Found")
            params = await self._read_params(request)
            self.requests.append(RecordedRequest(method, params))
            inj = self.faults.take(method, params)
            if inj is not None and not inj.drop:
                raise inj.reply(state.now())
            result = self._dispatch(method, params)
            if asyncio.iscoroutine(result):
                result = await result
            body: JSON = {"ok": True, "result": result}
            status = 200
            if inj is not None and inj.drop:
                self.calls.append(RecordedCall(next(self._call_seq), method, params, 0, body, at))
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
        except TelegramApiError as err:
            body, status = err.to_json(), err.code
        finally:
            if counted:
                state.in_flight -= 1
        self.calls.append(RecordedCall(next(self._call_seq), method, params, status, body, at))
        state.notify()
        return web.json_response(body, status=status)
