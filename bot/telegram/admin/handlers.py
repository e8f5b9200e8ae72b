"""Admin commands: ``/admin`` (stats), ``/credit`` and ``/debit`` (operator mode)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from telegram import Update
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.services.api import EngineError, InsufficientFunds, NotAllowed
from bot.telegram.admin import views
from bot.telegram.common.handlers import (
    is_admin,
    lang_of,
    send,
    user_id_of,
    user_lang,
    users_bring_keys,
)
from bot.telegram.common.views import engine_error, notice
from bot.telegram.context import BotContext
from bot.telegram.texts import t

__all__ = ["AdjustError", "adjust_command", "admin_command", "parse_adjustment"]

log = logging.getLogger(__name__)

_USER_ID = re.compile(r"[1-9][0-9]{0,14}")
# A plain positive amount in dollars and cents: no sign, exponent, thousands
# separator, NaN or infinity; at most 2 decimals, after a point or a decimal comma
# ("1,5" is 1.50; "1,500" has 3 digits after the comma and is refused: never a
# thousands separator read as a decimal one).
_AMOUNT = re.compile(r"[0-9]{1,7}(?:[.,][0-9]{1,2})?")
MAX_AMOUNT = Decimal("1000000")
_NOTE_MAX = 200


@dataclass(frozen=True, slots=True)
class AdjustError:
    """Why ``/credit`` / ``/debit`` arguments were refused."""

    reason: Literal["usage", "user_id", "amount"]


def parse_adjustment(args: list[str]) -> tuple[int, Decimal, str] | AdjustError:
    """``USER_ID AMOUNT [note...]`` → (user id, positive amount, note), or the
    reason it is refused: too few arguments, a bad user id, or an amount that is
    not a positive number with at most 2 decimals and at most 1,000,000."""
    if len(args) < 2:
        return AdjustError("usage")
    if not _USER_ID.fullmatch(args[0]):
        return AdjustError("user_id")
    if not _AMOUNT.fullmatch(args[1]):
        return AdjustError("amount")
    try:
        amount = Decimal(args[1].replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the regex already rules this out
        return AdjustError("amount")
    if amount <= 0 or amount > MAX_AMOUNT:
        return AdjustError("amount")
    note = " ".join(args[2:])[:_NOTE_MAX]
    return int(args[0]), amount, note


async def admin_command(update: Update, context: BotContext) -> None:
    """``/admin``: the statistics (admins only; the engine checks again)."""
    user_id = user_id_of(update)
    lang = lang_of(update, context)
    if not is_admin(update, context):
        await send(update, context, notice(lang, "not_allowed"))
        return
    try:
        stats = await context.engine.stats(user_id)
    except NotAllowed:
        await send(update, context, notice(lang, "not_allowed"))
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
    if not is_admin(update, context):
        await send(update, context, notice(lang, "not_allowed"))
        return
    if users_bring_keys(context):
        await send(update, context, notice(lang, "admin_operator_only"))
        return
    parsed = parse_adjustment(list(context.args or []))
    if isinstance(parsed, AdjustError):
        await send(update, context, views.adjust_refused(lang, parsed.reason, debit=debit))
        return
    target, amount, note = parsed
    engine = context.engine
    # Only users who started the bot have a wallet: a typo must not create one.
    if not await engine.user_exists(target):
        await send(update, context, notice(lang, "admin_unknown_user", user_id=target))
        return
    signed = -amount if debit else amount
    try:
        balance = await engine.admin_adjust(user_id, target, signed, note)
    except InsufficientFunds:
        await send(update, context, notice(lang, "admin_debit_too_much", amount=amount,
                                           user_id=target))
        return
    except NotAllowed:
        await send(update, context, notice(lang, "not_allowed"))
        return
    except EngineError as exc:
        await send(update, context, engine_error(lang, exc))
        return
    log.info("admin %s adjusted wallet of %s by %s", user_id, target, signed)
    await send(update, context, views.adjusted(lang, amount, target, balance, debit=debit))
    if not debit:
        await _notify_credit(context, target, amount, balance)


async def _notify_credit(
    context: BotContext, target: int, amount: Decimal, balance: Decimal
) -> None:
    """Tell the credited user (best effort: they may have blocked the bot)."""
    settings = context.settings
    lang = await user_lang(context.bot_data, target, settings.default_locale)
    try:
        await context.bot.send_message(
            chat_id=target, text=t(lang, "admin_credit_notice", amount=amount, balance=balance)
        )
    except (Forbidden, BadRequest) as exc:
        log.info("credit notice to user %s not delivered: %s", target, type(exc).__name__)
    except TelegramError as exc:
        log.warning("credit notice to user %s failed: %s", target, exc)
