"""Exactly once across processes: TWO database objects on ONE database (two
connections: what two bot processes are) race the same guarded writes with
``asyncio.gather``, many rounds each. Exactly one wins every time, the ledger sums
stay exact, and nothing deadlocks (a round that hangs fails on a timeout; one that
deadlocks fails on PostgreSQL's deadlock error).

What keeps each race safe (also said where the SQL lives):

* a guarded ``UPDATE … WHERE state IN (…)`` / ``… IS NULL``: PostgreSQL locks the row
  and re-checks the WHERE on the newest version (READ COMMITTED), so the loser
  changes 0 rows -- the same on SQLite, where writers are serialized;
* UNIQUE constraints (``ON CONFLICT DO NOTHING`` / DuplicateError): one row, ever;
* read-then-write inside ``db.transaction()`` (a hold checks the balance first, a
  refund reads the charge): the per-transaction write lock (``BEGIN`` +
  ``pg_advisory_xact_lock``, storage/pg.py; ``BEGIN IMMEDIATE`` on SQLite)
  serializes write transactions of all processes, and each statement after it sees
  everything committed before;
* the ``ledger_no_refund_after_code`` trigger reads the activation ``FOR SHARE``,
  so it cannot pass on a state another transaction is changing.

Run on both backends (``[sqlite]``: two connections to one file).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from itertools import count
from typing import TypeVar

import pytest
import pytest_asyncio

from bot.clock import VirtualClock
from bot.domain.activation import ActivationState, Step
from bot.services.api import InsufficientFunds
from bot.services.funding import Ledger
from bot.services.outcomes import move
from storage import open_database
from storage.base import DuplicateError
from storage.quotes import QuoteRepo
from storage.repositories import Repositories

S = ActivationState
NOW = 1_767_225_600.0
ROUNDS = 25
ROUND_TIMEOUT = 30.0
_T = TypeVar("_T")


class Process:
    """One "bot process": its own connection, repositories and wallet service."""

    def __init__(self, repos: Repositories, clock: VirtualClock) -> None:
        self.repos = repos
        self.db = repos.db
        self.ledger = Ledger(repos, clock)
        self.quotes = QuoteRepo(repos.db)


@pytest_asyncio.fixture
async def pair(db_target: str) -> AsyncIterator[tuple[Process, Process]]:
    clock = VirtualClock(NOW)
    first = await open_database(db_target)
    second = await open_database(db_target)  # migrates nothing: already done
    try:
        yield Process(Repositories(first), clock), Process(Repositories(second), clock)
    finally:
        await first.close()
        await second.close()


async def race(*calls: Awaitable[_T]) -> list[_T | BaseException]:
    """Start every call at once (each on its own connection); their results or errors."""
    gate = asyncio.Event()

    async def run(call: Awaitable[_T]) -> _T:
        await gate.wait()
        return await call

    tasks = [asyncio.ensure_future(run(c)) for c in calls]
    await asyncio.sleep(0)
    gate.set()
    done: list[_T | BaseException] = await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), ROUND_TIMEOUT
    )
    return done


_ids = count(1)


async def _setup(p: Process, *, credit: str | None = "10") -> tuple[int, int]:
    """A user (with ``credit`` on the wallet) and the operator's account."""
    user = 1000 + next(_ids)
    await p.repos.users.ensure(user, NOW)
    if credit is not None:
        await p.ledger.credit(user, Decimal(credit), actor_id=None)
    account = await p.repos.accounts.active_operator()
    account_id = account.id if account is not None else await p.repos.accounts.insert(
        kind="operator", owner_user_id=None, key_hash="op", key_encrypted=None,
        key_masked="op…", email=None, now=NOW,
    )
    return user, account_id


async def _bought(p: Process, user: int, account: int, price: str = "1.00",
                  state: S = S.WAITING) -> int:
    """An activation bought and settled (hold, charge, release), in ``state``."""
    n = next(_ids)
    act = await p.repos.activations.insert_purchasing(
        user_id=user, account_id=account, service_code="sb_wa", service_name="WhatsApp",
        provider_id=None, price=Decimal(price), request_id=f"req-{n}", sent_at=NOW,
    )
    await p.ledger.hold(user, act, Decimal(price))
    assert await move(p.repos, act, Step.BOUGHT, remote_id=f"remote-{n}", cost=price)
    await p.ledger.settle(user, act, Decimal(price))
    if state is S.CANCELLING:
        assert await move(p.repos, act, Step.CANCEL)
    elif state is S.EXPIRED:
        assert await move(p.repos, act, Step.EXPIRE)
    return act


