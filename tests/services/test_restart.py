"""Restarts at several points: a new engine on the same database file, clock and
simulator must deliver every code exactly once and refund every unfinished number
exactly once (engine ledger and simulator ledger agree)."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import pytest

from bot.services.api import ActivationState, Event, EventKind, RefundReason, UpstreamUnavailable
from bot.services.engine import Engine
from bot.services.funding import Ledger
from tests.services.conftest import ADMIN, ALICE, BOB, OP_KEY, Harness


async def restart(h: Harness, eng: Engine, mode: str = "operator", **kw: object) -> Engine:
    """Stop the engine (nothing is flushed on close: the database is the only
    state, so this is what a kill -9 leaves behind) and start a new one."""
    await eng.close()
    h.engines.remove(eng)
    return await h.engine(mode, **kw)  # type: ignore[arg-type]


async def funded(h: Harness, amount: str = "20") -> Engine:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal(amount), "top-up")
    return eng


def delivered_codes(h: Harness) -> Counter[int]:
    return Counter(e.activation.id for e in h.events if e.kind is EventKind.CODE_RECEIVED)


async def test_restart_while_waiting(h: Harness) -> None:
    eng = await funded(h)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="w")
    await h.run_until(eng, t0 + 30)
    eng = await restart(h, eng)
    h.sms(act, "111222")
    await h.run_for(eng, 60)
    assert delivered_codes(h) == {act.id: 1}
    eng = await restart(h, eng)
    await h.run_for(eng, 1500)
    assert delivered_codes(h) == {act.id: 1}
    assert h.sim_refunds() == {}


async def test_code_stored_but_event_undelivered(h: Harness) -> None:
    failures: list[Event] = []

    async def broken(event: Event) -> None:
        failures.append(event)
        raise RuntimeError("telegram is down")

    eng = await h.engine("operator", handler=broken)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="u")
    h.sms(act, "999000")
    await h.run_for(eng, 20)
    assert (await eng.get_activation(ALICE, act.id)).state is ActivationState.COMPLETED
    # Tried (and retried), never acknowledged.
    assert failures and {(e.id, e.kind) for e in failures} == {(1, EventKind.CODE_RECEIVED)}
    assert h.events == []

    eng = await restart(h, eng)
    await h.run_for(eng, 1)
    assert delivered_codes(h) == {act.id: 1}
    assert h.events[0].activation.code == "999000"
    assert h.events[0].id == failures[0].id  # the same outbox event
    eng = await restart(h, eng)
    await h.run_for(eng, 600)
    assert delivered_codes(h) == {act.id: 1}


async def test_delivery_cut_off_by_a_crash_is_redelivered_marked_interrupted(
    h: Harness,
) -> None:
    """The process dies while the handler runs (after it may have sent the code):
    the event is redelivered once, flagged ``interrupted`` so the UI does not push
    the code again; a handler that merely failed is redelivered unflagged."""
    seen: list[Event] = []

    async def dies(event: Event) -> None:
        seen.append(event)
        assert event.sending is not None  # a code push: the handler says when it goes out
        await event.sending()  # the push went out ...
        raise asyncio.CancelledError  # ... and then the kill: no ack, no record

    eng = await h.engine("operator", handler=dies)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="k")
    h.sms(act, "555111")
    with pytest.raises(asyncio.CancelledError):
        await h.run_for(eng, 20)
    assert [e.kind for e in seen] == [EventKind.CODE_RECEIVED] and not seen[0].interrupted

    eng = await restart(h, eng)
    await h.run_for(eng, 1)
    [again] = [e for e in h.events if e.kind is EventKind.CODE_RECEIVED]
    assert again.id == seen[0].id and again.interrupted
    eng = await restart(h, eng)
    await h.run_for(eng, 600)
    assert delivered_codes(h) == {act.id: 1}  # acknowledged: never again


async def test_a_crash_before_the_code_push_went_out_is_not_an_interruption(
    h: Harness,
) -> None:
    """Killed while the push still waited (for the flood limiter: before
    ``Event.sending``): nothing can have reached the user, so the redelivery is not
    flagged and the code is pushed (before, it was flagged and only the order
    message showed the code: the soak's "lost code")."""
    seen: list[Event] = []

    async def dies_waiting(event: Event) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise asyncio.CancelledError  # killed before the request went out
        await h.record(event)

    eng = await h.engine("operator", handler=dies_waiting)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="w")
    h.sms(act, "555333")
    with pytest.raises(asyncio.CancelledError):
        await h.run_for(eng, 20)
    eng = await restart(h, eng)
    await h.run_for(eng, 1)
    [again] = [e for e in h.events if e.kind is EventKind.CODE_RECEIVED]
    assert again.id == seen[0].id and not again.interrupted  # pushed, not just shown
    assert delivered_codes(h) == {act.id: 1}


