"""The scheduling contract (run_due / next_due / set_waker), event delivery
without a subscriber, and polling/cancelling through outages and budgets."""

from __future__ import annotations

from decimal import Decimal

from bot.services.api import ActivationState, Event, EventKind
from bot.services.engine import Engine
from tests.services.conftest import ADMIN, ALICE, OP_KEY, Harness


async def funded(h: Harness, **kw: object) -> Engine:
    eng = await h.engine("operator", **kw)  # type: ignore[arg-type]
    await eng.admin_adjust(ADMIN, ALICE, Decimal("50"), "top-up")
    return eng


async def test_waker_reports_new_earlier_work(h: Harness) -> None:
    eng = await funded(h, poll_adaptive=False)  # the 15-s cadence only: exact times
    await eng.run_due()
    assert eng.next_due() is None  # idle
    woken: list[float] = []
    eng.set_waker(woken.append)
    assert woken == []
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="w")
    assert woken == [t0 + 15]  # first poll; the unlock at +180 is later
    assert eng.next_due() == t0 + 15
    assert await eng.run_due() == t0 + 15  # nothing due yet: tells when
    h.clock.set(t0 + 15)
    nxt = await eng.run_due()
    assert nxt == t0 + 30
    await h.run_until(eng, t0 + 200)
    woken.clear()
    h.sim.add_fault("cancel", status=500)
    result = await eng.cancel(ALICE, act.id)
    assert result.outcome == "pending"
    assert woken and woken[-1] <= h.clock.now() + 10  # the retry was reported
    await h.run_for(eng, 30)
    assert (await eng.get_activation(ALICE, act.id)).state is ActivationState.REFUNDED
    # An event created by a user call is reported for immediate dispatch.
    woken.clear()
    act2 = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="w2")
    await h.run_until(eng, h.clock.now() + 181)
    woken.clear()
    h.sms(act2, "5")
    assert (await eng.cancel(ALICE, act2.id)).outcome == "code_received"
    assert woken == [h.clock.now()]


async def test_events_wait_for_a_subscriber(h: Harness) -> None:
    eng = await h.engine("operator", subscribe=False)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="s")
    h.sms(act, "1")
    await h.run_for(eng, 20)
    assert h.events == []
    eng.subscribe(h.record)
    assert eng.next_due() == h.clock.now()
    await eng.run_due()
    assert h.kinds(act.id) == [EventKind.CODE_RECEIVED]
    await h.run_for(eng, 60)
    assert h.kinds(act.id) == [EventKind.CODE_RECEIVED]


async def test_handler_may_call_the_engine(h: Harness) -> None:
    seen: list[Event] = []
    holder: dict[str, Engine] = {}

    async def handler(event: Event) -> None:
        eng = holder["eng"]
        seen.append(event)
        await eng.run_due()  # re-entrant call returns at once, no deadlock
        act = await eng.get_activation(event.activation.user_id, event.activation.id)
        assert act.state is ActivationState.COMPLETED

    eng = await h.engine("operator", handler=handler)
    holder["eng"] = eng
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="re")
    h.sms(act, "1")
    await h.run_for(eng, 20)
    assert [e.kind for e in seen] == [EventKind.CODE_RECEIVED]


async def test_polling_survives_outages_and_foreign_429(h: Harness) -> None:
    eng = await funded(h)
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="p")
    h.sim.add_fault("check-all", count=3, status=502)
    await h.run_until(eng, t0 + 40)
    assert h.transport.count("/check-all") >= 2
    outage_checks = len(h.transport.checks)
    h.sim.add_fault("check-all", status=429, code="RATE_LIMITED",
                    message="Too many check requests. Please wait 40s.")
    await h.run_until(eng, t0 + 120)
    h.sms(act, "777")
    await h.run_until(eng, t0 + 400)
    assert (await eng.get_activation(ALICE, act.id)).code == "777"
    assert h.kinds(act.id) == [EventKind.CODE_RECEIVED]  # before the cancel lock ended
    # After the (foreign) 429 the engine waited as told before polling again.
    limited_at, resumed_at = (t for t, _ in h.transport.checks[outage_checks:outage_checks + 2])
    assert resumed_at - limited_at >= 40
    assert h.sim.state()["rate_limited"] == {}  # the simulator never refused us itself


async def test_expiry_cancels_respect_the_cancel_budget(h: Harness) -> None:
    eng = await funded(h, give_up_minutes=5)
    t0 = h.clock.now()
    acts = [
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id=f"e{i}") for i in range(10)
    ]
    await h.run_until(eng, t0 + 299)
    [client] = eng.inspect.clients()
    assert client is not None
    for _ in range(6):  # the key spent 6 cancels elsewhere just now
        assert client.limiter.cancel.try_acquire()
    await h.run_until(eng, t0 + 300)
    states = [(await eng.get_activation(ALICE, a.id)).state for a in acts]
    assert states.count(ActivationState.REFUNDED) == 4
    assert states.count(ActivationState.EXPIRED) == 6
    await h.run_until(eng, t0 + 420)
    for a in acts:
        final = await eng.get_activation(ALICE, a.id)
        assert final.state is ActivationState.REFUNDED
        assert h.kinds(a.id)[-2:] == [EventKind.EXPIRED, EventKind.REFUNDED]
    assert h.sim.state()["rate_limited"] == {}
    assert h.sim_refunds() == {a.remote_id: 1 for a in acts}
    assert await eng.inspect.balance(ALICE) == Decimal("50")
    assert h.sim_balance(OP_KEY) == Decimal("500")


async def test_an_event_behind_one_in_backoff_does_not_wake_the_engine_at_once(
    h: Harness,
) -> None:
    """The code arrives (adaptive polling: a second later) while the activation's
    earlier event waits out a failed handler's backoff: the later one must wait
    for it (order), and the engine's next due time is that backoff, not "now"
    over and over (a busy loop)."""
    fail = {"left": 1}

    async def flaky(event: Event) -> None:
        if fail["left"] > 0:
            fail["left"] -= 1
            raise RuntimeError("flaky")
        await h.record(event)

    eng = await h.engine("operator", handler=flaky)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("5"), "top-up")
    t0 = h.clock.now()
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="b")
    await h.run_until(eng, t0 + 180)  # cancel_available: the handler fails, backoff 5 s
    assert h.kinds(act.id) == []
    h.sms(act, "9")
    await h.run_for(eng, 1.5)  # the code is stored: its event waits behind the first
    assert h.kinds(act.id) == []
    now = h.clock.now()
    nxt = eng.next_due()
    assert nxt is not None and nxt > now
    await h.run_for(eng, 10)
    assert h.kinds(act.id) == [EventKind.CANCEL_AVAILABLE, EventKind.CODE_RECEIVED]