async def settled(*calls: Awaitable[_T]) -> list[_T]:
    """:func:`race`, where no call may fail."""
    results = await race(*calls)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors
    return [r for r in results if not isinstance(r, BaseException)]


# --------------------------------------------------------------------------- the races


async def test_the_same_refund_by_both(pair: tuple[Process, Process]) -> None:
    """Both processes handle "cancel went through" for the same number (the old
    leader's last poll and the new leader's first): one refund, credited once."""
    a, b = pair
    user, account = await _setup(a)

    async def refunded(p: Process, act: int) -> bool:
        # What Outcomes.refunded writes, in one transaction.
        async with p.db.transaction():
            row = await p.repos.activations.get(act)
            if row is None or row.state is not S.CANCELLING:
                return False
            if not await move(p.repos, act, Step.REFUND, only_from=S.CANCELLING,
                              refund_reason="user_cancel", finished_at=NOW):
                return False
            assert await p.ledger.refund(user, act) == Decimal("1.00")
            await p.repos.events.add(act, "refunded", "{}", NOW)
            return True

    for _ in range(ROUNDS):
        act = await _bought(a, user, account, state=S.CANCELLING)
        results = await settled(refunded(a, act), refunded(b, act))
        assert sorted(results) == [False, True]
        kinds = [e.kind for e in await a.repos.ledger.for_activation(act)]
        assert sorted(kinds) == ["charge", "hold", "refund", "release"]
        assert [e.kind for e in await b.repos.events.for_activation(act)] == ["refunded"]
        # The wallet service itself refunds at most once, whoever calls it.
        again = await settled(a.ledger.refund(user, act), b.ledger.refund(user, act))
        assert again == [Decimal(0), Decimal(0)]
    assert await a.repos.ledger.balance(user) == Decimal("10")
    assert await b.repos.ledger.balance(user) == Decimal("10")


async def test_completed_against_refunded(pair: tuple[Process, Process]) -> None:
    """The code arrives in one process while the other refunds the cancelled
    number: exactly one outcome; a completed number is never refunded (and a
    refund written anyway is refused by the database)."""
    a, b = pair
    user, account = await _setup(a, credit=str(ROUNDS))
    completed = refunded = 0

    async def complete(p: Process, act: int) -> bool:
        async with p.db.transaction():
            done = await move(p.repos, act, Step.CODE, code="123456", finished_at=NOW)
            if done:
                await p.repos.events.add(act, "code_received", "{}", NOW)
            return done

    async def refund(p: Process, act: int) -> bool:
        async with p.db.transaction():
            done = await move(p.repos, act, Step.REFUND, only_from=S.CANCELLING,
                              refund_reason="user_cancel", finished_at=NOW)
            if done:
                await p.ledger.refund(user, act)
                await p.repos.events.add(act, "refunded", "{}", NOW)
            return done

    for n in range(ROUNDS):
        act = await _bought(a, user, account, state=S.CANCELLING)
        first, second = (a, b) if n % 2 else (b, a)
        results = await settled(complete(first, act), refund(second, act))
        assert sorted(results) == [False, True]
        row = await a.repos.activations.get(act)
        assert row is not None
        kinds = sorted(e.kind for e in await b.repos.ledger.for_activation(act))
        events = [e.kind for e in await b.repos.events.for_activation(act)]
        if row.state is S.COMPLETED:
            completed += 1
            assert kinds == ["charge", "hold", "release"] and events == ["code_received"]
            with pytest.raises(Exception, match="cannot be refunded"):
                await b.repos.ledger.add(user_id=user, amount=Decimal("1.00"), kind="refund",
                                         activation_id=act, now=NOW)
        else:
            refunded += 1
            assert row.state is S.REFUNDED
            assert kinds == ["charge", "hold", "refund", "release"] and events == ["refunded"]
    assert completed + refunded == ROUNDS
    assert await a.repos.ledger.balance(user) == Decimal(ROUNDS) - completed * Decimal("1.00")


