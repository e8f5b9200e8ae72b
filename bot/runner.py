"""``daisybot run``: the Telegram bot, long polling (or a webhook when WEBHOOK_URL is set)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sqlite3
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from telegram import Update

from bot.config import Settings
from bot.logging_setup import configure_logging

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.health import HealthServer
    from bot.telegram.context import DaisyApp

__all__ = ["main", "open_bot_database", "serve"]

log = logging.getLogger("bot.runner")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="daisybot run",
        description="Run the Telegram bot. Settings come from the environment and .env "
        "(see .env.example).",
    )
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        settings = Settings(_env_file=args.env_file)
    except ValidationError as exc:
        print(f"daisybot: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if settings.bot_token is None or not settings.bot_token.get_secret_value().strip():
        print(
            "daisybot: BOT_TOKEN is not set. Create a bot with @BotFather and put its token "
            "in BOT_TOKEN (environment or .env).",
            file=sys.stderr,
        )
        return 2
    webhook_problem = settings.webhook_problem()
    if webhook_problem is not None:
        print(f"daisybot: {webhook_problem}", file=sys.stderr)
        return 2
    secrets = [
        s.get_secret_value()
        for s in (settings.bot_token, settings.daisysim_api_key, settings.encryption_key,
                  settings.webhook_secret)
        if s is not None
    ]
    configure_logging(settings.log_level, secrets)

    from bot.app import build_application
    from bot.services.crypto import ConfigurationError
    from storage import is_postgres_url
    from storage.health import check_writable

    try:
        application = build_application(settings)  # checks the settings, opens nothing
        # Before Telegram is contacted: an unwritable database is one clear line.
        if not is_postgres_url(database_target(settings)):
            asyncio.run(check_writable(settings.database_path))
        return asyncio.run(serve(application, settings))
    except ConfigurationError as exc:
        print(f"daisybot: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # at the check, or when the engine opens it
        print(f"daisybot: {_database_problem(settings.database_path, exc)}", file=sys.stderr)
        return 1


def _database_problem(path: str, exc: sqlite3.Error) -> str:
    reason = str(exc).strip() or type(exc).__name__
    return (
        f"the database {path} cannot be written ({reason}). Check that the file and its "
        "folder are writable (a Docker volume mounted read-write) and the disk has space."
    )


def database_target(settings: Settings) -> str:
    """DATABASE_URL (PostgreSQL) when set, else the SQLite file DATABASE_PATH."""
    url = getattr(settings, "database_url", None)
    if url is not None:
        value = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url)
        if value.strip():
            return value.strip()
    return settings.database_path


async def open_bot_database(settings: Settings) -> Any:
    """The bot's one database connection (opened and migrated)."""
    from storage import open_database

    return await open_database(database_target(settings))


def _watch_connection(db: Any, callback: Callable[[], object]) -> None:
    """Have ``callback`` called when the database connection is lost (PostgreSQL;
    a SQLite file is not a connection that can be lost)."""
    register = getattr(db, "on_connection_lost", None)
    if register is not None:
        register(callback)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(
    application: DaisyApp,
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    database: Any = None,
) -> int:
    """The life of ``daisybot run``, from opening the database to closing it, as one
    coroutine (tests call it; ``stop``: set it to stop, else SIGTERM/SIGINT do).

    1. open the database (migrated) and give it to the engine (not started);
    2. ``application.initialize()`` (getMe) and ``/healthz`` on HEALTH_PORT, with
       ``"role"``: a follower answers for its database connection only;
    3. wait for leadership (:class:`~bot.leadership.Leadership`: at once on SQLite;
       on PostgreSQL whenever no other process holds the lock, tried every
       LEADER_POLL_INTERVAL seconds);
    4. the leader: :func:`bot.app.startup` (the engine's restart recovery, its jobs),
       then long polling, or the webhook (:func:`bot.webhook.serve_webhook`);
    5. on ``stop``: stop taking updates, finish the ones taken, close the engine,
       give leadership up and close the connection, so a follower takes over at once.

    A lost database connection ends the process at once with exit code 75 (see
    :mod:`bot.leadership`). ``clock``: what the follower's wait sleeps on;
    ``database``: an open database to use instead (the caller closes it)."""
    from bot.health import bot_probe, role_probe, start_health_server
    from bot.leadership import Leadership
    from storage.leader import LeaderRepo

    if stop is None:
        stop = _stop_on_signals()
    db = database if database is not None else await open_bot_database(settings)
    repo = LeaderRepo(db)
    leadership = Leadership(repo, poll_interval=settings.leader_poll_interval, clock=clock)
    _watch_connection(db, leadership.connection_lost)
    engine = application.bot_data.engine_
    use_database = getattr(engine, "use_database", None)
    if use_database is not None:
        use_database(db)
    health: HealthServer | None = None
    initialized = False
    try:
        await application.initialize()
        initialized = True
        if settings.health_port:
            probe = role_probe(bot_probe(application, settings), lambda: leadership.role,
                               repo.ping)
            health = await start_health_server(probe, "127.0.0.1", settings.health_port,
                                               role=lambda: leadership.role)
            log.info("health endpoint on 127.0.0.1:%s/healthz", settings.health_port)
        if not await leadership.wait(stop):
            log.info("stopping (follower)")
            return 0
        await _lead(application, settings, stop)
    finally:
        await _wind_down(application, initialized)
        if health is not None:
            await health.close()
        if not leadership.lost:
            with contextlib.suppress(Exception):  # closing the connection releases it too
                await leadership.release()
            if database is None:
                await db.close()
    return 0


async def _lead(application: DaisyApp, settings: Settings, stop: asyncio.Event) -> None:
    if application.post_init is not None:
        await application.post_init(application)  # bot.app.startup: the engine starts
    if settings.webhook_public_url is not None:
        log.info("starting (webhook on %s:%s)", settings.webhook_listen, settings.webhook_port)
        # Our server (not PTB's): it checks the secret from the headers, before reading
        # a body, and caps bodies at WEBHOOK_MAX_BODY_BYTES; setWebhook gives Telegram
        # the secret.
        from bot.webhook import serve_webhook

        await serve_webhook(application, settings, stop)
        return
    log.info("starting (long polling)")
    assert application.updater is not None
    await application.updater.start_polling(allowed_updates=Update.ALL_TYPES)
    await application.start()
    await stop.wait()
    log.info("stopping")


async def _wind_down(application: DaisyApp, initialized: bool) -> None:
    """What ``run_polling`` does after its loop: updater, application, hooks."""
    updater = application.updater
    if updater is not None and updater.running:
        await updater.stop()
    if application.running:
        await application.stop()
        if application.post_stop is not None:
            await application.post_stop(application)
    if initialized:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)  # bot.app.shutdown: the engine