async def test_handler_failure_is_not_an_interruption(h: Harness) -> None:
    calls: list[Event] = []

    async def fails_once(event: Event) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("telegram said 500")
        await h.record(event)

    eng = await h.engine("operator", handler=fails_once)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="f1")
    h.sms(act, "555222")
    await h.run_for(eng, 120)
    assert [e.interrupted for e in calls] == [False, False]
    assert delivered_codes(h) == {act.id: 1}


async def test_failed_handler_is_retried_in_order(h: Harness) -> None:
    calls: list[tuple[int, EventKind]] = []
    fail = {"left": 2}

    async def flaky(event: Event) -> None:
        calls.append((event.id, event.kind))
        if fail["left"] > 0:
            fail["left"] -= 1
            raise RuntimeError("flaky")
        await h.record(event)

    eng = await h.engine("operator", handler=flaky)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="f")
    await h.run_until(eng, t0 + 181)  # cancel_available emitted, handler fails
    h.sms(act, "123123")
    await h.run_for(eng, 120)
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE, EventKind.CODE_RECEIVED]
    # Never code_received before the earlier cancel_available was acknowledged.
    first_ok = next(i for i, c in enumerate(calls) if c[1] is EventKind.CODE_RECEIVED)
    assert all(kind is EventKind.CANCEL_AVAILABLE for _, kind in calls[:first_ok])


async def test_restart_mid_cancel_refunds_once(h: Harness) -> None:
    """The cancel succeeded upstream but its response was lost; the process then
    died. The new engine retries, DaisySim says ALREADY_CANCELLED: refunded once."""
    eng = await funded(h, "5")
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="mc")
    await h.run_until(eng, t0 + 200)
    h.sim.add_fault("cancel", drop=True)
    result = await eng.cancel(ALICE, act.id)
    assert result.outcome == "pending"
    assert h.sim_refunds() == {act.remote_id: 1}  # it did happen upstream
    assert await eng.inspect.balance(ALICE) == Decimal("4.4")  # not refunded locally yet

    eng = await restart(h, eng)
    await h.run_for(eng, 120)
    final = await eng.get_activation(ALICE, act.id)
    assert final.state is ActivationState.REFUNDED
    assert final.refund_reason is RefundReason.USER_CANCEL
    assert await eng.inspect.balance(ALICE) == Decimal("5")
    refunds = [e for e in await eng.inspect.ledger(act.id) if e.kind == "refund"]
    assert len(refunds) == 1
    assert h.sim_refunds() == {act.remote_id: 1}
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE, EventKind.REFUNDED]


async def test_restart_after_cancel_recorded_but_not_sent(h: Harness) -> None:
    eng = await funded(h, "5")
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="ns")
    await h.run_until(eng, t0 + 200)
    # The process wrote "cancelling" and died before the request left.
    assert await eng.inspect.repos.activations.transition(act.id, ["waiting"], "cancelling")
    eng = await restart(h, eng)
    await h.run_for(eng, 5)
    assert (await eng.get_activation(ALICE, act.id)).state is ActivationState.REFUNDED
    assert h.sim_refunds() == {act.remote_id: 1}
    assert await eng.inspect.balance(ALICE) == Decimal("5")


