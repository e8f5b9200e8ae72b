"""The contract between the activation engine (``bot.services``) and the Telegram UI.

This module is the only thing the UI needs from the core: value objects, the
engine's public methods (as a Protocol), the events it emits and the errors it
raises. It imports nothing from ``telegram``.

Money is always ``Decimal``; times are Unix seconds (float) from the engine's clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

# --------------------------------------------------------------------------- states
# The state machine lives in the domain; re-exported here for the UI.
from bot.domain.activation import ActivationState, RefundReason

# The catalogue's values and the errors the pure quote rules raise live in the
# domain too; re-exported here: this module stays the UI's one contract.
from bot.domain.catalogue import EngineError as EngineError
from bot.domain.catalogue import Pool as Pool
from bot.domain.catalogue import Service as Service
from bot.domain.catalogue import ServiceUnavailable as ServiceUnavailable
from bot.domain.catalogue import SoldOut as SoldOut

# --- h-ops: the operator's price rules (parsed by the UI, applied by the engine) ---
from bot.domain.pricing import PriceRule as PriceRule
from bot.domain.pricing import PriceRuleError as PriceRuleError
from bot.domain.pricing import RuleSource as RuleSource
from bot.domain.pricing import parse_rule as parse_rule

# Top-ups (h-pay): the pure rules and the method interface live in the domain.
from bot.domain.topups import Pack as Pack
from bot.domain.topups import PreCheckoutRefusal as PreCheckoutRefusal
from bot.domain.topups import TopUpMethod as TopUpMethod
from bot.domain.topups import TopUpState as TopUpState

# The business values and methods (issue 13: prices, alerts, bans, broadcasts,
# top-ups) live in api_business; re-exported here: the UI's one contract.
from bot.services.api_business import AdminAPI as AdminAPI
from bot.services.api_business import BroadcastAudience as BroadcastAudience
from bot.services.api_business import BroadcastOutcome as BroadcastOutcome
from bot.services.api_business import BroadcastView as BroadcastView
from bot.services.api_business import OperatorAlert as OperatorAlert
from bot.services.api_business import PaymentOutcome as PaymentOutcome
from bot.services.api_business import PriceLine as PriceLine
from bot.services.api_business import RefundOutcome as RefundOutcome
from bot.services.api_business import RefundStatus as RefundStatus
from bot.services.api_business import TopUp as TopUp
from bot.services.api_business import TopUpAPI as TopUpAPI


class EventKind(StrEnum):
    CODE_RECEIVED = "code_received"
    CANCEL_AVAILABLE = "cancel_available"  # at purchased_at + cancel lock, never before
    REFUNDED = "refunded"
    EXPIRED = "expired"  # give-up time reached; a REFUNDED event follows once done
    FAILED = "failed"
    # A purchase whose outcome was in doubt (buy() raised PurchasePending, or the
    # process died while buying) turned out bought: the number is assigned.
    PURCHASED = "purchased"


HistoryFilter = Literal["all", "completed", "waiting", "cancelled"]

# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Quote:
    """The exact price shown on the confirmation screen."""

    service: Service
    provider_id: str | None  # None = cheapest available / single-provider
    price: Decimal  # the user's price for this choice, computed server-side
    balance: Decimal | None  # user's current balance (None if unknown)
    balance_after: Decimal | None
    # The pool this price is the price of: the pinned pool, or the pool "cheapest
    # available" resolved to (the cheapest one with numbers). None for
    # single-provider services. Pass it to ``buy(pool=...)``: that pool is bought.
    pool: str | None = None
    # Persisted quotes (every quote the engine makes): the id ``buy_quote`` takes
    # (0: a quote made outside the engine, e.g. in a test), and until when it
    # may be bought at this price (clock time).
    id: int = 0
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    id: int  # local id (used in callback data)
    user_id: int  # Telegram user id of the owner
    remote_id: str | None  # DaisySim activation_id (None while purchasing / failed)
    service_code: str
    service_name: str
    provider_id: str | None
    phone: str | None
    price: Decimal  # what the user paid (operator: incl. markup; own-key: amount_charged)
    state: ActivationState
    code: str | None
    purchased_at: float
    cancel_after: float  # purchased_at + cancel lock
    expires_at: float  # purchased_at + give-up time
    chat_id: int | None = None
    message_id: int | None = None
    refund_amount: Decimal | None = None
    refund_reason: RefundReason | None = None
    finished_at: float | None = None

    def cancel_available(self, now: float) -> bool:
        return self.state == ActivationState.WAITING and now >= self.cancel_after


@dataclass(frozen=True, slots=True)
class Event:
    id: int  # outbox id; delivery is acknowledged by the engine after the handler returns
    kind: EventKind
    activation: Activation  # snapshot at emission time
    created_at: float
    # An earlier delivery of this event was cut off (the process died while the
    # handler ran): the handler may already have carried it out, e.g. sent the code.
    interrupted: bool = False
    # Code events: the handler awaits this right before the push goes out (after the
    # flood limiter let it through), and only that counts as a started delivery; a
    # crash before it (waiting for the limiter) is not "interrupted": the code is
    # pushed on redelivery. Other events count as started when the handler starts.
    sending: Callable[[], Awaitable[None]] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    amount: Decimal  # + credit/refund, - charge
    kind: str  # "credit", "debit", "hold", "release", "charge", "refund"
    note: str
    activation_id: int | None
    created_at: float
    # For entries of an order (charge, hold, refund): what was bought and, for a
    # refund, why. Filled in by ``wallet()``; None for top-ups and adjustments.
    service_name: str | None = None
    refund_reason: RefundReason | None = None
    # Top-up entries: the payment's charge id and which entry of it this is
    # ("topup", "refund", "refund_back"); None otherwise.
    charge_id: str | None = None
    charge_entry: str | None = None


@dataclass(frozen=True, slots=True)
class WalletView:
    mode: Literal["own_key", "operator"]
    balance: Decimal | None  # None when own-key and no key linked
    email: str | None  # own-key: the DaisySim account email
    ledger: tuple[LedgerEntry, ...] = ()  # operator: recent entries, newest first
    active_count: int = 0
    spent_this_month: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True)
class OrderPage:
    items: tuple[Activation, ...]
    page: int  # 1-based
    pages: int  # >= 1
    total: int
    filter: HistoryFilter = "all"


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """Outcome of a user's cancel request."""

    outcome: Literal["refunded", "too_early", "code_received", "already_final", "pending"]
    activation: Activation
    seconds_left: int | None = None  # too_early
    refund: Decimal | None = None  # refunded


