"""The composition root: the engine (which opens the database and the DaisySim
clients) and the python-telegram-bot Application around it, wired together.
Handlers are registered by :func:`bot.telegram.routes.register`.

Lifecycle (``run_polling``/``run_webhook`` do this; tests call it by hand)::

    app = build_application(settings, clock=clock)
    await app.initialize()
    await startup(app)          # post_init: engine.start(), event subscription, commands
    await app.start()
    await app.updater.start_polling(...)
    ...
    await app.updater.stop(); await app.stop()
    await shutdown(app)         # post_shutdown: engine.close()
    await app.shutdown()

The JobQueue drives the engine (see :mod:`bot.telegram.jobs`): a job named
``engine:tick`` runs ``engine.run_due()`` at the engine's next due time.
"""

from __future__ import annotations

import logging
from typing import Any, cast
from urllib.parse import urlsplit

from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ApplicationBuilder, ContextTypes, Defaults
from telegram.request import BaseRequest

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.liveness import FeedRequest, UpdateFeed
from bot.logging_setup import install_redaction, quiet_http_loggers, register_secret
from bot.services.api import EngineAPI
from bot.telegram import routes
from bot.telegram.admin.alerts import AlertSender
from bot.telegram.admin.broadcast import BroadcastRunner
from bot.telegram.application import DaisyApplication
from bot.telegram.catalogues import LANGUAGES
from bot.telegram.common.support import use_support_contact
from bot.telegram.context import BotContext, BotData, DaisyApp
from bot.telegram.events import EventRenderer
from bot.telegram.flood import flood_notifier, key_message
from bot.telegram.jobs import EngineScheduler, kick
from bot.telegram.menu.views import bot_commands
from bot.telegram.ratelimit import TelegramRateLimiter
from bot.telegram.request import make_request
from bot.telegram.texts import use_date_time_entities
from bot.telegram.topup.jobs import start_topups
from bot.telegram.updates import PerUserUpdateProcessor

__all__ = [
    "bot_api_request",
    "build_application",
    "kick",
    "shutdown",
    "startup",
]

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 3
MAX_CONCURRENT_UPDATES = 64  # users served at once (one update per user at a time)
MAX_QUEUED_PER_USER = 8  # a user's updates waiting behind their running one; more are dropped
POOL_TIMEOUT = 10.0  # seconds to wait for a free connection to the Bot API


def build_application(
    settings: Settings,
    *,
    engine: EngineAPI | None = None,
    clock: Clock | None = None,
    daisysim_transport: Any = None,
) -> DaisyApp:
    """The Application, not yet initialized.

    ``engine``: an engine owned by the caller — :func:`startup` still calls its
    ``start()``, but :func:`shutdown` leaves closing it to the caller. Without
    one, ``Engine(settings, clock=..., transport=daisysim_transport)`` is built here
    (raises ``ConfigurationError`` on unusable settings), started by
    :func:`startup` and closed by :func:`shutdown`. ``clock``: shared with the engine (tests pass a
    VirtualClock); job delays are computed from it."""
    if settings.bot_token is None:
        raise ValueError("BOT_TOKEN is not set")
    token = settings.bot_token.get_secret_value()
    install_redaction()
    register_secret(token)
    if settings.daisysim_api_key is not None:
        register_secret(settings.daisysim_api_key.get_secret_value())
    if settings.encryption_key is not None:
        register_secret(settings.encryption_key.get_secret_value())
    if settings.webhook_secret is not None:
        register_secret(settings.webhook_secret.get_secret_value())
    proxy_password = urlsplit(settings.telegram_proxy_url or "").password
    if proxy_password:
        register_secret(proxy_password)
    if settings.database_url is not None:  # the URL and its password, never logged
        register_secret(settings.database_url.get_secret_value())
        register_secret(urlsplit(settings.database_url.get_secret_value()).password)
    quiet_http_loggers()
    use_date_time_entities(settings.date_time_entities)
    use_support_contact(settings.support_contact)

    clock = clock or SystemClock()
    context_types = ContextTypes(context=BotContext, bot_data=BotData)
    feed = UpdateFeed()  # when updates were last fetched: /healthz reads it
    builder = (
        ApplicationBuilder()
        .application_class(DaisyApplication)
        .token(token)
        .base_url(settings.telegram_api_base)
        .base_file_url(settings.telegram_file_base)
        # Per-chat flood pauses, priorities, superseded edits (see ratelimit.py).
        .rate_limiter(TelegramRateLimiter(clock, max_retries=RATE_LIMIT_RETRIES))
        # Users are served concurrently, each user's updates in order (see updates.py).
        .concurrent_updates(update_processor(settings))
        # The Bot API transport (aiohttp unless TELEGRAM_HTTP_BACKEND=httpx). A modest pool
        # (TELEGRAM_CONNECTION_POOL_SIZE, 32): a request takes a connection only after the
        # flood limiter let it through (about 30/s), for one round trip; an idle aiohttp
        # connection costs nothing per request (httpcore scans its pool on each one).
        .request(bot_api_request(settings))
        .get_updates_request(FeedRequest(feed, bot_api_request(settings, get_updates=True)))
        .context_types(context_types)
        .defaults(Defaults(parse_mode=ParseMode.HTML))
        .post_init(startup)
        .post_shutdown(shutdown)
    )
    # The builder's JobQueue type parameter is not narrowed by context_types().
    application = cast(DaisyApp, builder.build())
    data = application.bot_data
    data.settings = settings
    data.clock = clock
    data.daisysim_transport = daisysim_transport
    data.owns_engine = engine is None
    data.feed = feed
    if engine is None:
        # Constructing opens nothing (the database and HTTP clients are opened by
        # engine.start() in startup()), but it validates the configuration now.
        from bot.services.engine import Engine

        engine = Engine(settings, clock=data.clock, transport=daisysim_transport)
    data.engine_ = engine
    routes.register(application, users_bring_keys=engine.users_bring_keys)
    return application


