"""Operator alerts to the admins (the engine decides when: :mod:`bot.services.alerts`).

The engine stores one message per admin when an alert fires and calls the
listener; :class:`AlertSender` then sends every waiting one from a PTB job named
``ops:alerts`` (also once at start-up, for messages a restart interrupted), in
each admin's language, and marks it sent. An admin who blocked the bot is given
up on; other failures are tried again after :data:`RETRY_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.telegram.admin.views import operator_alert
from bot.telegram.common.handlers import user_lang

if TYPE_CHECKING:
    from bot.telegram.context import BotContext, DaisyApp

__all__ = ["JOB_NAME", "AlertSender"]

log = logging.getLogger(__name__)

JOB_NAME = "ops:alerts"
RETRY_SECONDS = 30.0


class AlertSender:
    def __init__(self, application: DaisyApp) -> None:
        self._app = application
        self._lock = asyncio.Lock()
        self._closed = False

    def wake(self, delay: float = 0.0) -> None:
        """Send the waiting alerts soon (the engine's listener; idempotent)."""
        job_queue = self._app.job_queue
        if self._closed or job_queue is None:
            return
        if delay <= 0 or not job_queue.get_jobs_by_name(JOB_NAME):
            job_queue.run_once(self._run, when=max(0.0, delay), name=JOB_NAME)

    async def _run(self, context: BotContext) -> None:
        await self.deliver()

    async def deliver(self) -> int:
        """Send every waiting alert; returns how many were sent."""
        data = self._app.bot_data
        engine = data.engine
        default = data.settings.default_locale if data.settings is not None else "en"
        sent = 0
        retry = False
        async with self._lock:
            for alert in await engine.pending_alerts():
                lang = await user_lang(data, alert.admin_id, default)
                try:
                    await self._app.bot.send_message(
                        chat_id=alert.admin_id, text=operator_alert(lang, alert)
                    )
                except (Forbidden, BadRequest) as exc:
                    log.warning("operator alert to admin %s not delivered: %s",
                                alert.admin_id, type(exc).__name__)
                    await engine.alert_undeliverable(alert.id, permanent=True)
                    continue
                except (RetryAfter, TelegramError) as exc:
                    log.warning("operator alert to admin %s failed: %s", alert.admin_id, exc)
                    await engine.alert_undeliverable(alert.id, permanent=False)
                    retry = True
                    continue
                await engine.alert_delivered(alert.id)
                sent += 1
        if retry:
            self.wake(RETRY_SECONDS)
        return sent

    def close(self) -> None:
        self._closed = True