@dataclass(frozen=True, slots=True)
class KeyInfo:
    masked: str  # e.g. "sk_l…9f2a"
    balance: Decimal
    email: str


@dataclass(frozen=True, slots=True)
class ServiceStat:
    service_name: str
    provider_id: str | None
    total: int  # bought (a number was assigned)
    completed: int
    open: int = 0  # still waiting / cancelling / expiring
    refunded: int = 0
    failed: int = 0  # failed after a number was assigned (Not Found upstream)
    multi_pool: bool = False  # an ``sb_*`` service: provider_id None = cheapest pool

    @property
    def success_rate(self) -> float:
        """Completed out of all bought (open ones included)."""
        return self.completed / self.total if self.total else 0.0

    @property
    def finished(self) -> int:
        """Bought and settled one way or the other (completed, refunded or failed)."""
        return max(0, self.total - self.open)

    @property
    def finished_success_rate(self) -> float | None:
        """Completed out of the finished ones; None while none has finished."""
        return self.completed / self.finished if self.finished else None


@dataclass(frozen=True, slots=True)
class Stats:
    users: int
    activations_by_state: dict[str, int]
    spend: Decimal  # settled, not refunded (completed + still open)
    per_service: tuple[ServiceStat, ...] = field(default=())
    completed_spend: Decimal = Decimal(0)  # charges of completed orders (final)
    open_spend: Decimal = Decimal(0)  # charges of open orders (may still be refunded)
    # Upstream orders no activation owns (late orders of written-off purchases;
    # operator mode: any unknown order): (count, amount charged upstream).
    strays_cancelling: tuple[int, Decimal] = (0, Decimal(0))  # refund still to come
    strays_refunded: tuple[int, Decimal] = (0, Decimal(0))  # cancelled, money back
    strays_lost: tuple[int, Decimal] = (0, Decimal(0))  # code came first: a loss


# --------------------------------------------------------------------------- errors


class NotAllowed(EngineError):
    """The user may not do this (not an admin, blocked...)."""


class ActivationNotFound(EngineError):
    """No such activation for this user (also raised for someone else's id)."""


class KeyRequired(EngineError):
    """Own-key mode and the user has not linked a DaisySim key."""


class InvalidKey(EngineError):
    """The DaisySim key was rejected upstream (UNAUTHENTICATED) or is malformed."""


class AccountUnavailable(EngineError):
    """The funding DaisySim account is suspended or locked."""

    def __init__(self, message: str, *, locked: bool) -> None:
        super().__init__(message)
        self.locked = locked


class QuoteNotFound(NotAllowed):
    """No such quote for this user (also raised for someone else's quote id)."""