async def test_a_refund_row_while_the_completion_is_open(pair: tuple[Process, Process]) -> None:
    """The trigger's guard across connections: a bare refund row written while the
    other connection's transaction has completed the number but not committed yet.
    It waits for that transaction and is refused (on PostgreSQL because the trigger
    reads the activation FOR SHARE: a plain read would see the old committed
    'cancelling' and let the refund in)."""
    a, b = pair
    user, account = await _setup(a, credit=str(ROUNDS))

    async def complete(act: int, updated: asyncio.Event) -> bool:
        async with a.db.transaction():
            done = await move(a.repos, act, Step.CODE, code="1", finished_at=NOW)
            updated.set()
            await asyncio.sleep(0.02)  # the refund is on its way meanwhile
            return done

    async def refund(act: int, updated: asyncio.Event) -> int | None:
        await updated.wait()
        return await b.repos.ledger.add(user_id=user, amount=Decimal("1.00"), kind="refund",
                                        activation_id=act, now=NOW)

    for _ in range(ROUNDS):
        act = await _bought(a, user, account, state=S.CANCELLING)
        updated = asyncio.Event()
        done, written = await race(complete(act, updated),
                                   refund(act, updated))
        assert done is True
        assert isinstance(written, Exception) and "cannot be refunded" in str(written), written
        row = await b.repos.activations.get(act)
        assert row is not None and row.state is S.COMPLETED
        assert "refund" not in [e.kind for e in await a.repos.ledger.for_activation(act)]
    assert await a.repos.ledger.balance(user) == Decimal(ROUNDS) - ROUNDS * Decimal("1.00")


async def test_the_same_charge_credited_twice(pair: tuple[Process, Process]) -> None:
    """One Stars payment reported to both processes (the update and the
    reconciliation): the top-up is paid once and credited once."""
    a, b = pair
    user, _ = await _setup(a, credit=None)

    async def record(p: Process, topup: int, charge: str) -> bool:
        # The core of TopUps.record_payment, in one transaction.
        async with p.db.transaction():
            if not await p.repos.topups.mark_paid(topup, charge_id=charge,
                                                  provider_charge_id=None, paid_price=100,
                                                  now=NOW):
                return False
            written = await p.repos.ledger.add(
                user_id=user, amount=Decimal("1.25"), kind="credit", now=NOW,
                note="top-up", charge_id=charge, charge_entry="topup",
            )
            return written is not None

    for n in range(ROUNDS):
        topup = await a.repos.topups.create(
            user_id=user, method="stars", currency="XTR", amount=Decimal("1.25"), price=100,
            now=NOW, expires_at=NOW + 60,
        )
        charge = f"charge-{n}"
        results = await settled(record(a, topup, charge), record(b, topup, charge))
        assert sorted(results) == [False, True]
        # The bare ledger write is once-only too, and so is the user's notice.
        again = await settled(
            a.repos.ledger.add(user_id=user, amount=Decimal("1.25"), kind="credit",
                                       now=NOW, charge_id=charge, charge_entry="topup"),
            b.repos.ledger.add(user_id=user, amount=Decimal("1.25"), kind="credit",
                                       now=NOW, charge_id=charge, charge_entry="topup"),
        )
        assert again == [None, None]
        notices = await settled(a.repos.topups.claim_notice(topup, NOW),
                             b.repos.topups.claim_notice(topup, NOW))
        assert sorted(notices) == [False, True]
        assert [e.charge_entry for e in await b.repos.ledger.for_charge(charge)] == ["topup"]
    assert await a.repos.ledger.balance(user) == Decimal("1.25") * ROUNDS


async def test_the_same_quote_consumed_twice(pair: tuple[Process, Process]) -> None:
    """Confirm pressed twice, each press handled by a different process (two
    request ids): one purchase, the other rolled back with nothing written."""
    a, b = pair
    user, account = await _setup(a, credit="100")

    async def buy(p: Process, quote: int, request: str) -> int | None:
        # The durable intent of Purchases.buy: activation, quote consumed, hold.
        class Duplicate(Exception):
            pass

        try:
            async with p.db.transaction():
                act = await p.repos.activations.insert_purchasing(
                    user_id=user, account_id=account, service_code="sb_wa",
                    service_name="WhatsApp", provider_id=None, price=Decimal("0.75"),
                    request_id=request, sent_at=NOW,
                )
                if not await p.quotes.consume(quote, act, NOW):
                    raise Duplicate
                await p.ledger.hold(user, act, Decimal("0.75"))
                return act
        except Duplicate:
            return None

    for n in range(ROUNDS):
        quote = await a.quotes.insert(
            user_id=user, service_code="sb_wa", provider_id=None, pool=None,
            price=Decimal("0.75"), now=NOW, expires_at=NOW + 60,
        )
        results = await settled(buy(a, quote, f"q{n}-a"), buy(b, quote, f"q{n}-b"))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        row = await b.quotes.get(quote)
        assert row is not None and row.activation_id == winners[0]
        # The loser's activation was rolled back with its transaction.
        assert await a.repos.activations.by_request_id(
            f"q{n}-b" if results[0] is not None else f"q{n}-a"
        ) is None
    assert await a.repos.ledger.balance(user) == Decimal("100") - Decimal("0.75") * ROUNDS


