"""A Telegram-like chat page in the browser, backed by :class:`FakeTelegram`.

``make_webchat_app(fake, users=[(1001, "Alice"), (1002, "Bob")])`` returns an aiohttp
application serving the page (``/``, ``/static/...``) and a small JSON API:

* ``GET  /api/users``                    the chat users (and the bot's name)
* ``POST /api/send``  ``{"user_id", "text"}``   the user types a message
* ``POST /api/press`` ``{"user_id", "message_id", "data"}``   the user presses a callback
  button (it must really be on that message right now)
* ``POST /api/pay``   ``{"user_id", "message_id"}``   the user pays an invoice (stands in
  for Telegram's payment sheet): the bot gets a pre_checkout_query; the outcome (paid,
  declined with the bot's error_message, or expired after 10 s) arrives as a "payment"
  event on the websocket
* ``GET  /api/transcript?user_id=``      messages as they are now + commands + reply keyboard
* ``GET  /api/ws?user_id=&since=``       websocket pushing the chat's events live
* ``GET  /api/panel``                    side panel data from the injected provider
* ``POST /api/panel/sms`` ``{"activation_id"}``  "deliver SMS now" through the provider

The page itself is vanilla JS/CSS (``bot/sandbox/static``), no build step, no CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aiohttp import WSMsgType, web

from bot.sandbox.fake_telegram import ChatEvent, FakeTelegram

STATIC_DIR = Path(__file__).with_name("static")

__all__ = ["STATIC_DIR", "SidePanelProvider", "make_webchat_app", "start_webchat"]


@runtime_checkable
class SidePanelProvider(Protocol):
    """Supplies the side panel (wallet, numbers, notes) and the "deliver SMS now" action.

    ``panel()`` returns e.g.::

        {"wallet": "$12.50",
         "numbers": [{"activation_id": "123", "service": "Google", "phone": "+1 555 0100",
                      "status": "waiting", "code": None, "can_deliver": True}],
         "notes": ["Demo: cancel lock is 30 s"]}

    Numbers with ``can_deliver`` true (or, without that key, a status containing "wait")
    get a "deliver SMS now" button.  Other scalar keys are shown as "key: value" lines.
    """

    async def panel(self) -> dict[str, Any]: ...

    async def deliver_sms(self, activation_id: str) -> str: ...


_FAKE: web.AppKey[FakeTelegram] = web.AppKey("fake_telegram", FakeTelegram)
_PANEL: web.AppKey[SidePanelProvider | None] = web.AppKey("side_panel")
_USERS: web.AppKey[list[dict[str, Any]]] = web.AppKey("users")
_TITLE: web.AppKey[str] = web.AppKey("title", str)
_SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")
_PAYMENTS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("payments")

_NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status, headers=_NO_STORE)


def _ok(**data: Any) -> web.Response:
    return web.json_response({"ok": True, **data}, headers=_NO_STORE)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"ok": False, "error": "JSON body expected"}),
            content_type="application/json",
        ) from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"ok": False, "error": "JSON object expected"}),
            content_type="application/json",
        )
    return body


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _user_id(request: web.Request, raw: Any) -> int:
    uid = _int(raw)
    known = {u["id"] for u in request.app[_USERS]}
    if uid is None or uid not in known:
        raise web.HTTPNotFound(
            text=json.dumps({"ok": False, "error": "unknown user"}),
            content_type="application/json",
        )
    return uid


def _event_payload(fake: FakeTelegram, user_id: int, ev: ChatEvent) -> dict[str, Any]:
    data = ev.to_json()
    if ev.kind == "commands":
        data["commands"] = fake.commands_for(user_id)
    return data


# -- handlers ----------------------------------------------------------------------------


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_NO_STORE)


async def _users(request: web.Request) -> web.Response:
    fake = request.app[_FAKE]
    return _ok(
        users=request.app[_USERS],
        bot={"username": fake.bot_username, "first_name": fake.bot_first_name},
        title=request.app[_TITLE],
        panel=request.app[_PANEL] is not None,
    )


async def _send(request: web.Request) -> web.Response:
    body = await _json_body(request)
    uid = _user_id(request, body.get("user_id"))
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return _error(400, "text must be a non-empty string")
    if len(text) > 4096:
        return _error(400, "text is too long (max 4096 characters)")
    user = request.app[_FAKE].user(uid)
    update_id = await user.send(text)
    return _ok(update_id=update_id)


async def _press(request: web.Request) -> web.Response:
    body = await _json_body(request)
    uid = _user_id(request, body.get("user_id"))
    message_id = _int(body.get("message_id"))
    data = body.get("data")
    if message_id is None or not isinstance(data, str) or not data:
        return _error(400, "message_id (int) and data (string) are required")
    fake = request.app[_FAKE]
    msg = fake.message(uid, message_id)
    if msg is None or msg.deleted:
        return _error(404, "no such message")
    if not msg.from_bot or not any(
        b.kind == "callback" and b.callback_data == data for row in msg.buttons for b in row
    ):
        return _error(400, "that message has no such button")
    query_id = fake.press_callback(uid, message_id, data)
    return _ok(query_id=query_id)


async def _pay(request: web.Request) -> web.Response:
    body = await _json_body(request)
    uid = _user_id(request, body.get("user_id"))
    message_id = _int(body.get("message_id"))
    if message_id is None:
        return _error(400, "message_id (int) is required")
    fake = request.app[_FAKE]
    msg = fake.message(uid, message_id)
    if msg is None or msg.deleted:
        return _error(404, "no such message")
    if not msg.from_bot or msg.invoice is None:
        return _error(400, "that message is not an invoice")
    if msg.invoice_paid:
        return _error(409, "that invoice is paid already")
    try:
        query_id = fake.pay_nowait(uid, message_id)
    except AssertionError:
        return _error(409, "a payment for that invoice is in progress")
    # the outcome is pushed as events; this task makes the 10 s limit fire on its own
    task = asyncio.create_task(_settle_payment(fake, query_id))
    request.app[_PAYMENTS].add(task)
    task.add_done_callback(request.app[_PAYMENTS].discard)
    return _ok(query_id=query_id)


async def _settle_payment(fake: FakeTelegram, query_id: str) -> None:
    while fake.pre_checkout(query_id).status == "pending" and not fake.state.closing:
        with contextlib.suppress(AssertionError):  # a clock that is not moving: keep waiting
            await fake.wait_payment(query_id, timeout=60.0)


async def _transcript(request: web.Request) -> web.Response:
    uid = _user_id(request, request.query.get("user_id"))
    fake = request.app[_FAKE]
    seq = fake.seq
    keyboard = fake.reply_keyboard(uid)
    return _ok(
        seq=seq,
        messages=[m.to_json() for m in fake.transcript(uid)],
        commands=fake.commands_for(uid),
        reply_keyboard=keyboard,
    )


async def _ws(request: web.Request) -> web.StreamResponse:
    uid = _user_id(request, request.query.get("user_id"))
    fake = request.app[_FAKE]
    since = _int(request.query.get("since"))
    if since is None:
        since = fake.seq
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    request.app[_SOCKETS].add(ws)

    async def reader() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str('{"kind":"pong"}')

    reader_task = asyncio.create_task(reader())
    try:
        await ws.send_json({"kind": "hello", "seq": since})
        while not ws.closed:
            waiter = asyncio.create_task(fake.wait_events(uid, since, 30.0))
            done, _ = await asyncio.wait({waiter, reader_task}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
                break
            for ev in waiter.result():
                await ws.send_json(_event_payload(fake, uid, ev))
                since = ev.seq
    except (ConnectionResetError, RuntimeError):
        pass  # the browser went away mid-send
    finally:
        reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader_task
        request.app[_SOCKETS].discard(ws)
        await ws.close()
    return ws


async def _panel(request: web.Request) -> web.Response:
    provider = request.app[_PANEL]
    if provider is None:
        return _ok(enabled=False, panel={})
    try:
        data = await provider.panel()
    except Exception as exc:  # the panel is a convenience: show the error, don't crash
        return _error(500, f"panel provider failed: {type(exc).__name__}: {exc}")
    return web.json_response(
        {"ok": True, "enabled": True, "panel": data}, headers=_NO_STORE, dumps=_dumps
    )


async def _panel_sms(request: web.Request) -> web.Response:
    provider = request.app[_PANEL]
    if provider is None:
        return _error(404, "no side panel configured")
    body = await _json_body(request)
    activation_id = body.get("activation_id")
    if isinstance(activation_id, int) and not isinstance(activation_id, bool):
        activation_id = str(activation_id)
    if not isinstance(activation_id, str) or not activation_id:
        return _error(400, "activation_id is required")
    try:
        result = await provider.deliver_sms(activation_id)
    except Exception as exc:
        return _error(400, f"{type(exc).__name__}: {exc}")
    return _ok(result=result)


def _dumps(obj: Any) -> str:
    # panel data may contain Decimals or datetimes: show them as strings, never as floats
    return json.dumps(obj, default=str)


async def _close_sockets(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[_SOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")
    payments: set[asyncio.Task[None]] = app[_PAYMENTS]
    for task in list(payments):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def make_webchat_app(
    fake: FakeTelegram,
    *,
    side_panel: SidePanelProvider | None = None,
    users: list[tuple[int, str]],
    title: str = "DaisyBot playground",
) -> web.Application:
    """Build the chat page application for ``fake`` with the given chat users."""
    if not users:
        raise ValueError("at least one chat user is required")
    app = web.Application()
    app[_FAKE] = fake
    app[_PANEL] = side_panel
    app[_TITLE] = title
    user_list: list[dict[str, Any]] = []
    for uid, name in users:
        u = fake.user(uid, name)
        user_list.append(
            {
                "id": u.id,
                "name": u.first_name,
                "username": u.username,
                "language_code": u.language_code,
            }
        )
    app[_USERS] = user_list
    app[_SOCKETS] = set()
    app[_PAYMENTS] = set()
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    app.router.add_get("/api/users", _users)
    app.router.add_post("/api/send", _send)
    app.router.add_post("/api/press", _press)
    app.router.add_post("/api/pay", _pay)
    app.router.add_get("/api/transcript", _transcript)
    app.router.add_get("/api/ws", _ws)
    app.router.add_get("/api/panel", _panel)
    app.router.add_post("/api/panel/sms", _panel_sms)
    app.on_shutdown.append(_close_sockets)
    return app


async def start_webchat(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Serve ``app``; returns (base url, async closer)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    actual_port = sockets[0].getsockname()[1] if sockets else port

    async def closer() -> None:
        await runner.cleanup()

    return f"http://{host}:{actual_port}", closer
