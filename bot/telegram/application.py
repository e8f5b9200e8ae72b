"""The PTB Application class of the bot (how it stops)."""

from __future__ import annotations

from typing import Any, cast

from telegram.ext import Application, JobQueue

from bot.telegram import ratelimit
from bot.telegram.context import BotContext, BotData, DaisyApp, DaisyBot
from bot.telegram.ratelimit import STOP_GRACE

__all__ = ["DaisyApplication", "begin_stopping"]


class DaisyApplication(
    Application[DaisyBot, BotContext, dict[Any, Any], dict[Any, Any], BotData,
                JobQueue[BotContext]]
):
    """The PTB Application, stopping within seconds whatever Telegram is doing.

    ``Application.stop()`` waits for every update being handled and for the running
    engine tick; under a 429 storm those would wait out ``retry_after`` after
    ``retry_after``. So before that, the scheduler stops planning ticks and the
    rate limiter stops waiting (:meth:`TelegramRateLimiter.begin_stopping`): what
    cannot be sent within ``STOP_GRACE`` fails fast, and the outbox sends it again
    after the restart."""

    async def stop(self) -> None:
        begin_stopping(cast(DaisyApp, self))
        await super().stop()


def begin_stopping(application: DaisyApp, grace: float = STOP_GRACE) -> None:
    data = application.bot_data
    if data.scheduler is not None:
        data.scheduler.close()
    if data.broadcasts is not None:  # h-admin: broadcast jobs end after what is on the wire
        data.broadcasts.close()
    limiter = application.bot.rate_limiter
    if isinstance(limiter, ratelimit.TelegramRateLimiter):
        limiter.begin_stopping(grace)


