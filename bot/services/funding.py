"""The two funding policies (:class:`bot.domain.funding.FundingPolicy`) and the one
place that chooses between them (:func:`funding_policy`).

Operator ledger: an append-only Decimal ledger per user.

=========  ========  =====================================================
kind       sign      written
=========  ========  =====================================================
credit     +         admin top-up
debit      −         admin correction (never below zero)
hold       −         before a purchase is sent: the quoted user price H
release    +H        when the purchase settles, or is proven not bought
charge     −C        when the purchase settles: C = user price of
                     ``amount_charged`` (capped at H: the user never pays
                     more than the price confirmed)
refund     +C        once, when a bought number is cancelled / expires /
                     is Not Found upstream
=========  ========  =====================================================

So with every hold resolved: ``balance = credits − debits − charges + refunds``.
``hold``/``release``/``charge``/``refund`` exist at most once per activation
(UNIQUE index), so e.g. a refund can physically only be written once. Every
method runs in (or joins) a transaction; balance checks and the writes they
guard are atomic, so two concurrent purchases cannot overdraw a wallet.

Own key: the user's DaisySim balance is the wallet; nothing is written here.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import ClassVar, Protocol

from bot.clock import Clock
from bot.config import FundingMode, Settings
from bot.daisysim import errors as ds
from bot.domain.funding import (
    BalanceSource,
    FundingName,
    FundingPolicy,
    Funds,
    quantize,
)
from bot.domain.pricing import PriceBook
from bot.services.api import (
    InsufficientFunds,
    InvalidKey,
    KeyRequired,
    NotAllowed,
    OperatorFundsLow,
)
from bot.services.crypto import ConfigurationError
from storage.repositories import Repositories

__all__ = ["Ledger", "OperatorLedger", "OwnKeyFunding", "StoredPolicy", "funding_policy"]

logger = logging.getLogger("bot.services")

ZERO = Decimal(0)


class OperatorAccounts(Protocol):
    async def register_operator(self, api_key: str) -> int: ...


class StoredPolicy(FundingPolicy):
    """Storage is attached at start (the database opens then)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._repos: Repositories | None = None

    async def start(self, repos: Repositories, accounts: OperatorAccounts) -> None:
        """Attach storage and register what the policy funds purchases with."""
        self._repos = repos

    @property
    def _r(self) -> Repositories:
        if self._repos is None:
            raise RuntimeError("the funding policy has no storage yet (Engine.start())")
        return self._repos


# --------------------------------------------------------------------------- operator


class Ledger:
    """The operator's per-user wallets (the table in the module docstring)."""

    def __init__(self, repos: Repositories, clock: Clock) -> None:
        self._r = repos
        self._clock = clock

    async def balance(self, user_id: int) -> Decimal:
        return await self._r.ledger.balance(user_id)

    async def credit(
        self, user_id: int, amount: Decimal, *, actor_id: int | None, note: str = ""
    ) -> Decimal:
        amount = quantize(amount)
        if amount <= 0:
            raise ValueError("a credit must be positive")
        async with self._r.db.transaction():
            await self._r.users.ensure(user_id, self._clock.now())
            await self._r.ledger.add(
                user_id=user_id, amount=amount, kind="credit", note=note, actor_id=actor_id,
                now=self._clock.now(),
            )
            return await self._r.ledger.balance(user_id)

    async def debit(
        self, user_id: int, amount: Decimal, *, actor_id: int | None, note: str = ""
    ) -> Decimal:
        """Take ``amount`` (> 0) out; refused if the wallet would go negative."""
        amount = quantize(amount)
        if amount <= 0:
            raise ValueError("a debit must be positive")
        async with self._r.db.transaction():
            await self._r.users.ensure(user_id, self._clock.now())
            balance = await self._r.ledger.balance(user_id)
            if balance < amount:
                raise InsufficientFunds("debit exceeds balance", balance=balance, price=amount)
            await self._r.ledger.add(
                user_id=user_id, amount=-amount, kind="debit", note=note, actor_id=actor_id,
                now=self._clock.now(),
            )
            return balance - amount

    async def hold(self, user_id: int, activation_id: int, amount: Decimal) -> None:
        """Reserve ``amount`` for a purchase; InsufficientFunds if short."""
        amount = quantize(amount)
        if amount <= 0:
            return  # a free number needs no hold
        async with self._r.db.transaction():
            balance = await self._r.ledger.balance(user_id)
            if balance < amount:
                raise InsufficientFunds(
                    "wallet balance below the price", balance=balance, price=amount
                )
            await self._r.ledger.add(
                user_id=user_id, amount=-amount, kind="hold", activation_id=activation_id,
                note="hold", now=self._clock.now(),
            )

    async def held(self, activation_id: int) -> Decimal:
        entry = await self._r.ledger.get(activation_id, "hold")
        return ZERO if entry is None else -entry.amount

    async def settle(self, user_id: int, activation_id: int, charge: Decimal) -> Decimal:
        """The purchase went through: charge min(charge, hold) and release the
        hold. Returns the amount charged. Idempotent; a no-op (0) once the hold was
        released as "not bought"."""
        async with self._r.db.transaction():
            existing = await self._r.ledger.get(activation_id, "charge")
            if existing is not None:
                return -existing.amount
            if await self._r.ledger.get(activation_id, "release") is not None:
                return ZERO  # released as "not bought": nothing may be charged any more
            held = await self.held(activation_id)
            charged = min(quantize(charge), held)
            if charged > 0:
                await self._r.ledger.add(
                    user_id=user_id, amount=-charged, kind="charge",
                    activation_id=activation_id, note="purchase", now=self._clock.now(),
                )
            if held > 0:
                await self._r.ledger.add(
                    user_id=user_id, amount=held, kind="release", activation_id=activation_id,
                    note="hold settled", now=self._clock.now(),
                )
            return charged

    async def release(self, user_id: int, activation_id: int) -> Decimal:
        """Nothing was bought: give the hold back (once). Returns the amount."""
        async with self._r.db.transaction():
            if await self._r.ledger.get(activation_id, "charge") is not None:
                return ZERO  # settled: the hold was released then
            held = await self.held(activation_id)
            if held <= 0:
                return ZERO
            written = await self._r.ledger.add(
                user_id=user_id, amount=held, kind="release", activation_id=activation_id,
                note="not bought", now=self._clock.now(),
            )
            return held if written is not None else ZERO

    async def refund(self, user_id: int, activation_id: int, note: str = "refund") -> Decimal:
        """Return the charge of a bought number, at most once. Returns the amount
        refunded now (0 if there was nothing to refund or it was done already)."""
        async with self._r.db.transaction():
            charge = await self._r.ledger.get(activation_id, "charge")
            if charge is None:
                return ZERO
            written = await self._r.ledger.add(
                user_id=user_id, amount=-charge.amount, kind="refund",
                activation_id=activation_id, note=note, now=self._clock.now(),
            )
            return -charge.amount if written is not None else ZERO

    async def charged(self, activation_id: int) -> Decimal | None:
        entry = await self._r.ledger.get(activation_id, "charge")
        return None if entry is None else -entry.amount




