"""Who pays for a number: one policy interface, two implementations.

* **Operator ledger** (``FUNDING_MODE=operator``): the bot's own DaisySim key buys
  every number; each user has an internal Decimal wallet. A purchase holds the
  quoted price first, then charges (capped at the hold) or releases it; a number
  cancelled, expired or Not Found upstream is refunded to the wallet, once. Prices
  carry the operator's markup.
* **Own key** (``FUNDING_MODE=own_key``): each user links their own DaisySim key;
  the wallet *is* that key's DaisySim balance. No markup, no internal ledger:
  DaisySim charges and refunds the user's balance itself.

The engine never asks which mode it runs in: every money decision is a call on
the :class:`FundingPolicy` chosen once, at composition
(:func:`bot.services.funding.funding_policy`). The implementations live in
:mod:`bot.services.funding` (they read and write the ledger); this module holds
the interface and the pure rules (no I/O).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import ClassVar, Literal, Protocol

from bot.domain.pricing import PriceBook, PriceRule, apply_rule

__all__ = [
    "QUANTUM",
    "BalanceSource",
    "FundingName",
    "FundingPolicy",
    "Funds",
    "quantize",
    "user_price",
]

QUANTUM = Decimal("0.0001")
FundingName = Literal["own_key", "operator"]


def quantize(amount: Decimal) -> Decimal:
    """DaisySim amounts have 4 decimal places; ROUND_HALF_UP."""
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_UP)


def user_price(upstream: Decimal, markup_percent: Decimal | None) -> Decimal:
    """``upstream × (1 + markup%)`` rounded up to the cent (no markup: as is, to
    4 dp). Per-service rules: :mod:`bot.domain.pricing`."""
    return apply_rule(upstream, PriceRule(markup=Decimal(markup_percent or 0)))


class BalanceSource(Protocol):
    """What a policy needs of a DaisySim account's client: its /balance."""

    async def balance(self) -> BalanceInfo: ...


class BalanceInfo(Protocol):
    @property
    def balance(self) -> Decimal: ...

    @property
    def email(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Funds:
    """A user's money as the wallet screen shows it."""

    balance: Decimal | None  # None: own key and no key linked
    email: str | None  # own key: the DaisySim account's email


class FundingPolicy(ABC):
    """Every money decision of the engine (see the module docstring).

    Methods that write run inside (or join) the caller's transaction, so a state
    change and its ledger entries commit together.
    """

    name: ClassVar[FundingName]
    #: Each user links their own DaisySim key (the UI shows key screens).
    users_bring_keys: ClassVar[bool]
    #: The funding key is the bot's: any order it does not know is the bot's
    #: to cancel (the stray-order sweep). A user's own key: only orders the bot sent.
    owns_every_order: ClassVar[bool]
    #: The wallet screen lists internal ledger entries.
    shows_ledger: ClassVar[bool]

    #: The operator's price rules (None: users pay DaisySim's prices, own key).
    price_book: PriceBook | None = None

    # ------------------------------------------------------------- prices
    @abstractmethod
    def user_price(self, service_code: str, upstream: Decimal) -> Decimal:
        """What a user pays for an upstream price of this service (lists, quotes
        and charges)."""

    # ------------------------------------------------------------- accounts
    @abstractmethod
    async def funding_account_id(self, user_id: int) -> int:
        """The DaisySim account that buys for this user (KeyRequired if none)."""

    @abstractmethod
    async def balance(self, user_id: int, client: BalanceSource | None) -> Decimal | None:
        """The user's balance for a quote (None if unknown). ``client``: the
        funding account's client."""

    @abstractmethod
    async def funds(self, user_id: int, client: BalanceSource | None) -> Funds:
        """Balance and email for the wallet screen (raises the API error mapped
        by the caller if the upstream read fails)."""

    # ------------------------------------------------------------- a purchase
    @abstractmethod
    async def hold(self, user_id: int, activation_id: int, price: Decimal) -> None:
        """Before a purchase is sent: reserve ``price`` (InsufficientFunds if short)."""

    @abstractmethod
    async def settle(
        self, user_id: int, activation_id: int, confirmed: Decimal, upstream: Decimal | None,
        *, service_code: str,
    ) -> Decimal:
        """The purchase went through, DaisySim charged ``upstream`` (None:
        unreadable) for ``service_code``. Returns the price the user pays (never
        above what was held)."""

    @abstractmethod
    async def release(self, user_id: int, activation_id: int) -> None:
        """Nothing was bought: give back what was held (once)."""

    @abstractmethod
    async def upstream_short(
        self, user_id: int, client: BalanceSource | None, price: Decimal
    ) -> Exception:
        """DaisySim refused a purchase with INSUFFICIENT_BALANCE: the error for
        the user (own key: their balance is too low; operator: the bot's wallet
        is empty, an outage)."""

    # ------------------------------------------------------------- money back
    @abstractmethod
    async def cancel_refund(
        self, activation_id: int, *, upstream_refund: Decimal | None, paid: Decimal
    ) -> Decimal:
        """The refund amount of a cancelled number (``paid``: what it cost)."""

    @abstractmethod
    async def failed_refund(self, activation_id: int) -> Decimal | None:
        """The refund amount of a number Not Found upstream (None: not ours)."""

    @abstractmethod
    async def give_back(self, user_id: int, activation_id: int, note: str) -> None:
        """Write the refund of a bought number to the user's wallet, at most once."""

    # ------------------------------------------------------------- admin
    @abstractmethod
    async def adjust(
        self, admin_id: int, user_id: int, amount: Decimal, note: str
    ) -> Decimal:
        """Credit (> 0) or debit (< 0) a user's wallet; NotAllowed if wallets
        are not the bot's. Returns the new balance."""
