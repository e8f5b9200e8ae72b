"""Top-ups in the engine (operator mode): credit once per charge id, pre-checkout
checks, refunds (debit first, retried, given back once), reconciliation."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bot.domain.topups import (
    IncomingPayment,
    PreCheckoutRefusal,
    RefundResult,
    check_pre_checkout,
    credit_for,
    format_payload,
    parse_packs,
    parse_payload,
    stars_price,
)
from bot.services.api import NotAllowed, RefundStatus, TopUpState, TopUpsUnavailable
from bot.services.engine import Engine
from bot.services.stars import StarsMethod
from tests.services.conftest import ADMIN, ALICE, BOB, Harness


class FakeStars:
    """A StarsBackend: refunds answer from a script; transactions from a list."""

    def __init__(self) -> None:
        self.results: list[RefundResult | Exception] = []
        self.refunds: list[tuple[int, str]] = []
        self.payments: list[IncomingPayment] = []

    async def refund(self, user_id: int, charge_id: str) -> RefundResult:
        self.refunds.append((user_id, charge_id))
        result = self.results.pop(0) if self.results else RefundResult.DONE
        if isinstance(result, Exception):
            raise result
        return result

    async def transactions(self, offset: int, limit: int) -> tuple[list[IncomingPayment], int]:
        page = self.payments[offset:offset + limit]
        return page, len(page)


async def _engine(h: Harness, backend: FakeStars, **overrides: object) -> Engine:
    engine = await h.engine(**overrides)  # type: ignore[arg-type]
    engine.use_topup_method(StarsMethod(backend, engine.settings.stars_per_usd))
    return engine


# ------------------------------------------------------------------ pure rules
def test_packs_prices_and_payloads() -> None:
    assert parse_packs("1, 5,10.50") == (Decimal("1"), Decimal("5"), Decimal("10.50"))
    for bad in ("", "0", "-1", "1,1", "1e3", "abc", "1.234", "1,2,3,4,5,6,7,8,9"):
        with pytest.raises(ValueError):
            parse_packs(bad)
    assert stars_price(Decimal("5"), Decimal("77")) == 385
    assert stars_price(Decimal("0.99"), Decimal("77")) == 77  # 76.23 → up
    assert credit_for(100, Decimal("77")) == Decimal("1.29")  # 1.2987 → down
    assert parse_payload(format_payload(42)) == 42
    assert parse_payload(None) is None
    for bad in ("", "topup:", "topup:0", "topup:-1", "topup:1x", "x:1", "topup:01"):
        assert parse_payload(bad) is None


def test_pre_checkout_rule() -> None:
    from bot.domain.topups import TopUpTerms

    row = TopUpTerms(ALICE, "XTR", 385, "open", 100.0)
    ok = {"user_id": ALICE, "currency": "XTR", "total": 385, "now": 99.0}
    assert check_pre_checkout(row, **ok) is None  # type: ignore[arg-type]
    assert check_pre_checkout(None, **ok) == PreCheckoutRefusal.UNKNOWN  # type: ignore[arg-type]
    assert check_pre_checkout(row, **{**ok, "user_id": BOB}) == PreCheckoutRefusal.UNKNOWN  # type: ignore[arg-type]
    assert check_pre_checkout(row, **{**ok, "total": 384}) == PreCheckoutRefusal.AMOUNT  # type: ignore[arg-type]
    assert check_pre_checkout(row, **{**ok, "currency": "USD"}) == PreCheckoutRefusal.AMOUNT  # type: ignore[arg-type]
    assert check_pre_checkout(row, **{**ok, "now": 100.0}) == PreCheckoutRefusal.EXPIRED  # type: ignore[arg-type]
    paid = TopUpTerms(ALICE, "XTR", 385, "paid", 100.0)
    assert check_pre_checkout(paid, **ok) == PreCheckoutRefusal.USED  # type: ignore[arg-type]


# ------------------------------------------------------------------ engine
async def test_own_key_mode_has_no_top_ups(h: Harness) -> None:
    engine = await _engine(h, FakeStars(), mode="own_key")
    assert not engine.topups_available
    with pytest.raises(TopUpsUnavailable):
        await engine.open_topup(ALICE, 0)


async def test_a_pack_is_an_index_and_the_row_holds_the_amount(h: Harness) -> None:
    engine = await _engine(h, FakeStars(), topup_packs_usd="2,5", stars_per_usd="50")
    assert [(p.usd, p.price) for p in engine.topup_packs()] == [
        (Decimal("2"), 100), (Decimal("5"), 250)
    ]
    for bad in (-1, 2, 99):
        with pytest.raises(NotAllowed):
            await engine.open_topup(ALICE, bad)
    topup = await engine.open_topup(ALICE, 1)
    assert (topup.amount, topup.price, topup.currency, topup.state) == (
        Decimal("5"), 250, "XTR", TopUpState.OPEN
    )
    assert topup.payload == f"topup:{topup.id}"
    assert topup.expires_at == h.clock.now() + 30 * 60


async def test_pre_checkout_checks_user_amount_state_and_time(h: Harness) -> None:
    engine = await _engine(h, FakeStars())
    topup = await engine.open_topup(ALICE, 1)
    check = engine.topup_pre_checkout
    assert await check(ALICE, topup.payload, "XTR", topup.price) is None
    assert await check(BOB, topup.payload, "XTR", topup.price) == PreCheckoutRefusal.UNKNOWN
    assert await check(ALICE, "topup:999", "XTR", topup.price) == PreCheckoutRefusal.UNKNOWN
    assert await check(ALICE, "junk", "XTR", topup.price) == PreCheckoutRefusal.UNKNOWN
    assert await check(ALICE, topup.payload, "XTR", 1) == PreCheckoutRefusal.AMOUNT
    h.clock.advance(30 * 60)
    assert await check(ALICE, topup.payload, "XTR", topup.price) == PreCheckoutRefusal.EXPIRED


async def test_a_payment_is_credited_once_per_charge_id(h: Harness) -> None:
    engine = await _engine(h, FakeStars())
    topup = await engine.open_topup(ALICE, 1)  # $5
    pay = engine.record_topup_payment
    first = await pay(ALICE, topup.payload, "XTR", topup.price, "ch-1", "prov-1")
    assert first.credited and first.expected and first.balance == Decimal("5")
    again = await pay(ALICE, topup.payload, "XTR", topup.price, "ch-1", "prov-1")
    assert not again.credited and again.balance == Decimal("5")
    # concurrent duplicates: still one credit
    other = await engine.open_topup(ALICE, 0)
    results = await asyncio.gather(
        *(pay(ALICE, other.payload, "XTR", other.price, "ch-2") for _ in range(5))
    )
    assert sum(r.credited for r in results) == 1
    assert (await engine.wallet(ALICE)).balance == Decimal("6")
    repos = engine.services.rt.repos
    assert [e.charge_entry for e in await repos.ledger.for_charge("ch-1")] == ["topup"]
    assert (await repos.topups.get(topup.id)).state == "paid"  # type: ignore[union-attr]
    # the row was paid: it cannot be paid again with another charge
    assert await engine.topup_pre_checkout(ALICE, topup.payload, "XTR", topup.price) == (
        PreCheckoutRefusal.USED
    )
    wallet = await engine.wallet(ALICE)
    assert {e.charge_id for e in wallet.ledger} == {"ch-1", "ch-2"}


async def test_expired_unknown_and_odd_payments_are_still_credited(h: Harness) -> None:
    engine = await _engine(h, FakeStars())  # 77 Stars per USD
    pay = engine.record_topup_payment
    topup = await engine.open_topup(ALICE, 1)
    h.clock.advance(3600)  # expired: the money was taken all the same
    late = await pay(ALICE, topup.payload, "XTR", topup.price, "ch-late")
    assert late.credited and late.topup.id == topup.id and late.balance == Decimal("5")
    unknown = await pay(ALICE, "something else", "XTR", 154, "ch-unknown")
    assert unknown.credited and not unknown.expected and unknown.topup.amount == Decimal("2")
    # Bob pays with Alice's row: credited to Bob, at the rate, on a row of its own
    fresh = await engine.open_topup(ALICE, 0)
    foreign = await pay(BOB, fresh.payload, "XTR", 77, "ch-bob")
    assert foreign.credited and foreign.topup.user_id == BOB and foreign.topup.id != fresh.id
    assert (await engine.wallet(BOB)).balance == Decimal("1")
    assert (await engine.wallet(ALICE)).balance == Decimal("7")
    # a currency without a rate: recorded (refundable by an admin), credits nothing
    other = await pay(ALICE, "not ours", "USD", 500, "ch-usd")
    assert other.credited and other.topup.amount == Decimal("0")
    assert (await engine.wallet(ALICE)).balance == Decimal("7")
    assert (await engine.refund_topup(ADMIN, "ch-usd")).status == RefundStatus.DONE
    assert (await engine.wallet(ALICE)).balance == Decimal("7")


async def test_refund_debits_first_then_refunds_once(h: Harness) -> None:
    backend = FakeStars()
    engine = await _engine(h, backend)
    topup = await engine.open_topup(ALICE, 1)
    await engine.record_topup_payment(ALICE, topup.payload, "XTR", topup.price, "ch-1")
    with pytest.raises(NotAllowed):
        await engine.refund_topup(ALICE, "ch-1")
    assert (await engine.refund_topup(ADMIN, "nope")).status == RefundStatus.NOT_FOUND
    done = await engine.refund_topup(ADMIN, "ch-1")
    assert done.status == RefundStatus.DONE and done.balance == Decimal("0")
    assert done.topup is not None and done.topup.state == TopUpState.REFUNDED
    assert backend.refunds == [(ALICE, "ch-1")]
    again = await engine.refund_topup(ADMIN, "ch-1")
    assert again.status == RefundStatus.NOT_PAID and backend.refunds == [(ALICE, "ch-1")]
    entries = await engine.services.rt.repos.ledger.for_charge("ch-1")
    assert [(e.charge_entry, e.amount) for e in entries] == [
        ("topup", Decimal("5")), ("refund", Decimal("-5"))
    ]


async def test_refund_refused_while_the_balance_is_spent(h: Harness) -> None:
    backend = FakeStars()
    engine = await _engine(h, backend)
    topup = await engine.open_topup(ALICE, 1)
    await engine.record_topup_payment(ALICE, topup.payload, "XTR", topup.price, "ch-1")
    await engine.admin_adjust(ADMIN, ALICE, Decimal("-0.01"), "spent")
    spent = await engine.refund_topup(ADMIN, "ch-1")
    assert spent.status == RefundStatus.SPENT and spent.balance == Decimal("4.99")
    assert backend.refunds == [] and (await engine.wallet(ALICE)).balance == Decimal("4.99")


async def test_transient_failure_is_retried_and_survives_a_restart(h: Harness) -> None:
    backend = FakeStars()
    backend.results = [RefundResult.RETRY, ConnectionError("down")]
    engine = await _engine(h, backend)
    topup = await engine.open_topup(ALICE, 1)
    await engine.record_topup_payment(ALICE, topup.payload, "XTR", topup.price, "ch-1")
    pending = await engine.refund_topup(ADMIN, "ch-1")
    assert pending.status == RefundStatus.PENDING and pending.balance == Decimal("0")
    assert await engine.retry_topup_refunds() == []  # not due yet
    h.clock.advance(3600)
    assert await engine.retry_topup_refunds() == []  # failed again (connection error)
    await engine.close()
    h.engines.remove(engine)
    engine = await _engine(h, backend)  # a restart: the row is still refunding
    h.clock.advance(3600)
    finished = await engine.retry_topup_refunds()
    assert [o.status for o in finished] == [RefundStatus.DONE]
    assert len(backend.refunds) == 3 and (await engine.wallet(ALICE)).balance == Decimal("0")
    assert await engine.retry_topup_refunds() == []


async def test_a_final_refusal_gives_the_debit_back_once(h: Harness) -> None:
    backend = FakeStars()
    backend.results = [RefundResult.REFUSED]
    engine = await _engine(h, backend)
    topup = await engine.open_topup(ALICE, 1)
    await engine.record_topup_payment(ALICE, topup.payload, "XTR", topup.price, "ch-1")
    refused = await engine.refund_topup(ADMIN, "ch-1")
    assert refused.status == RefundStatus.REFUSED and refused.balance == Decimal("5")
    assert refused.topup is not None and refused.topup.state == TopUpState.REFUND_FAILED
    assert (await engine.refund_topup(ADMIN, "ch-1")).status == RefundStatus.NOT_PAID
    entries = await engine.services.rt.repos.ledger.for_charge("ch-1")
    assert [e.charge_entry for e in entries] == ["topup", "refund", "refund_back"]


async def test_reconcile_credits_missed_payments_once(h: Harness) -> None:
    backend = FakeStars()
    engine = await _engine(h, backend)
    topup = await engine.open_topup(ALICE, 1)
    now = h.clock.now()
    backend.payments = [
        IncomingPayment("ch-lost", ALICE, topup.payload, topup.price, now),
        IncomingPayment("ch-alien", ALICE, "not ours", 77, now),
        IncomingPayment("ch-wrong-user", BOB, topup.payload, topup.price, now),
    ]
    credited = await engine.reconcile_topups()
    assert [o.topup.charge_id for o in credited] == ["ch-lost"]
    assert (await engine.wallet(ALICE)).balance == Decimal("5")
    assert await engine.reconcile_topups() == []
    # the update arriving late changes nothing
    late = await engine.record_topup_payment(ALICE, topup.payload, "XTR", topup.price,
                                             "ch-lost")
    assert not late.credited and (await engine.wallet(ALICE)).balance == Decimal("5")
    assert (await engine.wallet(BOB)).balance == Decimal("0")


def test_settings_refuse_bad_packs_and_prices_above_the_invoice_limit() -> None:
    from pydantic import ValidationError

    from bot.config import Settings

    good = Settings(_env_file=None, topup_packs_usd="2, 7.50", stars_per_usd="100")
    assert good.topup_packs_usd == (Decimal("2"), Decimal("7.50"))
    for packs, rate in (("0", "77"), ("1,x", "77"), ("1,1", "77"), ("200", "77"),
                        ("1", "0"), ("1", "-5")):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, topup_packs_usd=packs, stars_per_usd=rate)
