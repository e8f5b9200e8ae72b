"""Broadcasts (issue 13, item 3a): what ``/broadcast`` stores and hands out.

The UI sends; this module keeps the durable state (``storage.broadcasts``): a
draft with its audience, the recipients fixed at Send, each claimed before its
message goes out (so nobody gets it twice, also after a restart) and its
outcome. "Active" users wrote, pressed a button or bought within
``BROADCAST_ACTIVE_DAYS`` days. Banned users and users who blocked the bot are
not recipients; a 403 during the broadcast marks the user as blocked."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal, cast

from bot.services.accounts import Accounts
from bot.services.api import BroadcastAudience, BroadcastView, NotAllowed
from bot.services.runtime import Runtime
from storage.broadcasts import (
    BLOCKED,
    DELIVERED,
    FAILED,
    IN_FLIGHT,
    PENDING,
    BroadcastRow,
    Outcome,
)

__all__ = ["Broadcasts"]

logger = logging.getLogger("bot.services")

_State = Literal["draft", "running", "done", "stopped", "cancelled"]


class Broadcasts:
    def __init__(self, rt: Runtime, accounts: Accounts) -> None:
        self.rt = rt
        self.accounts = accounts
        self.repo = rt.repos.broadcasts

    def _active_since(self, audience: BroadcastAudience) -> float | None:
        if audience == "all":
            return None
        return self.rt.clock.now() - self.rt.settings.broadcast_active_days * 86400.0

    async def _view(self, row: BroadcastRow) -> BroadcastView:
        counts = await self.repo.counts(row.id)
        if row.state == "draft":
            total = await self.repo.audience_size(self._active_since(row.audience))
        else:
            total = sum(counts.values())
        return BroadcastView(
            id=row.id, admin_id=row.admin_id, audience=row.audience, text=row.text,
            state=cast(_State, row.state), chat_id=row.chat_id, message_id=row.message_id,
            recipients=total, delivered=counts.get(DELIVERED, 0),
            blocked=counts.get(BLOCKED, 0), failed=counts.get(FAILED, 0),
        )

    async def _owned(self, admin_id: int, broadcast_id: int) -> BroadcastRow:
        self.accounts.require_admin(admin_id)
        row = await self.repo.get(broadcast_id)
        if row is None or row.admin_id != admin_id:
            raise NotAllowed("not this admin's broadcast")
        return row

    async def draft(
        self, admin_id: int, audience: BroadcastAudience, text: str, chat_id: int
    ) -> BroadcastView:
        self.accounts.require_admin(admin_id)
        broadcast_id = await self.repo.create(admin_id, audience, text, chat_id,
                                              self.rt.clock.now())
        row = await self.repo.get(broadcast_id)
        assert row is not None
        return await self._view(row)

    async def start(
        self, admin_id: int, broadcast_id: int, message_id: int
    ) -> BroadcastView | None:
        row = await self._owned(admin_id, broadcast_id)
        started = await self.repo.start(broadcast_id, message_id, self.rt.clock.now(),
                                        self._active_since(row.audience))
        if not started:
            return None
        view = await self.get(broadcast_id)
        assert view is not None
        logger.info("admin %d started broadcast %d to %d users", admin_id, broadcast_id,
                    view.recipients)
        return view

    async def cancel(self, admin_id: int, broadcast_id: int) -> bool:
        await self._owned(admin_id, broadcast_id)
        return await self.repo.end(broadcast_id, self.rt.clock.now(),
                                   from_state="draft", to_state="cancelled")

    async def stop(self, admin_id: int, broadcast_id: int) -> bool:
        self.accounts.require_admin(admin_id)  # any admin may stop a broadcast
        stopped = await self.repo.end(broadcast_id, self.rt.clock.now(),
                                      from_state="running", to_state="stopped")
        if stopped:
            logger.info("admin %d stopped broadcast %d", admin_id, broadcast_id)
        return stopped

    async def get(self, broadcast_id: int) -> BroadcastView | None:
        row = await self.repo.get(broadcast_id)
        return None if row is None else await self._view(row)

    async def running(self) -> list[BroadcastView]:
        now = self.rt.clock.now()
        views = []
        for row in await self.repo.running():
            doubt = await self.repo.fail_in_doubt(row.id, now)
            if doubt:
                logger.warning("broadcast %d: %d message(s) in doubt after a restart are "
                               "counted as failed (never sent twice)", row.id, doubt)
            views.append(await self._view(row))
        return views

    async def claim(self, broadcast_id: int, limit: int) -> list[int]:
        row = await self.repo.get(broadcast_id)
        if row is None or row.state != "running":
            return []
        return await self.repo.claim(broadcast_id, limit, self.rt.clock.now())

    async def record(self, broadcast_id: int, outcomes: Mapping[int, Outcome]) -> None:
        """Claimed recipients' outcomes, in one transaction (``blocked`` also marks
        the user; ``pending``: not sent, claimed again later)."""
        now = self.rt.clock.now()
        async with self.rt.db.transaction():
            for user_id, outcome in outcomes.items():
                await self.repo.record(broadcast_id, user_id, outcome, now)
                if outcome == BLOCKED:
                    await self.rt.repos.users.set_blocked(user_id, now)

    async def finish(self, broadcast_id: int) -> BroadcastView | None:
        counts = await self.repo.counts(broadcast_id)
        if counts.get(PENDING, 0) or counts.get(IN_FLIGHT, 0):
            return None
        if not await self.repo.end(broadcast_id, self.rt.clock.now(),
                                   from_state="running", to_state="done"):
            return None
        view = await self.get(broadcast_id)
        if view is not None:
            logger.info("broadcast %d done: %d delivered, %d blocked, %d failed",
                        broadcast_id, view.delivered, view.blocked, view.failed)
        return view
