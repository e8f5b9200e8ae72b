"""The UI contract's business half (issue 13): the values and methods of the admin
tools (prices, operator alerts, bans, broadcasts) and of wallet top-ups.
Re-exported by :mod:`bot.services.api`, which the UI imports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

from bot.domain.pricing import PriceRule, RuleSource
from bot.domain.topups import Pack, PreCheckoutRefusal, TopUpMethod, TopUpState

__all__ = [
    "AdminAPI",
    "BroadcastAudience",
    "BroadcastOutcome",
    "BroadcastView",
    "OperatorAlert",
    "PaymentOutcome",
    "PriceLine",
    "RefundOutcome",
    "RefundStatus",
    "TopUp",
    "TopUpAPI",
]

# --------------------------------------------------------------- admin tools
@dataclass(frozen=True, slots=True)
class PriceLine:
    """One service's price rule as ``/prices`` shows it."""

    code: str  # DaisySim service code ("*": the default markup)
    name: str | None  # None: not in the catalogue now (or the default line)
    rule: str  # "+20%" or "0.75"
    source: RuleSource  # "admin" (/price), "settings" (PRICE_OVERRIDES), "default"
    cost: Decimal | None = None  # DaisySim's price (multi-pool: the cheapest pool)
    price: Decimal | None = None  # the user's price of that (cheapest) choice
    max_price: Decimal | None = None  # multi-pool: the dearest pool's user price
    max_cost: Decimal | None = None  # multi-pool: the dearest pool's DaisySim price


@dataclass(frozen=True, slots=True)
class OperatorAlert:
    """A message for one admin: the operator's DaisySim balance is low or empty."""

    id: int
    kind: Literal["low_balance", "operator_empty"] | str
    admin_id: int
    balance: Decimal | None  # the balance read (None: not known)
    threshold: Decimal | None  # LOW_BALANCE_ALERT_USD
    created_at: float


BroadcastAudience = Literal["all", "active"]
BroadcastOutcome = Literal["delivered", "blocked", "failed", "pending"]


@dataclass(frozen=True, slots=True)
class BroadcastView:
    """A broadcast and its recipients' outcomes so far."""

    id: int
    admin_id: int
    audience: BroadcastAudience
    text: str  # HTML, as the admin typed it
    state: Literal["draft", "running", "done", "stopped", "cancelled"]
    chat_id: int  # the admin's chat: the progress message
    message_id: int | None
    recipients: int = 0  # draft: the audience's size now
    delivered: int = 0
    blocked: int = 0
    failed: int = 0

    @property
    def processed(self) -> int:
        return self.delivered + self.blocked + self.failed


# ------------------------------------------------------------------- top-ups
@dataclass(frozen=True, slots=True)
class TopUp:
    id: int
    user_id: int
    amount: Decimal  # USD credited
    price: int  # in the method's unit (Stars)
    currency: str  # "XTR"
    state: TopUpState
    payload: str  # the invoice payload ("topup:<id>")
    expires_at: float
    charge_id: str | None = None
    notified: bool = False  # the user was told about the credit


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """A payment recorded: ``credited`` False for a charge seen before."""

    topup: TopUp
    credited: bool
    balance: Decimal
    expected: bool = True  # False: the payment named no open top-up of this user


class RefundStatus(StrEnum):
    DONE = "done"  # debited and refunded (or Telegram had refunded it already)
    PENDING = "pending"  # debited; Telegram's refund failed for now, retried later
    REFUSED = "refused"  # Telegram refused it for good; the debit was given back
    NOT_FOUND = "not_found"  # no top-up with this charge id
    NOT_PAID = "not_paid"  # the top-up is refunding or refunded already
    SPENT = "spent"  # the user's balance is below the top-up: not refunded


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    status: RefundStatus
    topup: TopUp | None = None
    balance: Decimal | None = None  # the user's balance after it


