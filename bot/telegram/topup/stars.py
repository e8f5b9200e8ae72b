"""The Bot API side of Telegram Stars (:class:`bot.services.stars.StarsBackend`):
``refundStarPayment`` and ``getStarTransactions``."""

from __future__ import annotations

import logging

from telegram import Bot, TransactionPartnerUser
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.domain.topups import IncomingPayment, RefundResult

__all__ = ["TelegramStars", "refund_result"]

log = logging.getLogger(__name__)

INVOICE_PAYMENT = "invoice_payment"


def refund_result(exc: TelegramError) -> RefundResult:
    """What a refundStarPayment error means: CHARGE_ALREADY_REFUNDED is done; any
    other 400/403 is Telegram's final word; the rest (network, 429, 5xx) is
    transient."""
    if isinstance(exc, BadRequest):
        if "CHARGE_ALREADY_REFUNDED" in str(exc).upper():
            return RefundResult.DONE
        return RefundResult.REFUSED
    if isinstance(exc, Forbidden):
        return RefundResult.REFUSED
    return RefundResult.RETRY


class TelegramStars:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def refund(self, user_id: int, charge_id: str) -> RefundResult:
        try:
            done = await self.bot.refund_star_payment(user_id, charge_id)
        except TelegramError as exc:
            result = refund_result(exc)
            log.warning("refundStarPayment failed (%s): %s", result.value, exc)
            return result
        return RefundResult.DONE if done else RefundResult.RETRY

    async def transactions(self, offset: int, limit: int) -> tuple[list[IncomingPayment], int]:
        page = await self.bot.get_star_transactions(offset=offset, limit=limit)
        found: list[IncomingPayment] = []
        for tx in page.transactions:
            source = tx.source
            if (
                isinstance(source, TransactionPartnerUser)
                and source.transaction_type == INVOICE_PAYMENT
            ):
                found.append(IncomingPayment(
                    charge_id=tx.id, user_id=source.user.id, payload=source.invoice_payload,
                    amount=tx.amount, date=tx.date.timestamp(),
                ))
        return found, len(page.transactions)
