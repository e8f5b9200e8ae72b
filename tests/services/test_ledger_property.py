"""Operator ledger property test: random credits, debits, holds, settlements,
releases and refunds. The balance is always exact, never negative, equals
``credits − debits − open holds − charges + refunds``, and no activation is ever
refunded twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import VirtualClock
from bot.services.api import InsufficientFunds
from bot.services.funding import Ledger
from storage.db import Database
from storage.repositories import Repositories

USERS = (1, 2)
amounts = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("25"), places=4)

op = st.one_of(
    st.tuples(st.just("credit"), st.sampled_from(USERS), amounts),
    st.tuples(st.just("debit"), st.sampled_from(USERS), amounts),
    st.tuples(st.just("buy"), st.sampled_from(USERS), amounts),
    # settle / release / refund pick an activation by index (modulo the count)
    st.tuples(st.just("settle"), st.integers(0, 50), amounts),
    st.tuples(st.just("release"), st.integers(0, 50), st.just(Decimal(0))),
    st.tuples(st.just("refund"), st.integers(0, 50), st.just(Decimal(0))),
)


@dataclass
class ActModel:
    user: int
    hold: Decimal
    state: str = "open"  # open | settled | released
    charged: Decimal = Decimal(0)
    refunded: bool = False


@dataclass
class Model:
    balance: dict[int, Decimal] = field(default_factory=lambda: dict.fromkeys(USERS, Decimal(0)))
    credits: dict[int, Decimal] = field(default_factory=lambda: dict.fromkeys(USERS, Decimal(0)))
    debits: dict[int, Decimal] = field(default_factory=lambda: dict.fromkeys(USERS, Decimal(0)))
    charges: dict[int, Decimal] = field(default_factory=lambda: dict.fromkeys(USERS, Decimal(0)))
    refunds: dict[int, Decimal] = field(default_factory=lambda: dict.fromkeys(USERS, Decimal(0)))
    acts: dict[int, ActModel] = field(default_factory=dict)


async def scenario(ops: list[tuple[str, int, Decimal]]) -> None:
    clock = VirtualClock()
    db = await Database.open(":memory:")
    try:
        repos = Repositories(db)
        wallets = Ledger(repos, clock)
        for user in USERS:
            await repos.users.ensure(user, clock.now())
        account = await repos.accounts.insert(
            kind="operator", owner_user_id=None, key_hash="h", key_encrypted=None,
            key_masked="m", email=None, now=clock.now(),
        )
        model = Model()
        order: list[int] = []
        for n, (kind, who, amount) in enumerate(ops):
            if kind == "credit":
                await wallets.credit(who, amount, actor_id=9, note="c")
                model.balance[who] += amount
                model.credits[who] += amount
            elif kind == "debit":
                try:
                    await wallets.debit(who, amount, actor_id=9, note="d")
                except InsufficientFunds:
                    assert model.balance[who] < amount
                else:
                    model.balance[who] -= amount
                    model.debits[who] += amount
            elif kind == "buy":
                try:
                    async with db.transaction():
                        act = await repos.activations.insert_purchasing(
                            user_id=who, account_id=account, service_code="s",
                            service_name="S", provider_id=None, price=amount,
                            request_id=f"r{n}", sent_at=clock.now(),
                        )
                        await wallets.hold(who, act, amount)
                except InsufficientFunds:
                    assert model.balance[who] < amount
                    assert await repos.activations.by_request_id(f"r{n}") is None  # rolled back
                else:
                    model.balance[who] -= amount
                    model.acts[act] = ActModel(who, amount)
                    order.append(act)
            elif order:
                act = order[who % len(order)]
                m = model.acts[act]
                user = m.user
                if kind == "settle":
                    got = await wallets.settle(user, act, amount)
                    if m.state == "open":
                        expected = min(amount, m.hold)
                        assert got == expected
                        model.balance[user] += m.hold - expected
                        model.charges[user] += expected
                        m.state, m.charged = "settled", expected
                    elif m.state == "settled":
                        assert got == m.charged  # idempotent
                    else:
                        assert got == 0  # released as not bought: never charged after
                elif kind == "release":
                    got = await wallets.release(user, act)
                    if m.state == "open":
                        assert got == m.hold
                        model.balance[user] += m.hold
                        m.state = "released"
                    else:
                        assert got == 0
                elif kind == "refund":
                    got = await wallets.refund(user, act)
                    if m.state == "settled" and not m.refunded and m.charged > 0:
                        assert got == m.charged
                        model.balance[user] += m.charged
                        model.refunds[user] += m.charged
                        m.refunded = True
                    else:
                        assert got == 0
            for user in USERS:
                balance = await wallets.balance(user)
                assert balance == model.balance[user]
                assert balance >= 0
        # Books: balance = credits - debits - open holds - charges + refunds.
        for user in USERS:
            open_holds = sum(
                (a.hold for a in model.acts.values() if a.user == user and a.state == "open"),
                Decimal(0),
            )
            assert await wallets.balance(user) == (
                model.credits[user] - model.debits[user] - open_holds
                - model.charges[user] + model.refunds[user]
            )
        entries = await repos.ledger.all()
        refunds = Counter(e.activation_id for e in entries if e.kind == "refund")
        assert all(count == 1 for count in refunds.values())
        assert all(e.amount == e.amount.quantize(Decimal("0.0001")) for e in entries)
    finally:
        await db.close()


@settings(
    max_examples=40,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(op, min_size=1, max_size=30))
def test_ledger_invariants(ops: list[tuple[str, int, Decimal]]) -> None:
    asyncio.run(scenario(ops))
