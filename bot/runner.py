"""``daisybot run``: the Telegram bot, long polling (or a webhook when WEBHOOK_URL is set)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import ValidationError
from telegram import Update

from bot.config import Settings
from bot.logging_setup import configure_logging

if TYPE_CHECKING:
    from bot.telegram.context import DaisyApp

__all__ = ["main"]

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
                  settings.webhook_secret, settings.database_url)
        if s is not None
    ]
    if settings.database_url is not None:  # its password alone too (e.g. in an error)
        password = urlsplit(settings.database_url.get_secret_value()).password
        if password:
            secrets.append(password)
    configure_logging(settings.log_level, secrets)

    from bot.app import build_application
    from bot.health import install_health_server
    from bot.services.crypto import ConfigurationError
    from storage.errors import DatabaseErrors
    from storage.health import check_writable

    try:
        application = build_application(settings)  # checks the settings, opens nothing
        # Before Telegram is contacted: an unwritable database is one clear line.
        asyncio.run(check_writable(settings.database_target))
        install_health_server(application, settings)  # GET /healthz when HEALTH_PORT is set
        _run(application, settings)
    except ConfigurationError as exc:
        print(f"daisybot: {exc}", file=sys.stderr)
        return 2
    except DatabaseErrors as exc:  # at the check, or when the engine opens it
        print(f"daisybot: {_database_problem(settings, exc)}", file=sys.stderr)
        return 1
    return 0


def _database_problem(settings: Settings, exc: Exception) -> str:
    reason = str(exc).strip() or type(exc).__name__
    if settings.database_url is not None:
        from storage.pg import redact_url

        url = settings.database_url.get_secret_value()
        password = urlsplit(url).password
        if password:
            reason = reason.replace(password, "***")
        return (
            f"the PostgreSQL database {redact_url(url)} cannot be reached or written "
            f"({reason}). Check DATABASE_URL (host, port, user, password, database name), "
            "that the server is running and accepts connections from here, and that the "
            "user may create tables in that database."
        )
    return (
        f"the database {settings.database_path} cannot be written ({reason}). Check that "
        "the file and its folder are writable (a Docker volume mounted read-write) and the "
        "disk has space."
    )


def _run(application: DaisyApp, settings: Settings) -> None:
    webhook_url = settings.webhook_public_url
    if webhook_url is not None:
        # webhook_problem() has checked the settings: a secret is set.
        assert settings.webhook_secret is not None
        log.info("starting (webhook on %s:%s)", settings.webhook_listen, settings.webhook_port)
        # Our server (not PTB's): it checks the secret from the headers, before reading
        # a body, and caps bodies at WEBHOOK_MAX_BODY_BYTES; setWebhook gives Telegram
        # the secret.
        from bot.webhook import run_webhook

        run_webhook(application, settings)
    else:
        log.info("starting (long polling)")
        application.run_polling(allowed_updates=Update.ALL_TYPES)
