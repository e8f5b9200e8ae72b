"""Webhook mode of ``daisybot run``: a small aiohttp server in front of the PTB Application.

PTB's own webhook server (tornado) reads a request's whole body, up to 100 MB, before
it looks at the secret: a few large forged requests take the process's memory. This
one, in the way PTB documents for custom webhook servers (the Application is driven
by hand and updates go to ``application.update_queue``), answers from the headers:

* 403 without the right ``X-Telegram-Bot-Api-Secret-Token`` (compared in constant
  time), before a byte of the body is read, and the connection is closed;
* 415 unless the body is ``application/json`` (what Telegram sends);
* 413 when the body is larger than ``WEBHOOK_MAX_BODY_BYTES`` (declared or streamed:
  at most that many bytes are ever held for one request);
* 400 for a body that is not a JSON object; 200 otherwise. An update PTB cannot
  decode is skipped with a WARNING naming its id only (never its content) and
  answered 200, because Telegram would redeliver it forever, holding back every
  later update.

Each user's updates are still handled in order (the Application's update processor).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from telegram import Update
from telegram.ext import ExtBot

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.liveness import UpdateFeed
    from bot.telegram.context import DaisyApp

__all__ = ["SECRET_HEADER", "WebhookServer", "serve_webhook"]

log = logging.getLogger("bot.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_CONNECTIONS = 40  # setWebhook's max_connections (Telegram's default)
SHUTDOWN_SECONDS = 1.0  # what stop() gives requests in flight (each is a queue put)


class WebhookServer:
    """``POST /<path>`` → ``application.update_queue``. ``start()`` / ``stop()``."""

    def __init__(
        self,
        application: DaisyApp,
        *,
        path: str,
        secret: str,
        max_body_bytes: int,
        listen: str = "127.0.0.1",
        port: int = 0,
        feed: UpdateFeed | None = None,
    ) -> None:
        self.application = application
        self.path = "/" + path.strip("/")
        self._secret = secret.encode("utf-8")
        self.max_body_bytes = max_body_bytes
        self.listen = listen
        self.port = port
        self.feed = feed
        self._runner: web.AppRunner | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post(self.path, self._handle)
        if self.path != "/":
            app.router.add_post(self.path + "/", self._handle)
        # lingering_time=0: the unread body of a refused request is not drained.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, lingering_time=0,
                               shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.listen, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        if self.feed is not None:
            self.feed.webhook_listening = True

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if self.feed is not None:
            self.feed.webhook_listening = False
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(token, self._secret):
            log.debug("webhook: refused a request without the right secret")
            return _refuse(web.HTTPForbidden())
        if request.content_type != "application/json":
            return _refuse(web.HTTPUnsupportedMediaType())
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            log.warning("webhook: refused a %d-byte body (limit %d)", length,
                        self.max_body_bytes)
            return _refuse(web.HTTPRequestEntityTooLarge(self.max_body_bytes, length))
        try:
            body = await request.read()  # client_max_size: never more than the limit
        except web.HTTPRequestEntityTooLarge:
            log.warning("webhook: refused a body over %d bytes", self.max_body_bytes)
            return _refuse(web.HTTPRequestEntityTooLarge(self.max_body_bytes, -1))
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return web.Response(status=400, text="a JSON object was expected")
        if self.feed is not None:
            self.feed.received()
        bot = self.application.bot
        try:
            update = Update.de_json(data, bot)
        except Exception as exc:  # never log the data: it is a user's message
            update_id = data.get("update_id")
            log.warning("update %s could not be decoded (%s); skipped",
                        update_id if isinstance(update_id, int) else "?", type(exc).__name__)
            return web.Response(status=200)
        if isinstance(bot, ExtBot):
            bot.insert_callback_data(update)
        await self.application.update_queue.put(update)
        return web.Response(status=200)


def _refuse(response: web.HTTPException) -> web.HTTPException:
    """A refusal closes the connection (the body that may follow is not read)."""
    response.force_close()
    return response


async def serve_webhook(application: DaisyApp, settings: Settings,
                        stop: asyncio.Event) -> None:
    """The leader's webhook mode until ``stop`` is set: listen, point Telegram's webhook
    here (this process's WEBHOOK_URL, with the secret), start the Application.

    The Application is initialized and :func:`bot.app.startup` has run (the runner
    does both, see :func:`bot.runner.serve`). Only the leader calls this: a follower
    does not listen, so Telegram (or the proxy in front) reaches the leader alone,
    and a new leader re-points the webhook to itself when it takes over; updates sent
    meanwhile wait at Telegram and are delivered then, in order."""
    url = settings.webhook_public_url
    assert url is not None and settings.webhook_secret is not None  # webhook_problem()
    secret = settings.webhook_secret.get_secret_value()
    server = WebhookServer(
        application,
        path=settings.webhook_path,
        secret=secret,
        max_body_bytes=settings.webhook_max_body_bytes,
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        feed=application.bot_data.feed,
    )
    try:
        await server.start()  # listening before Telegram is told the URL
        await application.bot.set_webhook(
            url, secret_token=secret, allowed_updates=Update.ALL_TYPES,
            max_connections=MAX_CONNECTIONS,
        )
        await application.start()
        log.info("webhook server listening on %s:%s", settings.webhook_listen, server.port)
        await stop.wait()
        log.info("stopping")
    finally:
        await server.stop()
