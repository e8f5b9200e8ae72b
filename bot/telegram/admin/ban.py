"""``/ban <user id> [reason]`` and ``/unban <user id>`` (admins only).

A banned user is refused at the access gate (:mod:`bot.telegram.access`): every
message, command and button gets one clear text (with ``SUPPORT_CONTACT`` when it
is configured). Their open numbers still finish — the poller, the cancels and the
outbox do not look at bans: codes are delivered, expiries refunded. Admins
cannot be banned. The gate reads the bans from ``bot_data.banned``, loaded from
the database at start-up and changed here after the engine has stored the ban.
"""

from __future__ import annotations

import logging
import re

from telegram import Update

from bot.services.api import CannotBanAdmin, NotAllowed, UnknownUser
from bot.telegram.common.handlers import is_admin, lang_of, send, user_id_of
from bot.telegram.common.views import notice
from bot.telegram.context import BotContext
from bot.telegram.texts import N_, Raw, t

__all__ = ["ban_command", "parse_ban", "unban_command"]

log = logging.getLogger(__name__)

_USER_ID = re.compile(r"[1-9][0-9]{0,14}")
REASON_MAX = 200  # the engine stores at most this much


def parse_ban(args: list[str]) -> tuple[int, str] | str:
    """``USER_ID [reason...]`` → (user id, reason), or why not: ``"usage"`` (no
    arguments) or ``"user_id"`` (not a user id)."""
    if not args:
        return "usage"
    if not _USER_ID.fullmatch(args[0]):
        return "user_id"
    return int(args[0]), " ".join(" ".join(args[1:]).split())[:REASON_MAX]


async def ban_command(update: Update, context: BotContext) -> None:
    await _moderate(update, context, ban=True)


async def unban_command(update: Update, context: BotContext) -> None:
    await _moderate(update, context, ban=False)


async def _moderate(update: Update, context: BotContext, *, ban: bool) -> None:
    lang = lang_of(update, context)
    if not is_admin(update, context):
        await send(update, context, notice(lang, "not_allowed"))
        return
    usage = t(lang, N_("ban_usage") if ban else N_("unban_usage"))
    parsed = parse_ban(list(context.args or []))
    if parsed == "usage":
        await send(update, context, notice(lang, "ban_usage_screen", usage=usage))
        return
    if isinstance(parsed, str):
        await send(update, context, notice(lang, "admin_bad_user_id", usage=usage))
        return
    target, reason = parsed
    engine, admin = context.engine, user_id_of(update)
    try:
        if ban:
            changed = await engine.ban(admin, target, reason)
        else:
            changed = await engine.unban(admin, target)
    except CannotBanAdmin:
        await send(update, context, notice(lang, "ban_admin", user_id=target))
        return
    except UnknownUser:
        await send(update, context, notice(lang, "admin_unknown_user", user_id=target))
        return
    except NotAllowed:
        await send(update, context, notice(lang, "not_allowed"))
        return
    banned = context.bot_data.banned
    if ban:
        banned.add(target)
        log.info("admin %s banned user %s", admin, target)
        if not changed:
            await send(update, context, notice(lang, "ban_already", user_id=target))
            return
        why = Raw("\n" + t(lang, "ban_reason_line", reason=reason)) if reason.strip() else Raw("")
        await send(update, context, notice(lang, "ban_done", user_id=target, reason=why))
        return
    banned.discard(target)
    key = N_("unban_done") if changed else N_("unban_not_banned")
    await send(update, context, notice(lang, key, user_id=target))
