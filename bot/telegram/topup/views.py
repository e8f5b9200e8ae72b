"""Top-up screens and texts (the invoice's title, description and price label are
plain text: Telegram shows them without HTML)."""

from __future__ import annotations

from decimal import Decimal

from bot.services.api import Pack, PaymentOutcome, PreCheckoutRefusal, RefundOutcome, RefundStatus
from bot.telegram.common.keyboards import home_button, markup, nav_button
from bot.telegram.common.views import Screen, notice
from bot.telegram.texts import N_, plain, t
from bot.telegram.topup.keyboards import packs_kb

__all__ = [
    "invoice_texts",
    "packs",
    "paid",
    "pre_checkout_error",
    "refund_report",
    "refunded_notice",
]

# Telegram's limits for an invoice.
TITLE_MAX = 32
DESCRIPTION_MAX = 255

_REFUSALS: dict[PreCheckoutRefusal | None, str] = {
    PreCheckoutRefusal.UNKNOWN: N_("precheckout_unknown"),
    PreCheckoutRefusal.AMOUNT: N_("precheckout_amount"),
    PreCheckoutRefusal.EXPIRED: N_("precheckout_expired"),
    PreCheckoutRefusal.USED: N_("precheckout_used"),
    None: N_("precheckout_unavailable"),  # no top-ups in this mode / right now
}

_REFUND_KEYS: dict[RefundStatus, str] = {
    RefundStatus.DONE: N_("refund_done"),
    RefundStatus.PENDING: N_("refund_pending"),
    RefundStatus.REFUSED: N_("refund_refused"),
    RefundStatus.SPENT: N_("refund_spent"),
}
_NOT_PAID_KEYS: dict[str, str] = {
    "refunding": N_("refund_in_progress"),
    "refunded": N_("refund_already"),
    "refund_failed": N_("refund_failed_before"),
    "open": N_("refund_not_found"),
}


def packs(lang: str, choices: tuple[Pack, ...]) -> Screen:
    return Screen(t(lang, "topup_title"), packs_kb(lang, choices))


def invoice_texts(lang: str, amount: Decimal) -> tuple[str, str, str]:
    """(title, description, price label) of a top-up invoice."""
    title = plain(lang, "invoice_title", amount=amount)[:TITLE_MAX]
    description = plain(lang, "invoice_description", amount=amount)[:DESCRIPTION_MAX]
    return title, description, plain(lang, "invoice_label", amount=amount)


def pre_checkout_error(lang: str, refusal: PreCheckoutRefusal | None) -> str:
    return plain(lang, _REFUSALS[refusal])


def paid(lang: str, outcome: PaymentOutcome) -> Screen:
    topup = outcome.topup
    return Screen(
        t(lang, "topup_paid", amount=topup.amount, balance=outcome.balance,
          charge_id=topup.charge_id or "—"),
        markup([[nav_button(lang, "wal"), home_button(lang)]]),
    )


def refunded_notice(lang: str, outcome: RefundOutcome) -> str:
    assert outcome.topup is not None
    return t(lang, "topup_refunded", amount=outcome.topup.amount, stars=outcome.topup.price,
             balance=outcome.balance or Decimal(0))


def refund_report(lang: str, outcome: RefundOutcome, charge_id: str) -> Screen:
    """What the admin sees after ``/refund``."""
    topup = outcome.topup
    if outcome.status == RefundStatus.NOT_FOUND or topup is None:
        return notice(lang, "refund_not_found", charge_id=charge_id)
    if outcome.status == RefundStatus.NOT_PAID:
        return notice(lang, _NOT_PAID_KEYS.get(topup.state, "refund_not_found"),
                      charge_id=charge_id)
    return notice(
        lang, _REFUND_KEYS[outcome.status], amount=topup.amount, stars=topup.price,
        user_id=topup.user_id, balance=outcome.balance or Decimal(0), charge_id=charge_id,
    )
