"""Storage of top-ups (migration 7): the topups table and the ledger's charge ids
(both backends: ``repos`` from tests/storage/conftest.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from storage import IntegrityError
from storage.repositories import Repositories

NOW = 1_767_225_600.0


async def _open(r: Repositories, user: int = 1) -> int:
    await r.users.ensure(user, NOW)
    return await r.topups.create(
        user_id=user, method="stars", currency="XTR", amount=Decimal("5"), price=385,
        now=NOW, expires_at=NOW + 1800,
    )


async def test_a_charge_is_recorded_on_one_row_only(repos: Repositories) -> None:
    first, second = await _open(repos), await _open(repos)
    assert await repos.topups.mark_paid(first, charge_id="ch1", provider_charge_id=None,
                                        paid_price=385, now=NOW)
    # the same row cannot be paid twice (guarded) ...
    assert not await repos.topups.mark_paid(first, charge_id="ch2", provider_charge_id=None,
                                            paid_price=385, now=NOW)
    # ... and no second row can hold the same charge (unique index)
    with pytest.raises(IntegrityError):
        await repos.topups.mark_paid(second, charge_id="ch1", provider_charge_id=None,
                                     paid_price=385, now=NOW)
    assert await repos.topups.create_paid(
        user_id=1, method="stars", currency="XTR", amount=Decimal("1"), price=77, now=NOW,
        charge_id="ch1", provider_charge_id=None,
    ) is None
    row = await repos.topups.by_charge("ch1")
    assert row is not None and row.id == first and row.state == "paid"
    assert await repos.topups.known_charges(["ch1", "nope"]) == {"ch1"}


async def test_ledger_entries_of_a_charge_exist_once_each(repos: Repositories) -> None:
    await repos.users.ensure(1, NOW)
    add = repos.ledger.add
    assert await add(user_id=1, amount=Decimal("5"), kind="credit", now=NOW,
                     charge_id="ch1", charge_entry="topup") is not None
    assert await add(user_id=1, amount=Decimal("5"), kind="credit", now=NOW,
                     charge_id="ch1", charge_entry="topup") is None
    assert await add(user_id=1, amount=Decimal("-5"), kind="debit", now=NOW,
                     charge_id="ch1", charge_entry="refund") is not None
    assert await add(user_id=1, amount=Decimal("-5"), kind="debit", now=NOW,
                     charge_id="ch1", charge_entry="refund") is None
    assert await add(user_id=1, amount=Decimal("5"), kind="credit", now=NOW,
                     charge_id="ch1", charge_entry="refund_back") is not None
    entries = await repos.ledger.for_charge("ch1")
    assert [(e.charge_entry, e.amount) for e in entries] == [
        ("topup", Decimal("5")), ("refund", Decimal("-5")), ("refund_back", Decimal("5"))
    ]
    assert await repos.ledger.balance(1) == Decimal("5")
    with pytest.raises(IntegrityError):  # not a known entry
        await add(user_id=1, amount=Decimal("5"), kind="credit", now=NOW,
                  charge_id="ch2", charge_entry="bonus")


async def test_refund_states_are_guarded(repos: Repositories) -> None:
    topup = await _open(repos)
    assert not await repos.topups.begin_refund(topup, actor_id=9, now=NOW, retry_at=NOW)
    await repos.topups.mark_paid(topup, charge_id="ch1", provider_charge_id=None,
                                 paid_price=385, now=NOW)
    assert await repos.topups.begin_refund(topup, actor_id=9, now=NOW, retry_at=NOW + 30)
    assert not await repos.topups.begin_refund(topup, actor_id=9, now=NOW, retry_at=NOW)
    assert [r.id for r in await repos.topups.refunding(NOW)] == []
    assert [r.id for r in await repos.topups.refunding(NOW + 30)] == [topup]
    await repos.topups.refund_retry(topup, at=NOW + 90, error="timeout")
    row = await repos.topups.get(topup)
    assert row is not None and row.refund_attempts == 1 and row.next_refund_at == NOW + 90
    assert await repos.topups.finish_refund(topup, "refunded", now=NOW)
    assert not await repos.topups.finish_refund(topup, "refund_failed", now=NOW)
    assert await repos.topups.refunding() == []


async def test_an_unpaid_row_cannot_claim_a_paid_state(repos: Repositories) -> None:
    topup = await _open(repos)
    with pytest.raises(IntegrityError):  # paid needs its charge id
        await repos.db.execute("UPDATE topups SET state = 'paid' WHERE id = ?", (topup,))
    assert await repos.topups.claim_notice(topup, NOW)
    assert not await repos.topups.claim_notice(topup, NOW)
