"""The engine's business desks (issue 13), mixed into :class:`~bot.services.engine.Engine`:
the admin tools (prices, operator alerts, bans, broadcasts) and wallet top-ups. Each
method delegates to the service that owns the concern; see :class:`EngineAPI`."""

from __future__ import annotations

from collections.abc import Mapping

from bot.services.api import (
    BroadcastAudience,
    BroadcastOutcome,
    BroadcastView,
    OperatorAlert,
    Pack,
    PaymentOutcome,
    PreCheckoutRefusal,
    PriceLine,
    PriceRule,
    RefundOutcome,
    TopUp,
    TopUpMethod,
)
from bot.services.funding import StoredPolicy
from bot.services.topups import TopUps
from bot.services.wiring import Services

__all__ = ["AdminTools", "TopUpDesk"]


class _Desk:
    @property
    def services(self) -> Services:  # the engine's (raises before start())
        raise NotImplementedError


class AdminTools(_Desk):
    """Prices, operator alerts, bans and broadcasts."""

    # operator prices and alerts (h-ops) ----------------------------------------
    async def set_price(self, admin_id: int, code: str, rule: PriceRule | None) -> PriceLine:
        return await self.services.pricing.set_rule(admin_id, code, rule)

    async def prices(self, admin_id: int) -> tuple[PriceLine, list[PriceLine]]:
        return await self.services.pricing.lines(admin_id)

    async def pending_alerts(self) -> list[OperatorAlert]:
        return await self.services.alerts.pending()

    async def alert_delivered(self, alert_id: int) -> None:
        await self.services.alerts.delivered(alert_id)

    async def alert_undeliverable(self, alert_id: int, *, permanent: bool) -> None:
        await self.services.alerts.undeliverable(alert_id, permanent=permanent)

    # broadcasts and bans (h-admin) ----------------------------------------------
    async def ban(self, admin_id: int, user_id: int, reason: str) -> bool:
        banned = await self.services.moderation.ban(admin_id, user_id, reason)
        await self.services.catalogue.withdraw(user_id)  # no Confirm left to press
        return banned

    async def unban(self, admin_id: int, user_id: int) -> bool:
        return await self.services.moderation.unban(admin_id, user_id)

    async def banned_users(self) -> set[int]:
        return await self.services.moderation.banned_ids()

    async def user_seen(self, user_id: int) -> None:
        await self.services.moderation.seen(user_id)

    async def set_blocked(self, user_id: int, blocked: bool) -> None:
        await self.services.moderation.set_blocked(user_id, blocked)

    async def broadcast_draft(
        self, admin_id: int, audience: BroadcastAudience, text: str, chat_id: int
    ) -> BroadcastView:
        return await self.services.broadcasts.draft(admin_id, audience, text, chat_id)

    async def broadcast_start(
        self, admin_id: int, broadcast_id: int, message_id: int
    ) -> BroadcastView | None:
        return await self.services.broadcasts.start(admin_id, broadcast_id, message_id)

    async def broadcast_cancel(self, admin_id: int, broadcast_id: int) -> bool:
        return await self.services.broadcasts.cancel(admin_id, broadcast_id)

    async def broadcast_stop(self, admin_id: int, broadcast_id: int) -> bool:
        return await self.services.broadcasts.stop(admin_id, broadcast_id)

    async def broadcast(self, broadcast_id: int) -> BroadcastView | None:
        return await self.services.broadcasts.get(broadcast_id)

    async def broadcasts_running(self) -> list[BroadcastView]:
        return await self.services.broadcasts.running()

    async def broadcast_claim(self, broadcast_id: int, limit: int) -> list[int]:
        return await self.services.broadcasts.claim(broadcast_id, limit)

    async def broadcast_record(
        self, broadcast_id: int,
        outcomes: Mapping[int, BroadcastOutcome],
    ) -> None:
        await self.services.broadcasts.record(broadcast_id, outcomes)

    async def broadcast_finish(self, broadcast_id: int) -> BroadcastView | None:
        return await self.services.broadcasts.finish(broadcast_id)


class TopUpDesk(_Desk):
    """Wallet top-ups (operator mode) through the attached :class:`TopUpMethod`."""

    policy: StoredPolicy
    _topup_method: TopUpMethod | None = None
    _topups: TopUps | None = None

    @property
    def _tu(self) -> TopUps:
        rt = self.services.rt
        if self._topups is None or self._topups.rt is not rt:
            self._topups = TopUps(rt)
            self._topups.method = self._topup_method
        return self._topups

    def use_topup_method(self, method: TopUpMethod) -> None:
        self._topup_method = method
        if self._topups is not None:
            self._topups.method = method

    @property
    def topups_available(self) -> bool:
        return not self.policy.users_bring_keys and self._topup_method is not None

    def topup_packs(self) -> tuple[Pack, ...]:
        return self._tu.packs()

    async def open_topup(self, user_id: int, pack_index: int) -> TopUp:
        return await self._tu.open(user_id, pack_index)

    async def set_topup_message(self, user_id: int, topup_id: int, chat_id: int,
                                message_id: int) -> None:
        await self._tu.set_message(user_id, topup_id, chat_id, message_id)

    async def topup_pre_checkout(
        self, user_id: int, payload: str, currency: str, total: int
    ) -> PreCheckoutRefusal | None:
        return await self._tu.pre_checkout(user_id, payload, currency, total)

    async def record_topup_payment(
        self, user_id: int, payload: str | None, currency: str, total: int, charge_id: str,
        provider_charge_id: str | None = None,
    ) -> PaymentOutcome:
        return await self._tu.record_payment(
            user_id, payload, currency, total, charge_id, provider_charge_id
        )

    async def topup_notified(self, topup_id: int) -> None:
        await self._tu.notified(topup_id)

    async def reconcile_topups(self) -> list[PaymentOutcome]:
        return await self._tu.reconcile()

    async def refund_topup(self, admin_id: int, charge_id: str) -> RefundOutcome:
        return await self._tu.refund(admin_id, charge_id)

    async def retry_topup_refunds(self) -> list[RefundOutcome]:
        return await self._tu.retry_refunds()