async def test_restart_with_lost_purchase_response(h: Harness) -> None:
    """Purchase applied, response dropped, /history unreachable: the order stays
    in purchasing (hold kept); after the restart it is reconciled to the number
    DaisySim really assigned, and its code is delivered."""
    eng = await funded(h, "5")
    h.sim.add_fault("purchase", drop=True)
    h.sim.add_fault("history", status=500)
    with pytest.raises(UpstreamUnavailable, match="reconciled"):
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="lost")
    [row] = await eng.inspect.repos.activations.list_open()
    assert row.state == "purchasing"
    assert await eng.inspect.balance(ALICE) == Decimal("4.4")  # held
    [remote] = h.sim.state()["activations"]
    assert remote["account"] == OP_KEY

    eng = await restart(h, eng)
    await h.run_for(eng, 10)
    act = await eng.get_activation(ALICE, row.id)
    assert act.state is ActivationState.WAITING
    assert act.remote_id == remote["id"] and act.phone == remote["phone_number"]
    assert await eng.inspect.balance(ALICE) == Decimal("4.4")  # charged now, hold released
    kinds = [e.kind for e in await eng.inspect.repos.ledger.for_activation(row.id)]
    assert sorted(kinds) == ["charge", "hold", "release"]
    h.sim.deliver_sms(remote["id"], "321321")
    await h.run_for(eng, 60)
    assert delivered_codes(h) == {row.id: 1}


async def test_lost_purchase_reconciled_on_next_buy(h: Harness) -> None:
    eng = await funded(h, "5")
    h.sim.add_fault("purchase", drop=True)
    h.sim.add_fault("history", status=500)
    with pytest.raises(UpstreamUnavailable):
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="lost")
    # The next purchase on the account first reconciles the one in doubt.
    second = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="next")
    acts = {a.id: a for a in await eng.active(ALICE)}
    assert len(acts) == 2 and all(a.state is ActivationState.WAITING for a in acts.values())
    assert len({a.remote_id for a in acts.values()}) == 2
    assert second.remote_id == "32887"
    assert await eng.inspect.balance(ALICE) == Decimal("3.8")


async def test_restart_before_purchase_was_sent(h: Harness) -> None:
    """Row committed in purchasing (hold taken), process died before the request:
    once /history has shown no order for the settle time -> failed, hold released."""
    eng = await funded(h, "5")
    repos = eng.inspect.repos
    account = await repos.accounts.active_operator()
    assert account is not None
    async with repos.db.transaction():
        act_id = await repos.activations.insert_purchasing(
            user_id=ALICE, account_id=account.id, service_code="Signal", service_name="Signal",
            provider_id=None, price=Decimal("0.6"), request_id="never-sent",
            sent_at=h.clock.now(),
        )
        await Ledger(repos, h.clock).hold(ALICE, act_id, Decimal("0.6"))
    assert await eng.inspect.balance(ALICE) == Decimal("4.4")
    eng = await restart(h, eng)
    await h.run_for(eng, 10)
    row = await eng.inspect.repos.activations.get(act_id)
    assert row is not None and row.state == "purchasing"  # no order yet: still in doubt
    await h.run_for(eng, 60)  # past the settle time: nothing was bought
    row = await eng.inspect.repos.activations.get(act_id)
    assert row is not None and row.state == "failed" and row.remote_id is None
    assert await eng.inspect.balance(ALICE) == Decimal("5")
    assert h.kinds(act_id) == [EventKind.FAILED]
    assert h.sim.state()["activations"] == []


async def test_expiry_while_down(h: Harness) -> None:
    eng = await funded(h, "5")
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="down")
    await eng.close()
    h.engines.remove(eng)
    h.clock.advance(3600)  # the bot was down past the give-up time
    eng = await h.engine("operator")
    await h.run_for(eng, 5)
    final = await eng.get_activation(ALICE, act.id)
    assert final.state is ActivationState.REFUNDED
    assert final.refund_reason is RefundReason.EXPIRED
    # Straight to expiry: no stale cancel_available for a number being cancelled.
    assert h.kinds(act.id) == [EventKind.EXPIRED, EventKind.REFUNDED]
    assert await eng.inspect.balance(ALICE) == Decimal("5")
    assert h.sim_refunds() == {act.remote_id: 1}