class OperatorLedger(StoredPolicy):
    name: ClassVar[FundingName] = "operator"
    users_bring_keys: ClassVar[bool] = False
    owns_every_order: ClassVar[bool] = True
    shows_ledger: ClassVar[bool] = True

    def __init__(
        self, clock: Clock, *, markup: Decimal, api_key: str, prices: PriceBook | None = None
    ) -> None:
        super().__init__(clock)
        self.markup = markup
        self.price_book: PriceBook = prices if prices is not None else PriceBook(markup)
        self.api_key = api_key
        self.account_id: int | None = None  # the operator's account (set at start)
        self._ledger: Ledger | None = None

    async def start(self, repos: Repositories, accounts: OperatorAccounts) -> None:
        await super().start(repos, accounts)
        self._ledger = Ledger(repos, self._clock)
        self.account_id = await accounts.register_operator(self.api_key)

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise RuntimeError("the funding policy has no storage yet (Engine.start())")
        return self._ledger

    def user_price(self, service_code: str, upstream: Decimal) -> Decimal:
        return self.price_book.price(service_code, upstream)

    async def funding_account_id(self, user_id: int) -> int:
        assert self.account_id is not None, "the operator account is registered at start"
        return self.account_id

    async def balance(self, user_id: int, client: BalanceSource | None) -> Decimal | None:
        return await self.ledger.balance(user_id)

    async def funds(self, user_id: int, client: BalanceSource | None) -> Funds:
        return Funds(await self.ledger.balance(user_id), None)

    async def upstream_short(
        self, user_id: int, client: BalanceSource | None, price: Decimal
    ) -> Exception:
        logger.error("the operator's DaisySim balance is too low for purchases")
        return OperatorFundsLow("the service wallet is empty; try again later")

    async def hold(self, user_id: int, activation_id: int, price: Decimal) -> None:
        await self.ledger.hold(user_id, activation_id, price)

    async def settle(
        self, user_id: int, activation_id: int, confirmed: Decimal, upstream: Decimal | None,
        *, service_code: str,
    ) -> Decimal:
        price = confirmed if upstream is None else self.user_price(service_code, upstream)
        held = await self.ledger.held(activation_id)
        charged = await self.ledger.settle(user_id, activation_id, price)
        if price > held:
            logger.warning(
                "activation %d: upstream charged more than quoted (%s for %s); "
                "the user pays the confirmed price", activation_id, price, held,
            )
        return charged

    async def release(self, user_id: int, activation_id: int) -> None:
        await self.ledger.release(user_id, activation_id)

    async def cancel_refund(
        self, activation_id: int, *, upstream_refund: Decimal | None, paid: Decimal
    ) -> Decimal:
        return await self.ledger.charged(activation_id) or ZERO

    async def failed_refund(self, activation_id: int) -> Decimal | None:
        return await self.ledger.charged(activation_id) or ZERO

    async def give_back(self, user_id: int, activation_id: int, note: str) -> None:
        await self.ledger.refund(user_id, activation_id, note=note)

    async def adjust(
        self, admin_id: int, user_id: int, amount: Decimal, note: str
    ) -> Decimal:
        amount = Decimal(amount)
        if not amount.is_finite():
            raise ValueError("amount must be finite")
        amount = quantize(amount)
        if amount > 0:
            return await self.ledger.credit(user_id, amount, actor_id=admin_id, note=note)
        if amount < 0:
            return await self.ledger.debit(user_id, -amount, actor_id=admin_id, note=note)
        await self._r.users.ensure(user_id, self._clock.now())
        return await self.ledger.balance(user_id)


