"""Wallet top-ups (operator mode): open a top-up, check a pre-checkout, record a
payment exactly once per charge id, refund, and reconcile missed payments.

Money rules:

* The amount credited comes from the top-up row (written when the user picked a
  pack: an index into ``TOPUP_PACKS_USD``), never from the client.
* A payment is credited once per charge id: the ``topups`` row (unique charge id)
  and the ledger credit (unique per charge and entry) are written in one
  transaction; a repeated update, or reconciliation meeting a payment already
  seen, writes nothing.
* A payment for an expired, used or unknown row is still credited (the money was
  taken): at the row's amount if it paid the row's price, else the Stars at the
  configured rate (rounded down to the cent), recorded as a row of its own.
* A refund debits the wallet first (once per charge, only while the balance
  covers the top-up), then asks the method; a transient failure leaves the row
  ``refunding`` (retried by :meth:`TopUps.retry_refunds`); a final refusal gives
  the debit back, once.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from bot.domain.funding import quantize
from bot.domain.topups import (
    IncomingPayment,
    Pack,
    PaymentSource,
    PreCheckoutRefusal,
    RefundResult,
    TopUpMethod,
    TopUpState,
    TopUpTerms,
    check_pre_checkout,
    credit_for,
    format_payload,
    packs,
    parse_payload,
)
from bot.services.api import (
    NotAllowed,
    PaymentOutcome,
    RefundOutcome,
    RefundStatus,
    TopUp,
    TopUpsUnavailable,
)
from bot.services.runtime import Runtime
from storage.topups import TopUpRow

__all__ = ["TopUps", "refund_backoff"]

logger = logging.getLogger("bot.services.topups")

ZERO = Decimal(0)
_CHARGE_MAX = 256


def refund_backoff(attempts: int) -> float:
    """Seconds before the next refund attempt after ``attempts`` failures."""
    return float(min(3600, 30 * 2 ** min(attempts, 7)))


def to_topup(row: TopUpRow) -> TopUp:
    return TopUp(
        id=row.id, user_id=row.user_id, amount=row.amount, price=row.price,
        currency=row.currency, state=TopUpState(row.state), payload=format_payload(row.id),
        expires_at=row.expires_at, charge_id=row.charge_id,
        notified=row.notified_at is not None,
    )


class TopUps:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.method: TopUpMethod | None = None

    # ---------------------------------------------------------------- setup
    @property
    def available(self) -> bool:
        return not self.rt.policy.users_bring_keys and self.method is not None

    def _method(self) -> TopUpMethod:
        if self.rt.policy.users_bring_keys:
            raise TopUpsUnavailable("own-key mode: the DaisySim balance is the wallet")
        if self.method is None:
            raise TopUpsUnavailable("no top-up method attached")
        return self.method

    def packs(self) -> tuple[Pack, ...]:
        method = self._method()
        return tuple(
            Pack(p.index, p.usd, method.price(p.usd))
            for p in packs(self.rt.settings.topup_packs_usd, self.rt.settings.stars_per_usd)
        )

    # ---------------------------------------------------------------- paying
    async def open(self, user_id: int, pack_index: int) -> TopUp:
        """A new open top-up of pack ``pack_index`` (NotAllowed for no such pack)."""
        choices = self.packs()
        if not 0 <= pack_index < len(choices):
            raise NotAllowed(f"no top-up pack {pack_index}")
        pack = choices[pack_index]
        method = self._method()
        rt = self.rt
        now = rt.clock.now()
        lifetime = float(rt.settings.topup_invoice_minutes) * 60.0
        async with rt.db.transaction():
            await rt.repos.users.ensure(user_id, now)
            topup_id = await rt.repos.topups.create(
                user_id=user_id, method=method.name, currency=method.currency,
                amount=pack.usd, price=pack.price, now=now, expires_at=now + lifetime,
            )
            row = await rt.repos.topups.get(topup_id)
        assert row is not None
        return to_topup(row)

    async def set_message(self, user_id: int, topup_id: int, chat_id: int,
                          message_id: int) -> None:
        row = await self.rt.repos.topups.get(topup_id)
        if row is None or row.user_id != user_id:
            raise NotAllowed("not this user's top-up")
        await self.rt.repos.topups.set_message(topup_id, chat_id, message_id)

    async def pre_checkout(
        self, user_id: int, payload: str, currency: str, total: int
    ) -> PreCheckoutRefusal | None:
        """One database read: may this payment go ahead?"""
        topup_id = parse_payload(payload)
        row = None if topup_id is None else await self.rt.repos.topups.get(topup_id)
        terms = None if row is None else TopUpTerms(
            row.user_id, row.currency, row.price, row.state, row.expires_at
        )
        return check_pre_checkout(
            terms, user_id=user_id, currency=currency, total=total, now=self.rt.clock.now()
        )

    async def record_payment(
        self,
        user_id: int,
        payload: str | None,
        currency: str,
        total: int,
        charge_id: str,
        provider_charge_id: str | None = None,
    ) -> PaymentOutcome:
        """Credit a payment, exactly once per ``charge_id``."""
        method = self._method()
        if not charge_id or len(charge_id) > _CHARGE_MAX or total <= 0:
            raise ValueError("a payment needs a charge id and a positive amount")
        rt = self.rt
        repos = rt.repos
        now = rt.clock.now()
        async with rt.db.transaction():
            seen = await repos.topups.by_charge(charge_id)
            if seen is not None:
                balance = await repos.ledger.balance(seen.user_id)
                return PaymentOutcome(to_topup(seen), False, balance)
            await repos.users.ensure(user_id, now)
            topup_id = parse_payload(payload)
            row = None if topup_id is None else await repos.topups.get(topup_id)
            expected = (
                row is not None and row.user_id == user_id and row.state == TopUpState.OPEN
            )
            if row is not None and expected:
                exact = currency == row.currency and total == row.price
                amount = row.amount if exact else credit_for(total, rt.settings.stars_per_usd)
                if not exact:
                    logger.error(
                        "top-up %d: paid %s %s for a price of %s %s; crediting %s",
                        row.id, total, currency, row.price, row.currency, amount,
                    )
                elif now >= row.expires_at:
                    logger.warning("top-up %d paid after it expired; credited", row.id)
                await repos.topups.mark_paid(
                    row.id, charge_id=charge_id, provider_charge_id=provider_charge_id,
                    paid_price=total, now=now,
                )
                if not exact:
                    await repos.topups.set_amount(row.id, amount)
                credited_id = row.id
            else:
                # Only the method's currency has a rate; anything else is recorded (an
                # admin can refund it) but credits nothing.
                amount = (credit_for(total, rt.settings.stars_per_usd)
                          if currency == method.currency else ZERO)
                logger.warning(
                    "payment %s of user %d names no open top-up of theirs (payload %r):"
                    " credited %s", _short(charge_id), user_id, payload, amount,
                )
                new_id = await repos.topups.create_paid(
                    user_id=user_id, method=method.name, currency=currency, amount=amount,
                    price=total, now=now, charge_id=charge_id,
                    provider_charge_id=provider_charge_id,
                )
                assert new_id is not None  # the charge was not seen (checked above)
                credited_id = new_id
            if amount > 0:
                await repos.ledger.add(
                    user_id=user_id, amount=quantize(amount), kind="credit", now=now,
                    note="top-up", charge_id=charge_id, charge_entry="topup",
                )
            balance = await repos.ledger.balance(user_id)
            fresh = await repos.topups.get(credited_id)
        assert fresh is not None
        logger.info("top-up %d credited %s (charge %s)", fresh.id, amount, _short(charge_id))
        return PaymentOutcome(to_topup(fresh), True, balance, expected=expected)

    async def notified(self, topup_id: int) -> None:
        """The user was told about the credit (not told again on a repeat)."""
        await self.rt.repos.topups.claim_notice(topup_id, self.rt.clock.now())

    async def reconcile(self) -> list[PaymentOutcome]:
        """Credit every incoming payment the method reports whose charge id is not
        recorded and whose payload names a top-up of ours (a crash between the
        payment and the credit). Returns the payments credited now."""
        method = self._method()
        if not isinstance(method, PaymentSource):
            return []
        incoming = await method.incoming()
        known = await self.rt.repos.topups.known_charges([p.charge_id for p in incoming])
        credited: list[PaymentOutcome] = []
        for payment in incoming:
            if payment.charge_id in known or not await self._ours(payment):
                continue
            outcome = await self.record_payment(
                payment.user_id, payment.payload, method.currency, payment.amount,
                payment.charge_id,
            )
            if outcome.credited:
                logger.warning(
                    "top-up %d: payment %s found by reconciliation, credited",
                    outcome.topup.id, _short(payment.charge_id),
                )
                credited.append(outcome)
        return credited

    async def _ours(self, payment: IncomingPayment) -> bool:
        topup_id = parse_payload(payment.payload)
        if topup_id is None:
            return False
        row = await self.rt.repos.topups.get(topup_id)
        return row is not None and row.user_id == payment.user_id

    # ---------------------------------------------------------------- refunds
    async def refund(self, admin_id: int, charge_id: str) -> RefundOutcome:
        """Refund a top-up: debit first (once, only if the balance covers it), then
        the method's refund."""
        if admin_id not in self.rt.settings.admin_ids:
            raise NotAllowed("admins only")
        self._method()
        rt = self.rt
        repos = rt.repos
        now = rt.clock.now()
        async with rt.db.transaction():
            row = await repos.topups.by_charge(charge_id)
            if row is None:
                return RefundOutcome(RefundStatus.NOT_FOUND)
            balance = await repos.ledger.balance(row.user_id)
            if row.state != TopUpState.PAID:
                return RefundOutcome(RefundStatus.NOT_PAID, to_topup(row), balance)
            if balance < row.amount:
                return RefundOutcome(RefundStatus.SPENT, to_topup(row), balance)
            written = row.amount <= 0 or await repos.ledger.add(  # 0: nothing was credited
                user_id=row.user_id, amount=-row.amount, kind="debit", now=now,
                note="top-up refund", actor_id=admin_id, charge_id=charge_id,
                charge_entry="refund",
            ) is not None
            if not written or not await repos.topups.begin_refund(
                row.id, actor_id=admin_id, now=now, retry_at=now + refund_backoff(0)
            ):
                raise RuntimeError(f"top-up {row.id}: refund state out of step")  # rollback
        logger.info("admin %d: refunding top-up %d (charge %s)", admin_id, row.id,
                    _short(charge_id))
        fresh = await repos.topups.get(row.id)
        assert fresh is not None
        return await self._attempt(fresh)

    async def retry_refunds(self) -> list[RefundOutcome]:
        """Refunds left ``refunding`` (a transient failure, or a crash after the
        debit) whose retry time has come. Returns those that finished now."""
        if self.method is None or self.rt.policy.users_bring_keys:
            return []
        finished: list[RefundOutcome] = []
        for row in await self.rt.repos.topups.refunding(self.rt.clock.now()):
            outcome = await self._attempt(row)
            if outcome.status != RefundStatus.PENDING:
                finished.append(outcome)
        return finished

    async def _attempt(self, row: TopUpRow) -> RefundOutcome:
        method = self._method()
        rt = self.rt
        repos = rt.repos
        assert row.charge_id is not None
        try:
            result = await method.refund(row.user_id, row.charge_id)
        except Exception as exc:  # network and the like: transient by nature
            logger.warning("top-up %d: refund failed (%s); retrying", row.id,
                           type(exc).__name__)
            result, error = RefundResult.RETRY, type(exc).__name__
        else:
            error = result.value
        now = rt.clock.now()
        if result == RefundResult.DONE:
            await repos.topups.finish_refund(row.id, TopUpState.REFUNDED, now=now)
            status = RefundStatus.DONE
        elif result == RefundResult.RETRY:
            await repos.topups.refund_retry(
                row.id, at=now + refund_backoff(row.refund_attempts + 1), error=error
            )
            status = RefundStatus.PENDING
        else:
            async with rt.db.transaction():
                if await repos.topups.finish_refund(
                    row.id, TopUpState.REFUND_FAILED, now=now, error=error
                ) and row.amount > 0:
                    await repos.ledger.add(
                        user_id=row.user_id, amount=row.amount, kind="credit", now=now,
                        note="top-up refund refused", charge_id=row.charge_id,
                        charge_entry="refund_back",
                    )
            logger.error("top-up %d: the refund was refused; the debit was given back",
                         row.id)
            status = RefundStatus.REFUSED
        fresh = await repos.topups.get(row.id)
        assert fresh is not None
        balance = await repos.ledger.balance(row.user_id)
        return RefundOutcome(status, to_topup(fresh), balance)

    async def for_user(self, user_id: int) -> list[TopUp]:
        return [to_topup(r) for r in await self.rt.repos.topups.for_user(user_id)]


def _short(charge_id: str) -> str:
    """Charge ids in logs: enough to find them, not the whole id."""
    return charge_id if len(charge_id) <= 12 else f"{charge_id[:6]}…{charge_id[-4:]}"
