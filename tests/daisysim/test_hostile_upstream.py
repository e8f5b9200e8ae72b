"""A careless or hostile upstream, through the client against the simulator
(real HTTP on 127.0.0.1): absurd amounts (issue 9 item 3) and a slow-loris body
(issue 10 item 1)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from bot.daisysim import APITimeoutError, MalformedResponse, PurchaseOutcomeUnknown
from bot.daisysim.wire import _SendProbe
from tests.daisysim.conftest import SimEnv
from tests.daisysim.helpers import run_virtual

ABSURD = [Decimal("1E+30"), Decimal(0), Decimal(-5)]


async def test_absurd_catalogue_entries_are_left_out_and_logged_once(
    env: SimEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.daisysim")
    env.sim.add_fault("apps", count=3, patch={
        "code=Signal/price": Decimal(-3),
        "code=Telegram/price": Decimal("1E+30"),
        "code=sb_tg/providers/provider_id=2266/price": Decimal(0),
    })
    for _ in range(3):
        apps = {a.code: a for a in await env.client.apps("USA")}
        assert "Signal" not in apps and "Telegram" not in apps
        assert [p.provider_id for p in apps["sb_tg"].providers] == ["3109"]
        assert apps["sb_tg"].price == Decimal("0.6")  # the kept pool's, not the bad one's
        assert apps["WhatsApp"].price == Decimal("1.85")
    left_out = [r for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 3  # one per entry, not one per fetch


@pytest.mark.parametrize("amount", ABSURD, ids=str)
async def test_absurd_amount_charged_is_reconciled_through_history(
    env: SimEnv, amount: Decimal
) -> None:
    env.sim.add_fault("purchase", patch={"amount_charged": amount})
    p = await run_virtual(env.clock, env.client.purchase("USA", "Signal", app_name="Signal"))
    assert p.reconciled and p.amount_charged == Decimal("0.6")
    assert p.activation_id == env.sim.state()["activations"][0]["id"]
    assert len(env.sim.state()["activations"]) == 1  # never bought twice


async def test_absurd_answer_without_order_in_history_is_unknown_not_failed(
    env: SimEnv,
) -> None:
    """The server answered 2xx (it sold something): an empty /history proves nothing."""
    env.sim.add_fault("purchase", patch={"amount_charged": Decimal("1E+30")})
    env.sim.add_fault("history", patch={"orders": []})
    with pytest.raises(PurchaseOutcomeUnknown):
        await run_virtual(env.clock, env.client.purchase("USA", "Signal", app_name="Signal"))
    found = await env.client.reconcile_purchase("Signal", env.clock.now())
    assert found is not None and found.amount_charged == Decimal("0.6")


async def test_history_with_absurd_amount_still_reconciles(env: SimEnv) -> None:
    env.sim.add_fault("purchase", patch={"amount_charged": Decimal(-5)})
    env.sim.add_fault("history", patch={"orders/0/amount_charged": Decimal("1E+30")})
    p = await run_virtual(env.clock, env.client.purchase("USA", "Signal", app_name="Signal"))
    assert p.reconciled and p.amount_charged is None  # the caller uses the confirmed price


@pytest.mark.parametrize("endpoint", ["balance", "cancel"])
async def test_absurd_balances_and_refunds_are_malformed(env: SimEnv, endpoint: str) -> None:
    if endpoint == "balance":
        env.sim.add_fault("balance", patch={"balance": Decimal("1E+30")})
        with pytest.raises(MalformedResponse):
            await env.client.balance()
        return
    p = await env.client.purchase("USA", "Signal", app_name="Signal")
    env.clock.advance(200)
    env.sim.add_fault("cancel", patch={"refund": Decimal(-5)})
    with pytest.raises(MalformedResponse):
        await env.client.cancel(p.activation_id)


async def test_trickled_body_hits_the_total_deadline(env: SimEnv) -> None:
    """Headers at once, then one byte every 0.2 s: each read comes well within
    httpx's per-read timeout, so only a total deadline ends the call. The body
    would take tens of seconds; the deadline is 0.5 s."""
    client = env.new_client(timeout=0.5, max_attempts=1)
    try:
        await client.balance()  # a normal call first: the transport traces
        env.sim.add_fault("check-all", trickle=0.2)
        with pytest.raises(APITimeoutError) as err:
            await client.check_all(["32886"])
        assert err.value.request_sent  # the request was read by the server
        assert env.sim.stats.count(next(iter(env.sim.core.accounts)), "check-all") == 1
        assert await client.balance()  # the client is usable afterwards
    finally:
        await client.aclose()


async def test_trickled_purchase_is_reconciled(env: SimEnv) -> None:
    """A purchase whose answer trickles: bought upstream, the deadline passes, the
    order is found in /history — exactly one number, not "nothing was bought"."""
    client = env.new_client(timeout=0.5, max_attempts=1)
    try:
        env.sim.add_fault("purchase", trickle=0.2)
        p = await run_virtual(env.clock, client.purchase("USA", "Signal", app_name="Signal"))
        assert p.reconciled
        assert [a["id"] for a in env.sim.state()["activations"]] == [p.activation_id]
    finally:
        await client.aclose()


async def test_send_probe_tells_unsent_requests_apart() -> None:
    class Pool:
        traced = False

    class Owner:
        pool = Pool()

    owner = Owner()
    unknown = _SendProbe(owner)  # type: ignore[arg-type]
    assert unknown.maybe_sent()  # no trace from this transport: maybe sent
    await unknown.trace("connection.connect_tcp.started", {})
    assert not unknown.maybe_sent()  # traced, still connecting: not sent
    await unknown.trace("http11.send_request_headers.started", {})
    assert unknown.maybe_sent()
    waiting = _SendProbe(owner)  # type: ignore[arg-type]
    assert not waiting.maybe_sent()  # waiting for the pool on a tracing transport
