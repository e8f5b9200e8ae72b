"""Bans and reachability (issue 13, item 3b): ``/ban`` and ``/unban``, users who
blocked the bot, and when a user was last seen.

A ban refuses the user at the UI's gate; nothing here stops their open numbers:
the poller, the cancels and the outbox keep finishing them (code delivered or
refunded). Admins (``ADMIN_IDS``) cannot be banned."""

from __future__ import annotations

import logging

from bot.services.accounts import Accounts
from bot.services.api import CannotBanAdmin, UnknownUser
from bot.services.runtime import Runtime

__all__ = ["REASON_MAX", "Moderation"]

logger = logging.getLogger("bot.services")

REASON_MAX = 200


class Moderation:
    def __init__(self, rt: Runtime, accounts: Accounts) -> None:
        self.rt = rt
        self.accounts = accounts

    async def ban(self, admin_id: int, user_id: int, reason: str) -> bool:
        self.accounts.require_admin(admin_id)
        if Accounts.is_admin(self.rt.settings, user_id):
            raise CannotBanAdmin("admins cannot be banned")
        users = self.rt.repos.users
        if await users.get(user_id) is None:
            raise UnknownUser(f"user {user_id} never started the bot")
        clean = " ".join(reason.split())[:REASON_MAX]
        banned = await users.ban(user_id, self.rt.clock.now(), admin_id, clean)
        if banned:
            logger.info("admin %d banned user %d", admin_id, user_id)
        return banned

    async def unban(self, admin_id: int, user_id: int) -> bool:
        self.accounts.require_admin(admin_id)
        users = self.rt.repos.users
        if await users.get(user_id) is None:
            raise UnknownUser(f"user {user_id} never started the bot")
        unbanned = await users.unban(user_id)
        if unbanned:
            logger.info("admin %d unbanned user %d", admin_id, user_id)
        return unbanned

    async def banned_ids(self) -> set[int]:
        return await self.rt.repos.users.banned_ids()

    async def seen(self, user_id: int) -> None:
        await self.rt.repos.users.seen(user_id, self.rt.clock.now())

    async def set_blocked(self, user_id: int, blocked: bool) -> None:
        now = self.rt.clock.now() if blocked else None
        if await self.rt.repos.users.set_blocked(user_id, now):
            logger.info("user %d %s the bot", user_id, "blocked" if blocked else "unblocked")
