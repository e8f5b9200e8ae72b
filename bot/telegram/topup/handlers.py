"""Top-up handlers: the packs, the invoice, the pre-checkout query, the payment and
the admin's ``/refund``."""

from __future__ import annotations

import logging
import re
from typing import cast

from telegram import LabeledPrice, Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.services.api import EngineError, NotAllowed, RefundStatus, TopUpsUnavailable
from bot.telegram.common.handlers import (
    answer,
    is_admin,
    lang_of,
    may_use,
    send,
    show,
    user_id_of,
)
from bot.telegram.common.views import engine_error, notice
from bot.telegram.context import BotContext, DaisyApp
from bot.telegram.menu.callbacks import menu
from bot.telegram.texts import N_
from bot.telegram.topup import views
from bot.telegram.topup.callbacks import TopPackCb
from bot.telegram.topup.notices import tell_refunded

__all__ = [
    "CHARGE_ID",
    "ignore_update",
    "pre_checkout",
    "refund_command",
    "successful_payment",
    "topup_list_callback",
    "topup_pack_callback",
]

log = logging.getLogger(__name__)

# A telegram_payment_charge_id as an admin would paste it.
CHARGE_ID = re.compile(r"[A-Za-z0-9_\-.:]{1,128}")


async def topup_list_callback(update: Update, context: BotContext) -> None:
    """Wallet → Top up: the packs with their Stars prices."""
    query = update.callback_query
    assert query is not None
    lang = lang_of(update, context)
    await answer(query)
    engine = context.engine
    if engine.users_bring_keys:
        await show(update, context, notice(lang, "topup_own_key"))
        return
    try:
        choices = engine.topup_packs()
    except TopUpsUnavailable:
        await show(update, context, notice(lang, "topup_unavailable"))
        return
    await show(update, context, views.packs(lang, choices))


async def topup_pack_callback(update: Update, context: BotContext) -> None:
    """A pack: a new top-up row, then its invoice (a new message: an invoice
    cannot replace a text message)."""
    query = update.callback_query
    assert query is not None
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    await answer(query)
    engine = context.engine
    pack = TopPackCb.parse(query.data)
    try:
        topup = await engine.open_topup(user_id, pack.number - 1)
    except TopUpsUnavailable:
        key = N_("topup_own_key") if engine.users_bring_keys else N_("topup_unavailable")
        await show(update, context, notice(lang, key))
        return
    except NotAllowed:  # a pack that is no longer offered: the current list
        await show(update, context, views.packs(lang, engine.topup_packs()))
        return
    except EngineError as exc:
        await show(update, context, engine_error(lang, exc, retry=menu("wal")))
        return
    title, description, price_label = views.invoice_texts(lang, topup.amount)
    try:
        message = await context.bot.send_invoice(
            chat_id=user_id, title=title, description=description, payload=topup.payload,
            currency=topup.currency, prices=[LabeledPrice(price_label, topup.price)],
            provider_token=None,
        )
    except TelegramError as exc:
        log.warning("top-up %d: sendInvoice failed: %s", topup.id, exc)
        await show(update, context, notice(lang, "topup_unavailable"))
        return
    await engine.set_topup_message(user_id, topup.id, message.chat_id, message.message_id)


async def pre_checkout(update: Update, context: BotContext) -> None:
    """Answered at once (Telegram waits 10 s): one database read, no upstream
    call. Runs before the access gate (a pre-checkout query has no chat)."""
    query = update.pre_checkout_query
    if query is None:
        return
    lang = lang_of(update, context)
    user_id = query.from_user.id
    refusal = None
    ok = False
    try:
        allowed = may_use(user_id, context.settings) and user_id not in context.bot_data.banned
        if allowed and context.engine.topups_available:
            refusal = await context.engine.topup_pre_checkout(
                user_id, query.invoice_payload, query.currency, query.total_amount
            )
            ok = refusal is None
    except Exception:
        log.exception("pre-checkout check failed; declining")
        ok, refusal = False, None
    if ok:
        await query.answer(ok=True)
    else:
        log.info("pre-checkout of user %s declined: %s", user_id, refusal)
        await query.answer(ok=False, error_message=views.pre_checkout_error(lang, refusal))
    raise ApplicationHandlerStop


async def successful_payment(update: Update, context: BotContext) -> None:
    """Credit the payment (exactly once per charge id), then show the balance. A
    repeated update finds the charge recorded and says nothing again."""
    message = update.message
    payment = None if message is None else message.successful_payment
    if payment is None:
        return
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    engine = context.engine
    try:
        outcome = await engine.record_topup_payment(
            user_id, payment.invoice_payload, payment.currency, payment.total_amount,
            payment.telegram_payment_charge_id, payment.provider_payment_charge_id,
        )
    except TopUpsUnavailable:
        log.error("payment %s of user %s in a mode without top-ups: refund it by hand",
                  payment.telegram_payment_charge_id, user_id)
        raise ApplicationHandlerStop from None
    if not outcome.topup.notified:
        await send(update, context, views.paid(lang, outcome))
        await engine.topup_notified(outcome.topup.id)
    raise ApplicationHandlerStop


async def ignore_update(update: Update, context: BotContext) -> None:
    """Nothing to do (e.g. Telegram's refunded_payment service message)."""


async def refund_command(update: Update, context: BotContext) -> None:
    """``/refund CHARGE_ID`` (admins, operator mode)."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if not is_admin(update, context):
        await send(update, context, notice(lang, "not_allowed"))
        return
    engine = context.engine
    if engine.users_bring_keys:
        await send(update, context, notice(lang, "admin_operator_only"))
        return
    args = list(context.args or [])
    if len(args) != 1 or not CHARGE_ID.fullmatch(args[0]):
        await send(update, context, notice(lang, "refund_usage"))
        return
    charge_id = args[0]
    try:
        outcome = await engine.refund_topup(user_id, charge_id)
    except NotAllowed:
        await send(update, context, notice(lang, "not_allowed"))
        return
    except TopUpsUnavailable:
        await send(update, context, notice(lang, "topup_unavailable"))
        return
    log.info("admin %s: refund of %s: %s", user_id, charge_id, outcome.status.value)
    await send(update, context, views.refund_report(lang, outcome, charge_id))
    if outcome.status == RefundStatus.DONE:
        await tell_refunded(cast(DaisyApp, context.application), outcome)