class InsufficientFunds(EngineError):
    def __init__(self, message: str, *, balance: Decimal | None, price: Decimal) -> None:
        super().__init__(message)
        self.balance = balance
        self.price = price


class PriceChanged(EngineError):
    """The price is now above the user's confirmed max price (or upstream said
    PRICE_VERIFICATION_FAILED and the refreshed price differs). Ask again."""

    def __init__(self, message: str, *, quote: Quote | None) -> None:
        super().__init__(message)
        self.quote = quote  # None if the service disappeared


class QuoteExpired(PriceChanged):
    """The quote's lifetime is over: nothing was bought; ``quote`` is a fresh one
    (None if the service disappeared). A PriceChanged, so a UI that asks again
    on a changed price handles it as is."""


class TooBusy(EngineError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryLater(Exception):
    """Raised by an event handler that delivered *nothing* and may not send now (a
    flood pause): the engine hands the event over again after ``delay`` seconds,
    without counting a failed attempt (a long storm never drops a code)."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:.0f} s")
        self.delay = max(0.0, delay)


class UpstreamUnavailable(EngineError):
    """DaisySim is down / timing out; nothing was bought (or it was reconciled)."""


class OperatorFundsLow(UpstreamUnavailable):
    """Operator mode: DaisySim refused the purchase because the *operator's* DaisySim
    balance is too low. Nothing was bought and the hold is released; the user is
    told the service is temporarily unavailable (not their wallet), the admins get
    an alert."""


class PriceBelowCost(EngineError):
    """An admin's fixed price is below the service's DaisySim price ``cost``."""

    def __init__(self, message: str, *, cost: Decimal) -> None:
        super().__init__(message)
        self.cost = cost


class PurchasePending(UpstreamUnavailable):
    """DaisySim did not answer the purchase: it may or may not have gone through.
    The money stays held (never spent for nothing) and the engine reconciles it;
    the outcome comes as an event on ``activation`` (``purchased``, or ``failed``:
    not bought, the hold released). The UI must not say "nothing was charged"."""

    def __init__(self, message: str, *, activation: Activation) -> None:
        super().__init__(message)
        self.activation = activation  # state "purchasing"


class DuplicateRequest(EngineError):
    """The same purchase request id was already used (double tap on Confirm)."""

    def __init__(self, message: str, *, activation: Activation | None) -> None:
        super().__init__(message)
        self.activation = activation


class UnknownUser(EngineError):
    """No such registered user (they never started the bot)."""


class CannotBanAdmin(NotAllowed):
    """Admins (``ADMIN_IDS``) cannot be banned."""
# --------------------------------------------------------------------------- top-ups
# (h-pay) Wallet top-ups, operator mode; rules in bot.domain.topups.


class TopUpsUnavailable(EngineError):
    """Own-key mode (no wallet to top up) or no payment method attached."""


# --------------------------------------------------------------------------- engine


EventHandler = Callable[[Event], Awaitable[None]]


class EngineAPI(AdminAPI, TopUpAPI, Protocol):
    """What the UI calls. Ownership is enforced inside every method."""

    # lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        """Open the database, reconcile purchases left in ``purchasing``, restore
        timers (unlock, expiry, polling) and re-dispatch undelivered events."""

    async def close(self) -> None: ...

    def subscribe(self, handler: EventHandler) -> None:
        """Register the consumer of events. An event is acknowledged (never sent
        again) once the handler returns; if it raises, it is retried on a later
        :meth:`run_due`. At most one handler."""

    async def run_due(self) -> float | None:
        """Do all work that is due now (poll rounds, unlock events, expiry cancels,
        cancel retries, event dispatch). Returns the clock time at which it next
        has work, or None if idle. Safe to call at any time, any number of times."""

    def next_due(self) -> float | None: ...

    def set_waker(self, waker: Callable[[float], None]) -> None:
        """The UI's scheduler callback: called with a due time whenever the engine
        gets work earlier than what it last reported."""

    @property
    def users_bring_keys(self) -> bool:
        """True when each user links their own DaisySim key (own-key funding);
        the UI shows key screens only then."""

    def is_admin(self, user_id: int) -> bool:
        """May this user use the admin commands? Decided once, in the engine
        (``ADMIN_IDS``); admin calls re-check it and raise NotAllowed."""

    # users / keys ----------------------------------------------------------
    async def ensure_user(
        self, user_id: int, *, locale: str | None = None, seen: bool = False
    ) -> str | None:
        """Register the user with Telegram's ``locale`` (language_code); returns the
        locale stored for them (their own /language choice wins over ``locale``).
        ``seen``: the user wrote or pressed now (recorded in the same statement)."""

    async def choose_locale(self, user_id: int, locale: str) -> None:
        """Store the user's explicit language choice (kept over later language_codes)."""

    async def user_locale(self, user_id: int) -> str | None:
        """The stored locale of the user (None: unknown user or never sent)."""

    async def user_exists(self, user_id: int) -> bool:
        """Has this Telegram user been registered (``ensure_user``) before?"""

    async def link_key(self, user_id: int, api_key: str) -> KeyInfo:
        """Validate with /balance, then store encrypted. Raises InvalidKey."""

    async def unlink_key(self, user_id: int) -> bool: ...

    async def key_info(self, user_id: int) -> str | None:
        """The masked key, or None."""

    # catalogue / buying ----------------------------------------------------
    async def list_services(self, user_id: int) -> list[Service]:
        """Services with this user's prices (5-minute price cache per account)."""

    async def quote(
        self, user_id: int, app: str, provider_id: str | None, *, fresh: bool = False
    ) -> Quote:
        """The price of ``app`` (``provider_id`` None: the cheapest pool with numbers,
        named in ``Quote.pool``; SoldOut if no pool has any). ``fresh``: read
        /apps now instead of the 5-minute price cache."""

    async def buy(
        self,
        user_id: int,
        app: str,
        provider_id: str | None,
        max_price: Decimal,
        *,
        request_id: str,
        chat_id: int | None = None,
        message_id: int | None = None,
        pool: str | None = None,
    ) -> Activation:
        """Buy a number. ``max_price`` is the price the user confirmed and ``pool``
        the pool it was quoted for (``Quote.pool``). Prices are read fresh from
        /apps first; the purchase names that pool. If the pool has no numbers
        now, raises SoldOut (with the fresh pools) and buys nothing, never
        another pool; if the fresh price is above ``max_price``, raises
        PriceChanged (with a fresh quote) and buys nothing.
        ``request_id`` makes the call idempotent (a second call raises
        DuplicateRequest carrying the first activation). Never retried blindly:
        a lost response is reconciled through /history (raises PurchasePending;
        the outcome follows as an event). ``chat_id``/``message_id``: the pressed
        message, stored with the purchase so every later event (also after a
        restart mid-purchase) updates that screen."""

    async def check_quote(self, user_id: int, quote_id: int) -> Quote:
        """The stored quote ``quote_id`` if this user can still buy it (a cheap
        database read, before the Confirm press is answered), else raises what
        :meth:`buy_quote` would: QuoteNotFound, DuplicateRequest, QuoteExpired."""

    async def withdraw_quotes(self, user_id: int) -> None:
        """End every unused quote of this user now (``/cancel``, a timed-out flow):
        a later Confirm on one of them buys nothing (QuoteExpired, fresh quote)."""

    async def buy_quote(
        self,
        user_id: int,
        quote_id: int,
        *,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> Activation:
        """Buy what quote ``quote_id`` (``Quote.id``) priced, at no more than its
        price. The quote is loaded from the database (so a Confirm pressed after
        a restart works within the quote's lifetime) and re-checked server-side:
        QuoteNotFound if it is not this user's; DuplicateRequest (with the first
        activation) if it was bought already (a second press never buys twice);
        QuoteExpired (with a fresh quote) once its lifetime is over. Then as
        :meth:`buy`: fresh prices, SoldOut / PriceChanged, PurchasePending."""

    async def set_message(self, user_id: int, activation_id: int, chat_id: int,
                          message_id: int) -> None:
        """Remember the order message so later events can edit it."""

    async def cancel(self, user_id: int, activation_id: int) -> CancelOutcome: ...

    # views -----------------------------------------------------------------
    async def get_activation(self, user_id: int, activation_id: int) -> Activation: ...

    async def active(self, user_id: int) -> list[Activation]: ...

    async def history(self, user_id: int, filter: HistoryFilter = "all", page: int = 1,
                      per_page: int = 5) -> OrderPage: ...

    async def wallet(self, user_id: int) -> WalletView: ...

    async def recent_services(self, user_id: int, limit: int = 3) -> list[str]:
        """Service codes this user bought most recently (for "recently bought first")."""

    # admin -----------------------------------------------------------------
    async def admin_adjust(self, admin_id: int, user_id: int, amount: Decimal,
                           note: str) -> Decimal:
        """Operator mode: credit (amount > 0) or debit (amount < 0) a user's wallet,
        with an audit entry. Returns the new balance. Raises NotAllowed /
        InsufficientFunds (a debit may not make a wallet negative)."""

    async def stats(self, admin_id: int) -> Stats: ...
