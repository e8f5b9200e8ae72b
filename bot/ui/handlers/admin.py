"""Admin commands: ``/admin`` (stats), ``/credit`` and ``/debit`` (operator mode)."""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation

from telegram import Update

from bot.core.api import EngineError, InsufficientFunds, NotAllowed
from bot.ui import views
from bot.ui.context import BotContext
from bot.ui.handlers.common import lang_of, own_key, send, user_id_of
from bot.ui.texts import t
from bot.ui.views import Screen

__all__ = ["adjust_command", "admin_command", "parse_adjustment"]

log = logging.getLogger(__name__)

_USER_ID = re.compile(r"[1-9][0-9]{0,14}")
_AMOUNT = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,4})?")
MAX_AMOUNT = Decimal("1000000")
_NOTE_MAX = 200


def parse_adjustment(args: list[str]) -> tuple[int, Decimal, str] | None:
    """``USER_ID AMOUNT [note...]`` → (user id, positive amount, note), or None.

    Strict: a plain positive decimal with at most 4 decimals (no sign, exponent,
    thousands separator, NaN or infinity)."""
    if len(args) < 2 or not _USER_ID.fullmatch(args[0]) or not _AMOUNT.fullmatch(args[1]):
        return None
    try:
        amount = Decimal(args[1])
    except InvalidOperation:  # pragma: no cover - the regex already rules this out
        return None
    if amount <= 0 or amount > MAX_AMOUNT:
        return None
    note = " ".join(args[2:])[:_NOTE_MAX]
    return int(args[0]), amount, note


def _is_admin(context: BotContext, user_id: int) -> bool:
    return user_id in context.settings.admin_ids


async def admin_command(update: Update, context: BotContext) -> None:
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if not _is_admin(context, user_id):
        await send(update, context, Screen(t(lang, "not_allowed")))
        return
    try:
        stats = await context.engine.stats(user_id)
    except NotAllowed:
        await send(update, context, Screen(t(lang, "not_allowed")))
        return
    await send(update, context, views.stats(lang, stats))


async def adjust_command(update: Update, context: BotContext) -> None:
    """``/credit USER_ID AMOUNT [note]`` and ``/debit USER_ID AMOUNT [note]``."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    message = update.message
    if message is None or message.text is None:
        return
    debit = message.text.lstrip("/").lower().startswith("debit")
    if not _is_admin(context, user_id):
        await send(update, context, Screen(t(lang, "not_allowed")))
        return
    if own_key(context):
        await send(update, context, Screen(t(lang, "admin_operator_only")))
        return
    parsed = parse_adjustment(list(context.args or []))
    if parsed is None:
        usage = "admin_usage_debit" if debit else "admin_usage_credit"
        await send(update, context, Screen(t(lang, usage)))
        return
    target, amount, note = parsed
    signed = -amount if debit else amount
    try:
        balance = await context.engine.admin_adjust(user_id, target, signed, note)
    except InsufficientFunds:
        await send(update, context,
                   Screen(t(lang, "admin_debit_too_much", amount=amount, user_id=target)))
        return
    except NotAllowed:
        await send(update, context, Screen(t(lang, "not_allowed")))
        return
    except EngineError as exc:
        await send(update, context, views.engine_error(lang, exc, own_key=False))
        return
    log.info("admin %s adjusted wallet of %s by %s", user_id, target, signed)
    key = "admin_debited" if debit else "admin_credited"
    await send(update, context, Screen(t(lang, key, amount=amount, user_id=target,
                                         balance=balance)))
