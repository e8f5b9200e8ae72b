"""Liveness endpoint (``GET /healthz``) and the ``daisybot healthcheck`` command.

``daisybot run`` serves ``GET /healthz`` on ``HEALTH_PORT`` when that setting is
set; Docker's ``HEALTHCHECK`` runs ``daisybot healthcheck``, which asks it.

The answer is 200 ``{"status": "ok", ...}`` when every check passes and 503
``{"status": "unavailable", ...}`` otherwise. The checks of ``daisybot run``
(:func:`bot_probe`):

* ``application``: the PTB application is running;
* ``updates``: long polling: the updater runs and a ``getUpdates`` succeeded
  within ``HEALTH_UPDATES_MAX_AGE_SECONDS`` (an empty long poll counts; one in
  flight after a success counts until its own timeout); webhook mode: the webhook
  server is listening and a webhook arrived within that bound, or else
  ``getWebhookInfo`` shows this bot's URL and no recent delivery error while
  updates are pending;
* ``database``: a write probe commits through the bot's own connection (a row of
  ``health_probe``) and the database's file system has free space: a read-only
  file or file system, a full disk or a lock held too long fail it;
* ``outbox``: no event (a code, a refund notice) has waited longer than
  ``HEALTH_OUTBOX_MAX_AGE_SECONDS`` for delivery.

The body names the checks and nothing else: no token, no key, no user data.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from bot.config import Settings

if TYPE_CHECKING:  # heavy imports stay out of `daisybot healthcheck`
    from aiohttp import web
    from telegram.ext import Application

__all__ = [
    "HealthServer",
    "Probe",
    "application_probe",
    "bot_probe",
    "database_probe",
    "healthcheck_main",
    "install_health_server",
    "start_health_server",
    "store_probe",
    "webhook_probe",
]

log = logging.getLogger(__name__)

# A probe answers the named checks: True = healthy. It may be sync or async and
# may return a bare bool (one check named "ok").
ProbeResult: TypeAlias = bool | Mapping[str, bool]
Probe: TypeAlias = Callable[[], ProbeResult | Awaitable[ProbeResult]]

PROBE_TIMEOUT_SECONDS = 3.0
DB_PROBE_TIMEOUT_SECONDS = 2.0  # within PROBE_TIMEOUT_SECONDS: the body still says why
WEBHOOK_INFO_EVERY_SECONDS = 5.0


def database_probe(path: str | Path) -> Callable[[], Awaitable[bool]]:
    """A probe that opens the SQLite file read-only and runs ``SELECT 1``.

    Runs in a worker thread (SQLite is blocking); never creates the file.
    """
    db = Path(path)

    def check() -> bool:
        if not db.exists():
            return False
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
        try:
            conn.execute("SELECT 1").fetchone()
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
        return True

    async def probe() -> bool:
        try:
            return await asyncio.to_thread(check)
        except sqlite3.Error:
            return False

    return probe


def application_probe(
    application: Application[Any, Any, Any, Any, Any, Any],
    *,
    database: Callable[[], Any] | None = None,
    updates_max_age: float | None = None,
    webhook: Callable[[], Awaitable[bool]] | None = None,
) -> Callable[[], Awaitable[dict[str, bool]]]:
    """Checks for a PTB application: running, updates arriving, database.

    ``database``: a probe returning a bool (e.g. :func:`database_probe`) or a
    mapping of check name → bool (:func:`store_probe`'s database and outbox).
    ``updates_max_age``: with the application's :class:`~bot.liveness.UpdateFeed`
    (``bot_data.feed``), long polling must have fetched updates that recently.
    ``webhook``: webhook mode, once the server listens (:func:`webhook_probe`).
    """

    async def probe() -> dict[str, bool]:
        updater = application.updater
        feed = getattr(getattr(application, "bot_data", None), "feed", None)
        listening = getattr(feed, "webhook_listening", None)
        if listening is not None:  # our webhook server (bot.webhook) takes the updates
            updates = bool(listening)
            if updates and webhook is not None:
                updates = bool(await webhook())
        else:
            updates = True if updater is None else bool(updater.running)
            if updates and feed is not None and updates_max_age is not None:
                updates = feed.fresh(updates_max_age)
        checks = {"application": bool(application.running), "updates": updates}
        if database is not None:
            result = await _call(database)
            if isinstance(result, Mapping):
                checks.update({name: bool(ok) for name, ok in result.items()})
            else:
                checks["database"] = bool(result)
        return checks

    return probe


def store_probe(
    application: Application[Any, Any, Any, Any, Any, Any], outbox_max_age: float
) -> Callable[[], Awaitable[dict[str, bool]]]:
    """``database`` (a committed write through the engine's own connection, and free
    space) and ``outbox`` (oldest undelivered event younger than ``outbox_max_age``
    seconds of the application's clock).

    One probe runs at a time; a caller that gives up after
    ``DB_PROBE_TIMEOUT_SECONDS`` leaves it running (cancelling a statement halfway
    would leave the connection inside a transaction) and later callers share it."""
    from storage.errors import DatabaseErrors
    from storage.health import MIN_FREE_BYTES, HealthRepo

    running: list[asyncio.Task[dict[str, bool]]] = []

    async def check() -> dict[str, bool]:
        data = application.bot_data
        try:
            repo = HealthRepo(data.engine_.database)
        except (AttributeError, RuntimeError):  # no engine, or not started (or closed)
            return {"database": False, "outbox": False}
        checks = {"database": True, "outbox": True}
        try:
            free = await asyncio.to_thread(repo.free_bytes)
            if free is not None and free < MIN_FREE_BYTES:
                log.warning("health: the database's disk is full (%d bytes free)", free)
                checks["database"] = False
            else:
                await repo.write_probe(time.time())
        except (*DatabaseErrors, OSError) as exc:
            log.warning("health: the database cannot be written: %s", exc)
            checks["database"] = False
        try:
            oldest = await repo.oldest_undelivered_event()
        except DatabaseErrors as exc:
            log.warning("health: the event outbox cannot be read: %s", exc)
            checks["outbox"] = False
        else:
            if oldest is not None and data.clock.now() - oldest > outbox_max_age:
                log.warning("health: an event has waited %.0f s for delivery",
                            data.clock.now() - oldest)
                checks["outbox"] = False
        return checks

    async def probe() -> dict[str, bool]:
        if not running or running[0].done():
            running[:] = [asyncio.create_task(check())]
        try:
            return await asyncio.wait_for(asyncio.shield(running[0]),
                                          DB_PROBE_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("health: the database did not answer in %.0f s",
                        DB_PROBE_TIMEOUT_SECONDS)
            return {"database": False, "outbox": False}

    return probe


def webhook_probe(
    application: Application[Any, Any, Any, Any, Any, Any], url: str, max_age: float
) -> Callable[[], Awaitable[bool]]:
    """Webhook mode: Telegram still sends to ``url`` and is not failing to deliver.

    A webhook received within ``max_age`` seconds proves it without asking. Else
    ``getWebhookInfo`` (asked at most every ``WEBHOOK_INFO_EVERY_SECONDS``) must show
    this URL (not deleted, nor taken by another instance) and, while updates are
    pending, no delivery error within ``max_age`` (a proxy in front that fails). A
    quiet bot with nothing pending is healthy."""
    cache: list[tuple[float, bool]] = []

    async def ask() -> bool:
        try:
            info = await asyncio.wait_for(application.bot.get_webhook_info(),
                                          DB_PROBE_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure means "cannot tell": unhealthy
            log.warning("health: getWebhookInfo failed (%s)", type(exc).__name__)
            return False
        if info.url != url:
            log.warning("health: Telegram's webhook is no longer this bot's URL")
            return False
        if info.pending_update_count and info.last_error_date is not None:
            age = (datetime.now(UTC) - info.last_error_date).total_seconds()
            if age <= max_age:
                log.warning("health: Telegram cannot deliver updates (%s)",
                            info.last_error_message)
                return False
        return True

    async def probe() -> bool:
        feed = getattr(application.bot_data, "feed", None)
        if feed is not None and feed.last_ok is not None and feed.fresh(max_age):
            return True
        now = time.monotonic()
        if cache and now - cache[0][0] < WEBHOOK_INFO_EVERY_SECONDS:
            return cache[0][1]
        ok = await ask()
        cache[:] = [(time.monotonic(), ok)]
        return ok

    return probe


def bot_probe(
    application: Application[Any, Any, Any, Any, Any, Any], settings: Settings
) -> Callable[[], Awaitable[dict[str, bool]]]:
    """The checks ``daisybot run`` serves: application, updates, database, outbox."""
    url = settings.webhook_public_url
    max_age = settings.health_updates_max_age_seconds
    return application_probe(
        application,
        database=store_probe(application, settings.health_outbox_max_age_seconds),
        updates_max_age=max_age,
        webhook=None if url is None else webhook_probe(application, url, max_age),
    )


async def _call(probe: Callable[[], Any]) -> Any:
    result = probe()
    if inspect.isawaitable(result):
        result = await result
    return result


def _as_probe(target: Any) -> Callable[[], Any]:
    from telegram.ext import Application

    if isinstance(target, Application):
        return application_probe(target)
    if callable(target):
        return target
    raise TypeError("start_health_server needs a telegram.ext.Application or a probe callable")


@dataclass
class HealthServer:
    """A running ``/healthz`` server. ``await server.close()`` (or ``await server()``)."""

    runner: web.AppRunner
    host: str
    port: int
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}/healthz"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.runner.cleanup()

    async def __call__(self) -> None:
        await self.close()


async def start_health_server(
    application_or_probe: Any, host: str = "127.0.0.1", port: int = 0
) -> HealthServer:
    """Serve ``GET /healthz`` on ``host:port`` (port 0 = ephemeral).

    ``application_or_probe`` is a PTB :class:`~telegram.ext.Application` (checks
    that it and its updater are running) or a probe callable (sync or async)
    returning a bool or a mapping of check name → bool, e.g.
    :func:`application_probe` with a :func:`database_probe`.
    """
    from aiohttp import web

    probe = _as_probe(application_or_probe)
    started = time.monotonic()

    async def healthz(request: web.Request) -> web.Response:
        try:
            result = await asyncio.wait_for(_call(probe), PROBE_TIMEOUT_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing probe is "unhealthy", never a 500
            log.warning("health probe failed: %s", type(exc).__name__)
            result = {"probe": False}
        checks = dict(result) if isinstance(result, Mapping) else {"ok": bool(result)}
        healthy = all(bool(v) for v in checks.values())
        body = {
            "status": "ok" if healthy else "unavailable",
            "checks": {name: bool(v) for name, v in checks.items()},
            "uptime_seconds": round(time.monotonic() - started, 1),
        }
        return web.json_response(
            body, status=200 if healthy else 503, headers={"Cache-Control": "no-store"}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    if port == 0:
        bound = int(runner.addresses[0][1])
    return HealthServer(runner, host, bound)


def install_health_server(
    application: Application[Any, Any, Any, Any, Any, Any],
    settings: Settings,
    *,
    host: str = "127.0.0.1",
) -> None:
    """Serve ``/healthz`` on ``settings.health_port`` while ``application`` runs.

    For ``run_polling`` / :func:`bot.webhook.run_webhook`: chains the application's
    ``post_init`` (the server starts once the bot is initialised) and
    ``post_shutdown`` (it stops last). Checks: :func:`bot_probe`. No-op when
    ``HEALTH_PORT`` is not set.
    """
    port = settings.health_port
    if not port:
        return
    probe = bot_probe(application, settings)
    previous_init = application.post_init
    previous_shutdown = application.post_shutdown
    servers: list[HealthServer] = []

    async def post_init(app: Any) -> None:
        if previous_init is not None:
            await previous_init(app)
        servers.append(await start_health_server(probe, host, port))
        log.info("health endpoint on %s:%s/healthz", host, port)

    async def post_shutdown(app: Any) -> None:
        while servers:
            await servers.pop().close()
        if previous_shutdown is not None:
            await previous_shutdown(app)

    application.post_init = post_init
    application.post_shutdown = post_shutdown


# --------------------------------------------------------------------------- CLI


def _port_from_settings() -> int | None:
    try:
        return Settings().health_port
    except Exception:  # a broken setting must not crash the health check noisily
        return None


def healthcheck_main(argv: list[str]) -> int:
    """``daisybot healthcheck [--url URL] [--timeout S]``: exit 0 iff /healthz says 200."""
    ap = argparse.ArgumentParser(
        prog="daisybot healthcheck",
        description="Exit 0 if the running bot's /healthz answers 200 (for Docker's "
        "HEALTHCHECK). The port comes from HEALTH_PORT.",
    )
    ap.add_argument("--url", default=None, help="full URL to ask instead of HEALTH_PORT's")
    ap.add_argument("--timeout", type=float, default=4.0, metavar="SECONDS")
    args = ap.parse_args(argv)
    url = args.url
    if url is None:
        port = _port_from_settings()
        if not port:
            print("healthcheck: HEALTH_PORT is not set", file=sys.stderr)
            return 1
        url = f"http://127.0.0.1:{port}/healthz"
    try:
        # No proxy: the bot is on this host (an http_proxy in the env must not interfere).
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=args.timeout) as response:
            status = response.status
            payload = response.read(4096)
    except urllib.error.HTTPError as exc:
        status = exc.code
        try:
            payload = exc.read(4096)
        except OSError:
            payload = b""
    except (OSError, ValueError) as exc:
        print(f"healthcheck: no answer ({type(exc).__name__})", file=sys.stderr)
        return 1
    if status == 200:
        return 0
    failed = ""
    try:
        checks = json.loads(payload).get("checks", {})
        failed = ", ".join(k for k, v in checks.items() if not v)
    except (ValueError, AttributeError):
        pass
    print(f"healthcheck: HTTP {status}" + (f" ({failed})" if failed else ""), file=sys.stderr)
    return 1
