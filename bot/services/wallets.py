"""Operator-mode wallets: an append-only Decimal ledger per user.

Entries (signed; a balance is their exact Decimal sum):

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
"""

from __future__ import annotations

from decimal import Decimal

from bot.clock import Clock
from bot.services.api import InsufficientFunds
from bot.services.pricing import quantize
from storage.repositories import Repositories

__all__ = ["Wallets"]

ZERO = Decimal(0)


class Wallets:
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
