"""Top-up upkeep: at start-up and then every ``TOPUP_RECONCILE_SECONDS`` (one job,
named ``topup:upkeep``), credit payments the bot never saw (getStarTransactions:
e.g. a crash between the payment and its credit) and retry pending refunds."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from bot.services.api import RefundStatus
from bot.services.stars import StarsMethod
from bot.telegram.topup.notices import tell_credited, tell_refunded
from bot.telegram.topup.stars import TelegramStars

if TYPE_CHECKING:
    from bot.telegram.context import BotContext, DaisyApp

__all__ = ["JOB_NAME", "start_topups", "upkeep"]

log = logging.getLogger(__name__)

JOB_NAME = "topup:upkeep"


async def upkeep(application: DaisyApp) -> None:
    """Reconcile payments and retry refunds now (errors are logged: the next run
    tries again)."""
    engine = application.bot_data.engine
    if not engine.topups_available:
        return
    try:
        credited = await engine.reconcile_topups()
    except Exception:
        log.exception("top-up reconciliation failed")
        credited = []
    for outcome in credited:
        await tell_credited(application, outcome)
    try:
        finished = await engine.retry_topup_refunds()
    except Exception:
        log.exception("top-up refund retries failed")
        finished = []
    for refund in finished:
        if refund.status == RefundStatus.DONE:
            await tell_refunded(application, refund)


async def _job(context: BotContext) -> None:
    await upkeep(cast("DaisyApp", context.application))


async def start_topups(application: DaisyApp) -> None:
    """Attach Telegram Stars to the engine (operator mode), catch up once, and keep
    the upkeep job scheduled (deterministic name: never two)."""
    data = application.bot_data
    engine = data.engine
    settings = data.settings
    if settings is None or engine.users_bring_keys:
        return
    engine.use_topup_method(StarsMethod(TelegramStars(application.bot), settings.stars_per_usd))
    await upkeep(application)
    queue = application.job_queue
    if queue is None:  # pragma: no cover - job-queue extra is a dependency
        return
    for job in queue.get_jobs_by_name(JOB_NAME):
        job.schedule_removal()
    interval = float(settings.topup_reconcile_seconds)
    queue.run_repeating(_job, interval=interval, first=interval, name=JOB_NAME)
