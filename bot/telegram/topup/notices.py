"""Messages to a user about their top-ups sent outside their own update: a payment
found by reconciliation, a refund (best effort: they may have blocked the bot)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram.error import BadRequest, Forbidden, TelegramError

from bot.services.api import PaymentOutcome, RefundOutcome
from bot.telegram.common.handlers import user_lang
from bot.telegram.topup import views

if TYPE_CHECKING:
    from bot.telegram.context import DaisyApp

__all__ = ["tell_credited", "tell_refunded"]

log = logging.getLogger(__name__)


async def _lang(application: DaisyApp, user_id: int) -> str:
    data = application.bot_data
    default = data.settings.default_locale if data.settings is not None else "en"
    return await user_lang(data, user_id, default)


async def tell_credited(application: DaisyApp, outcome: PaymentOutcome) -> None:
    """The balance after a credit, once per top-up."""
    topup = outcome.topup
    if topup.notified:
        return
    lang = await _lang(application, topup.user_id)
    screen = views.paid(lang, outcome)
    try:
        await application.bot.send_message(
            chat_id=topup.user_id, text=screen.text, reply_markup=screen.markup
        )
    except (Forbidden, BadRequest) as exc:
        log.info("top-up notice to %s not delivered: %s", topup.user_id, type(exc).__name__)
    except TelegramError as exc:
        log.warning("top-up notice to %s failed: %s", topup.user_id, exc)
        return  # told on a later run
    await application.bot_data.engine.topup_notified(topup.id)


async def tell_refunded(application: DaisyApp, outcome: RefundOutcome) -> None:
    topup = outcome.topup
    if topup is None:
        return
    lang = await _lang(application, topup.user_id)
    try:
        await application.bot.send_message(
            chat_id=topup.user_id, text=views.refunded_notice(lang, outcome)
        )
    except TelegramError as exc:
        log.info("refund notice to %s not delivered: %s", topup.user_id, type(exc).__name__)