async def test_the_same_request_id_inserted_twice(pair: tuple[Process, Process]) -> None:
    a, b = pair
    user, account = await _setup(a, credit=None)

    async def insert(p: Process, request: str) -> int:
        return await p.repos.activations.insert_purchasing(
            user_id=user, account_id=account, service_code="sb_wa", service_name="WhatsApp",
            provider_id=None, price=Decimal("1.00"), request_id=request, sent_at=NOW,
        )

    for n in range(ROUNDS):
        request = f"same-{n}"
        results = await race(insert(a, request), insert(b, request))
        ids = [r for r in results if isinstance(r, int)]
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(ids) == 1 and len(errors) == 1
        assert isinstance(errors[0], DuplicateError), errors
        row = await b.repos.activations.by_request_id(request)
        assert row is not None and row.id == ids[0]


async def test_the_same_event_claimed_for_delivery(pair: tuple[Process, Process]) -> None:
    """An event written by both (one row), counted as dispatched by both (no lost
    update), and delivered once."""
    a, b = pair
    user, account = await _setup(a, credit=str(ROUNDS))
    for _ in range(ROUNDS):
        act = await _bought(a, user, account)
        written = await settled(a.repos.events.add(act, "code_received", "{}", NOW),
                             b.repos.events.add(act, "code_received", "{}", NOW))
        ids = [r for r in written if r is not None]
        assert len(ids) == 1
        event = ids[0]
        await settled(a.repos.events.mark_dispatching(event),
                   b.repos.events.mark_dispatching(event))
        delivered = await settled(a.repos.events.mark_delivered(event, NOW),
                               b.repos.events.mark_delivered(event, NOW))
        assert sorted(delivered) == [False, True]
        row = await a.repos.events.get(event)
        assert row is not None and row.dispatches == 2 and row.delivered_at == NOW
        assert await b.repos.events.pending() == []


async def test_a_hold_racing_a_hold_on_the_last_balance(pair: tuple[Process, Process]) -> None:
    """Two purchases in two processes, money for one: exactly one hold, the
    wallet never below zero (the balance check and the hold are one transaction;
    the write lock serializes the two)."""
    a, b = pair
    for _ in range(ROUNDS):
        user, account = await _setup(a, credit="1.00")
        acts = []
        for p in (a, b):
            acts.append(await p.repos.activations.insert_purchasing(
                user_id=user, account_id=account, service_code="sb_wa",
                service_name="WhatsApp", provider_id=None, price=Decimal("1.00"),
                request_id=f"hold-{next(_ids)}", sent_at=NOW,
            ))
        results = await race(a.ledger.hold(user, acts[0], Decimal("1.00")),
                             b.ledger.hold(user, acts[1], Decimal("1.00")))
        refused = [r for r in results if isinstance(r, InsufficientFunds)]
        assert len(refused) == 1 and results.count(None) == 1, results
        assert await a.repos.ledger.balance(user) == Decimal(0)
        holds = [e for act in acts for e in await b.repos.ledger.for_activation(act)]
        assert [e.kind for e in holds] == ["hold"]


async def test_the_same_alert_fired_by_both(pair: tuple[Process, Process]) -> None:
    a, b = pair
    for n in range(ROUNDS):
        kind = f"low-{n}"
        fired = await settled(a.repos.alerts.fire(kind, Decimal("1.5"), NOW),
                           b.repos.alerts.fire(kind, Decimal("1.5"), NOW))
        assert sorted(fired) == [False, True]
        rearmed = await settled(a.repos.alerts.rearm(kind, None, NOW),
                             b.repos.alerts.rearm(kind, None, NOW))
        assert sorted(rearmed) == [False, True]


async def test_broadcast_recipients_claimed_by_both(pair: tuple[Process, Process]) -> None:
    """Two processes claim batches of the same broadcast: every recipient is
    claimed (and so sent to) exactly once."""
    a, b = pair
    for user in range(1, 41):
        await a.repos.users.ensure(user, NOW)
    broadcast = await a.repos.broadcasts.create(1, "all", "hi", 1, NOW)
    assert await a.repos.broadcasts.start(broadcast, 5, NOW, None)
    claimed: list[int] = []
    for _ in range(ROUNDS):
        batches = await settled(a.repos.broadcasts.claim(broadcast, 3, NOW),
                             b.repos.broadcasts.claim(broadcast, 3, NOW))
        for batch in batches:
            assert isinstance(batch, list)
            claimed.extend(batch)
    assert sorted(claimed) == list(range(1, 41))  # each once, none twice
    assert await a.repos.broadcasts.counts(broadcast) == {"sending": 40}