# --------------------------------------------------------------------------- own key


class OwnKeyFunding(StoredPolicy):
    name: ClassVar[FundingName] = "own_key"
    users_bring_keys: ClassVar[bool] = True
    owns_every_order: ClassVar[bool] = False
    shows_ledger: ClassVar[bool] = False

    def user_price(self, service_code: str, upstream: Decimal) -> Decimal:
        return quantize(upstream)  # DaisySim's own price: no markup with the user's key

    async def funding_account_id(self, user_id: int) -> int:
        row = await self._r.accounts.active_for_user(user_id)
        if row is None:
            raise KeyRequired("link a DaisySim API key first")
        return row.id

    async def balance(self, user_id: int, client: BalanceSource | None) -> Decimal | None:
        if client is None:
            return None
        try:
            return (await client.balance()).balance
        except ds.DaisySimError:
            return None

    async def funds(self, user_id: int, client: BalanceSource | None) -> Funds:
        row = await self._r.accounts.active_for_user(user_id)
        if row is None:
            return Funds(None, None)
        if client is None:
            raise InvalidKey("the DaisySim key of this account is not available")
        info = await client.balance()  # a DaisySimError is the caller's to map
        if info.email != row.email:
            await self._r.accounts.set_email(row.id, info.email)
        return Funds(info.balance, info.email)

    async def upstream_short(
        self, user_id: int, client: BalanceSource | None, price: Decimal
    ) -> Exception:
        balance = await self.balance(user_id, client)
        return InsufficientFunds("DaisySim balance too low", balance=balance, price=price)

    async def hold(self, user_id: int, activation_id: int, price: Decimal) -> None:
        return None  # DaisySim takes the money from the user's own balance

    async def settle(
        self, user_id: int, activation_id: int, confirmed: Decimal, upstream: Decimal | None,
        *, service_code: str,
    ) -> Decimal:
        if upstream is None:
            return confirmed
        price = quantize(upstream)
        if price > confirmed:  # we named the quoted pool: upstream's doing
            logger.warning(
                "activation %d: DaisySim charged %s, above the confirmed %s",
                activation_id, price, confirmed,
            )
        return price

    async def release(self, user_id: int, activation_id: int) -> None:
        return None

    async def cancel_refund(
        self, activation_id: int, *, upstream_refund: Decimal | None, paid: Decimal
    ) -> Decimal:
        return upstream_refund if upstream_refund is not None else paid

    async def failed_refund(self, activation_id: int) -> Decimal | None:
        return None

    async def give_back(self, user_id: int, activation_id: int, note: str) -> None:
        return None  # DaisySim refunds the user's balance itself

    async def adjust(
        self, admin_id: int, user_id: int, amount: Decimal, note: str
    ) -> Decimal:
        raise NotAllowed("wallets are DaisySim wallets in own-key mode")


# --------------------------------------------------------------------------- choice

def funding_policy(settings: Settings, clock: Clock, *, can_encrypt: bool) -> StoredPolicy:
    """The one place the funding mode is looked at. Raises ConfigurationError
    for settings the mode cannot work with."""
    mode = FundingMode(settings.funding_mode)
    if mode is FundingMode.OPERATOR:
        if settings.daisysim_api_key is None:
            raise ConfigurationError("FUNDING_MODE=operator needs DAISYSIM_API_KEY")
        markup = Decimal(settings.markup_percent)
        return OperatorLedger(
            clock, markup=markup, api_key=settings.daisysim_api_key.get_secret_value(),
            prices=PriceBook(markup, settings.price_rules()),
        )
    if not can_encrypt:
        raise ConfigurationError(
            "FUNDING_MODE=own_key stores users' DaisySim keys encrypted: set ENCRYPTION_KEY "
            "(a Fernet key)"
        )
    return OwnKeyFunding(clock)