def bot_api_request(settings: Settings, *, get_updates: bool = False) -> BaseRequest:
    """The HTTP transport to the Bot API the settings choose (see bot/telegram/request.py):
    getUpdates gets its own one-connection object, as PTB does."""
    return make_request(
        settings.telegram_http_backend,
        connection_pool_size=1 if get_updates else settings.telegram_connection_pool_size,
        pool_timeout=1.0 if get_updates else POOL_TIMEOUT,
        proxy=settings.telegram_proxy_url,
    )


def update_processor(settings: Settings) -> PerUserUpdateProcessor:
    """Each user's updates in order, a user's queue bounded (the excess dropped with a
    note) and never holding more than the one slot of its running update."""
    return PerUserUpdateProcessor(
        MAX_CONCURRENT_UPDATES,
        max_queued_per_user=MAX_QUEUED_PER_USER,
        on_dropped=flood_notifier(settings),
        keep=key_message(settings),
    )


async def startup(application: DaisyApp) -> None:
    """Open resources and start the engine (idempotent; ``post_init``)."""
    data = application.bot_data
    if data.started:
        return
    settings = data.settings
    if settings is None:
        raise RuntimeError("build the application with build_application()")
    if data.engine_ is None:
        from bot.services.engine import Engine

        data.engine_ = Engine(settings, clock=data.clock, transport=data.daisysim_transport)
        data.owns_engine = True
    engine = data.engine
    scheduler = EngineScheduler(application, engine, data.clock)
    data.scheduler = scheduler
    engine.set_waker(scheduler.wake)
    engine.subscribe(EventRenderer(application))
    alerts = AlertSender(application)  # operator alerts to the admins
    data.alert_sender = alerts
    engine.set_alert_listener(alerts.wake)
    await engine.start()
    data.started = True
    alerts.wake()  # alerts a restart interrupted go out now
    await start_topups(application)  # operator mode: Stars, missed payments, refunds
    try:
        # the default list (DEFAULT_LOCALE), then once per language (language_code:
        # the two-letter code; "pt_BR" → "pt")
        await application.bot.set_my_commands(
            bot_commands(settings.default_locale, users_bring_keys=engine.users_bring_keys)
        )
        for lang in LANGUAGES:
            await application.bot.set_my_commands(
                bot_commands(lang, users_bring_keys=engine.users_bring_keys),
                language_code=lang.split("_")[0].lower(),
            )
    except TelegramError as exc:
        log.warning("setMyCommands failed: %s", exc)
    # --- h-admin: bans for the gate; broadcasts resume (jobs broadcast:<id>) ---
    data.banned = await engine.banned_users()
    broadcasts = BroadcastRunner(application)
    data.broadcasts = broadcasts
    await broadcasts.resume()
    # First tick right away: events left undelivered before a restart go out now.
    scheduler.wake(data.clock.now())
    log.info("bot started (%s mode)", settings.funding_mode.value)


async def shutdown(application: DaisyApp) -> None:
    """Stop the engine's ticks and close what :func:`startup` opened (``post_shutdown``)."""
    data = application.bot_data
    if data.scheduler is not None:
        data.scheduler.close()
        data.scheduler = None
    if data.alert_sender is not None:
        data.alert_sender.close()
        data.alert_sender = None
    if data.started and data.engine_ is not None:
        if data.owns_engine:
            await data.engine_.close()
            data.engine_ = None
    data.started = False
