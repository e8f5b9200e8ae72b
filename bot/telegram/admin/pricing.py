"""Admin price commands (operator mode): ``/price CODE RULE`` sets a service's
price rule (a markup ``+20%`` or a fixed price ``0.75``), ``/price CODE reset``
goes back to PRICE_OVERRIDES / MARKUP_PERCENT, ``/prices`` lists the rules with
the resulting prices. The rules themselves: :mod:`bot.domain.pricing`; a rule
set here is stored and wins over the settings."""

from __future__ import annotations

import logging

from telegram import Update

from bot.services.api import (
    EngineError,
    NotAllowed,
    PriceBelowCost,
    PriceRule,
    PriceRuleError,
    ServiceUnavailable,
    parse_rule,
)
from bot.telegram.admin import views
from bot.telegram.common.handlers import is_admin, lang_of, send, user_id_of, users_bring_keys
from bot.telegram.common.views import engine_error, notice
from bot.telegram.context import BotContext

__all__ = ["price_command", "prices_command"]

log = logging.getLogger(__name__)

MAX_CODES = 30  # service codes offered when an unknown one is typed
_RESET = "reset"
_ARG_MAX = 64


async def _admin_operator(update: Update, context: BotContext, lang: str) -> bool:
    if not is_admin(update, context):
        await send(update, context, notice(lang, "not_allowed"))
        return False
    if users_bring_keys(context):
        await send(update, context, notice(lang, "admin_prices_operator_only"))
        return False
    return True


async def _codes(context: BotContext, admin_id: int, typed: str) -> str:
    """Service codes to offer for a mistyped one: those whose code or name
    contains it, else all (at most :data:`MAX_CODES`)."""
    try:
        services = await context.engine.list_services(admin_id)
    except EngineError:
        return "—"
    needle = typed.casefold()
    close = [s for s in services if needle in s.code.casefold() or needle in s.name.casefold()]
    chosen = (close or services)[:MAX_CODES]
    return ", ".join(s.code for s in chosen) or "—"


async def price_command(update: Update, context: BotContext) -> None:
    """``/price CODE +20%`` | ``/price CODE 0.75`` | ``/price CODE reset``."""
    lang = lang_of(update, context)
    if not await _admin_operator(update, context, lang):
        return
    admin_id = user_id_of(update)
    args = list(context.args or [])
    if len(args) != 2 or len(args[0]) > _ARG_MAX or len(args[1]) > _ARG_MAX:
        await send(update, context, views.price_refused(lang, "usage"))
        return
    code, raw = args
    rule: PriceRule | None = None
    if raw.lower() != _RESET:
        try:
            rule = parse_rule(raw)
        except PriceRuleError:
            await send(update, context, views.price_refused(lang, "rule", value=raw))
            return
    try:
        line = await context.engine.set_price(admin_id, code, rule)
    except ServiceUnavailable:
        codes = await _codes(context, admin_id, code)
        await send(update, context, views.price_refused(lang, "service", value=code,
                                                        codes=codes))
        return
    except PriceBelowCost as exc:
        fixed = rule.fixed if rule is not None else None
        await send(update, context, views.price_refused(lang, "cost", price=fixed, cost=exc.cost))
        return
    except NotAllowed:
        await send(update, context, notice(lang, "not_allowed"))
        return
    except EngineError as exc:
        await send(update, context, engine_error(lang, exc))
        return
    log.info("admin %s: price of %s %s", admin_id, code, rule if rule else "reset")
    await send(update, context, views.price_set(lang, line, reset=rule is None))


async def prices_command(update: Update, context: BotContext) -> None:
    """``/prices``: the default markup and every per-service rule, with prices."""
    lang = lang_of(update, context)
    if not await _admin_operator(update, context, lang):
        return
    try:
        default, lines = await context.engine.prices(user_id_of(update))
    except NotAllowed:
        await send(update, context, notice(lang, "not_allowed"))
        return
    except EngineError as exc:
        await send(update, context, engine_error(lang, exc))
        return
    await send(update, context, views.prices(lang, default, lines))
