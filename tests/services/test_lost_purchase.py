"""A purchase the server finishes after the client gave up must not be written off.

Regression: a lost /purchase response followed by one empty /history read used to
be taken as "nothing was bought"; the number then went untracked and the
operator paid for it. Now the purchase stays in doubt and /history is read again
until well past the request timeout.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bot.services.api import ActivationState, UpstreamUnavailable
from tests.services.conftest import ADMIN, ALICE, OP_KEY, Harness


async def test_purchase_finished_after_the_timeout_is_tracked_and_refunded(h: Harness) -> None:
    eng = await h.engine("operator", daisysim_timeout_seconds=0.3)
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    operator_before = h.sim_balance(OP_KEY)
    # The server sits on the request for 1 s of real time, then processes it:
    # the client (0.3 s timeout) has given up long before.
    h.sim.add_fault("purchase", latency=1.0)
    with pytest.raises(UpstreamUnavailable):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    [row] = await eng.inspect.repos.activations.list_all()
    assert row.state == "purchasing"  # in doubt, not "failed"
    for _ in range(100):  # let the server finish (real time)
        if h.sim.state()["activations"]:
            break
        await asyncio.sleep(0.05)
    [sim_act] = h.sim.state()["activations"]

    await h.run_for(eng, 3600)  # reconciled, polled, expired, auto-cancelled

    [act] = (await eng.history(ALICE, "all", 1, 10)).items
    assert act.remote_id == sim_act["id"]
    assert act.state == ActivationState.REFUNDED
    assert h.sim.activation(sim_act["id"]).refunded
    assert h.sim_balance(OP_KEY) == operator_before  # the operator got its money back
    assert await eng.inspect.balance(ALICE) == Decimal("10")  # and so did Alice


async def test_lost_purchase_with_no_order_fails_only_after_the_settle_time(
    h: Harness,
) -> None:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("10"), "top-up")
    # Dropped on the floor before the server did anything: no order will appear.
    h.sim.add_fault("purchase", drop=True)
    h.sim.set_stock("Signal", None, 0)
    with pytest.raises(UpstreamUnavailable):
        await eng.buy(ALICE, "Signal", None, Decimal("0.6"), request_id="r1")
    [row] = await eng.inspect.repos.activations.list_all()
    assert row.state == "purchasing"
    await h.run_for(eng, 30)
    [row] = await eng.inspect.repos.activations.list_all()
    assert row.state == "purchasing"  # still in doubt: 30 s < settle time
    assert await eng.inspect.balance(ALICE) == Decimal("9.4")  # the hold stays
    await h.run_for(eng, 120)
    [row] = await eng.inspect.repos.activations.list_all()
    assert row.state == "failed"
    assert await eng.inspect.balance(ALICE) == Decimal("10")  # hold released once
    assert h.sim.state()["activations"] == []