async def test_state_change_and_event_are_atomic(h: Harness) -> None:
    """If writing the outbox event fails, the state change is rolled back too, and
    the next poll completes the activation (with its event) instead."""
    eng = await funded(h, "5")
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="atomic")
    h.sms(act, "777888")
    original = eng.inspect.repos.events.add
    calls = {"n": 0}

    async def failing_add(*args: object, **kwargs: object) -> int | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    eng.inspect.repos.events.add = failing_add  # type: ignore[method-assign]
    await h.run_for(eng, 15)
    row = await eng.inspect.repos.activations.get(act.id)
    assert row is not None and row.state == "waiting" and row.code is None
    await h.run_for(eng, 60)
    assert (await eng.get_activation(ALICE, act.id)).code == "777888"
    assert delivered_codes(h) == {act.id: 1}


async def test_many_restarts_exactly_once(h: Harness) -> None:
    """Eight numbers for two users; codes for some at various times; a restart
    every 97 s. In the end: each code delivered once, each other number refunded
    once, and the engine's books match DaisySim's."""
    eng = await h.engine("operator")
    for user in (ALICE, BOB):
        await eng.admin_adjust(ADMIN, user, Decimal("10"), "top-up")
    t0 = h.clock.now()
    acts = []
    for i in range(8):
        user = ALICE if i % 2 else BOB
        acts.append(await eng.buy(user, "Signal", None, Decimal("1"), request_id=f"m{i}"))
    code_at = {acts[0].id: 10, acts[3].id: 170, acts[5].id: 400, acts[6].id: 1150}
    cancel_at = {acts[1].id: 300, acts[2].id: 181}
    pending_codes = dict(code_at)
    pending_cancels = dict(cancel_at)
    by_id = {a.id: a for a in acts}
    next_restart = t0 + 97
    while h.clock.now() < t0 + 1500:
        step_to = min(
            [next_restart, t0 + 1500]
            + [t0 + s for s in pending_codes.values()]
            + [t0 + s for s in pending_cancels.values()]
        )
        await h.run_until(eng, step_to)
        now = h.clock.now() - t0
        for aid, at in list(pending_codes.items()):
            if at <= now:
                h.sms(by_id[aid], f"{aid:06d}")
                del pending_codes[aid]
        for aid, at in list(pending_cancels.items()):
            if at <= now:
                user = by_id[aid].user_id
                assert (await eng.cancel(user, aid)).outcome == "refunded"
                del pending_cancels[aid]
        if h.clock.now() >= next_restart:
            eng = await restart(h, eng)
            next_restart += 97
    await h.run_for(eng, 10)

    assert delivered_codes(h) == {aid: 1 for aid in code_at}
    refunded_events = Counter(e.activation.id for e in h.events if e.kind is EventKind.REFUNDED)
    no_code = [a for a in acts if a.id not in code_at]
    assert refunded_events == {a.id: 1 for a in no_code}
    assert h.sim_refunds() == {a.remote_id: 1 for a in no_code}
    for a in acts:
        final = await eng.inspect.repos.activations.get(a.id)
        assert final is not None
        assert final.state == ("completed" if a.id in code_at else "refunded")
        refunds = [e for e in await eng.inspect.ledger(a.id) if e.kind == "refund"]
        assert len(refunds) == (0 if a.id in code_at else 1)
    spent = Decimal("0.6") * len(code_at)
    assert await eng.inspect.balance(ALICE) + await eng.inspect.balance(BOB) == (
        Decimal("20") - spent
    )
    assert h.sim_balance() == Decimal("500") - spent


async def test_bought_but_not_recorded_is_settled_later(h: Harness) -> None:
    """DaisySim sold the number but writing it failed (database error): the order
    stays purchasing and is settled from memory on the next run, never reconciled
    away as "not bought" (this process already knows the id)."""
    eng = await funded(h, "5")
    original = eng.inspect.repos.activations.transition
    calls = {"n": 0}

    async def flaky(*args: object, **kwargs: object) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk I/O error")
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    eng.inspect.repos.activations.transition = flaky  # type: ignore[method-assign]
    with pytest.raises(UpstreamUnavailable):
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="nr")
    [row] = await eng.inspect.repos.activations.list_open()
    assert row.state == "purchasing"
    await h.run_for(eng, 10)
    act = await eng.get_activation(ALICE, row.id)
    assert act.state is ActivationState.WAITING and act.remote_id == "32886"
    assert await eng.inspect.balance(ALICE) == Decimal("4.4")
    h.sms(act, "2468")
    await h.run_for(eng, 30)
    assert delivered_codes(h) == {row.id: 1}