class AdminAPI(Protocol):
    """Prices, operator alerts, bans and broadcasts (admins; ownership checked inside)."""

    # prices and alerts ------------------------------------------------------
    async def set_price(self, admin_id: int, code: str, rule: PriceRule | None) -> PriceLine:
        """Operator mode: an admin's price rule for service ``code`` (None: back to
        PRICE_OVERRIDES / MARKUP_PERCENT); it applies to every price shown, held
        and charged from now on. NotAllowed (not an admin, own-key mode),
        ServiceUnavailable (no such service), PriceBelowCost."""

    async def prices(self, admin_id: int) -> tuple[PriceLine, list[PriceLine]]:
        """The default markup's line and every service rule in force."""

    def set_alert_listener(self, listener: Callable[[], None] | None) -> None:
        """Called (synchronously) whenever operator alerts wait to be sent."""

    async def pending_alerts(self) -> list[OperatorAlert]:
        """Operator alerts not sent yet (each to one admin), oldest first."""

    async def alert_delivered(self, alert_id: int) -> None: ...

    async def alert_undeliverable(self, alert_id: int, *, permanent: bool) -> None:
        """Sending failed; ``permanent``: never try again (the admin blocked the bot)."""

    # bans and broadcasts ----------------------------------------------------
    async def ban(self, admin_id: int, user_id: int, reason: str) -> bool:
        """Ban a registered user (False: already banned). Raises NotAllowed,
        CannotBanAdmin, UnknownUser. Their open numbers still finish."""

    async def unban(self, admin_id: int, user_id: int) -> bool:
        """Lift a ban (False: was not banned). Raises NotAllowed, UnknownUser."""

    async def banned_users(self) -> set[int]: ...

    async def user_seen(self, user_id: int) -> None:
        """The user wrote or pressed: active now, and not blocking the bot."""

    async def set_blocked(self, user_id: int, blocked: bool) -> None:
        """The user blocked (or unblocked) the bot (403 / my_chat_member)."""

    async def broadcast_draft(self, admin_id: int, audience: BroadcastAudience, text: str,
                              chat_id: int) -> BroadcastView:
        """A draft (the preview) with the audience's size now. Raises NotAllowed."""

    async def broadcast_start(self, admin_id: int, broadcast_id: int,
                              message_id: int) -> BroadcastView | None:
        """Send pressed: fix the recipients, draft → running (None: not a draft of
        this admin any more)."""

    async def broadcast_cancel(self, admin_id: int, broadcast_id: int) -> bool: ...

    async def broadcast_stop(self, admin_id: int, broadcast_id: int) -> bool: ...

    async def broadcast(self, broadcast_id: int) -> BroadcastView | None: ...

    async def broadcasts_running(self) -> list[BroadcastView]:
        """Running broadcasts (at start-up: resume them); recipients left in doubt
        by a crash are failed first (never sent twice)."""

    async def broadcast_claim(self, broadcast_id: int, limit: int) -> list[int]:
        """Up to ``limit`` recipients to send to now (claimed: never handed out twice)."""

    async def broadcast_record(
        self, broadcast_id: int,
        outcomes: Mapping[int, BroadcastOutcome],
    ) -> None:
        """Claimed recipients' outcomes (one transaction); ``blocked`` also marks the
        user, ``pending``: not sent (flood control), claimed again later."""

    async def broadcast_finish(self, broadcast_id: int) -> BroadcastView | None:
        """Running → done once nobody is left (None: not finished / not running)."""


class TopUpAPI(Protocol):
    """Wallet top-ups, operator mode."""

    def use_topup_method(self, method: TopUpMethod) -> None:
        """Attach the payment method (Telegram Stars: built by the UI, which owns
        the Bot API connection)."""

    @property
    def topups_available(self) -> bool:
        """Operator mode with a method attached (own key: no wallet to top up)."""

    def topup_packs(self) -> tuple[Pack, ...]:
        """The packs offered, with their prices. Raises TopUpsUnavailable."""

    async def open_topup(self, user_id: int, pack_index: int) -> TopUp:
        """A new open top-up of the pack at ``pack_index`` (the row holds the
        amount; NotAllowed for an index that is not a pack)."""

    async def set_topup_message(self, user_id: int, topup_id: int, chat_id: int,
                                message_id: int) -> None:
        """Remember the invoice message of a top-up."""

    async def topup_pre_checkout(self, user_id: int, payload: str, currency: str,
                                 total: int) -> PreCheckoutRefusal | None:
        """None if this payment may go ahead (one database read), else why not."""

    async def record_topup_payment(self, user_id: int, payload: str | None, currency: str,
                                   total: int, charge_id: str,
                                   provider_charge_id: str | None = None) -> PaymentOutcome:
        """Credit a successful payment exactly once per ``charge_id`` (a repeat
        returns ``credited=False``). Unknown or expired top-ups are credited too."""

    async def topup_notified(self, topup_id: int) -> None:
        """The user was told about this credit."""

    async def reconcile_topups(self) -> list[PaymentOutcome]:
        """Credit payments the method reports that were never recorded."""

    async def refund_topup(self, admin_id: int, charge_id: str) -> RefundOutcome:
        """Admin refund: debit (once, if the balance covers it), then the method's
        refund; see :class:`RefundStatus`. Raises NotAllowed for non-admins."""

    async def retry_topup_refunds(self) -> list[RefundOutcome]:
        """Retry refunds left pending; returns those that finished now."""
