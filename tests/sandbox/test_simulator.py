"""The DaisySim simulator over real HTTP on 127.0.0.1, driven by a VirtualClock."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bot.clock import SystemClock, VirtualClock
from bot.sandbox.simulator import ControlError, Simulator, SimulatorServer, start_simulator

SPEC_APPS = [
    {"code": "WhatsApp", "name": "WhatsApp", "price": 1.85, "providers": []},
    {"code": "whatsapp-(us)5", "name": "WhatsApp 2", "price": 0.74, "providers": []},
    {"code": "Signal", "name": "Signal", "price": 0.6, "providers": []},
    {"code": "Telegram", "name": "Telegram", "price": 1.4, "providers": []},
    {"code": "sb_wa", "name": "WhatsApp 3", "price": 1.083, "providers": [
        {"provider_id": "3109", "price": 1.083, "count": 4000},
        {"provider_id": "2266", "price": 1.092, "count": 4296},
        {"provider_id": "3170", "price": 1.381, "count": 1000},
        {"provider_id": "2617", "price": 3.6, "count": 344}]},
    {"code": "sb_tg", "name": "Telegram 2", "price": 0.45, "providers": [
        {"provider_id": "2266", "price": 0.45, "count": 1820},
        {"provider_id": "3109", "price": 0.6, "count": 980}]},
    {"code": "sb_fb", "name": "Facebook", "price": 0.5, "providers": [
        {"provider_id": "3109", "price": 0.5, "count": 2100},
        {"provider_id": "2266", "price": 0.65, "count": 890}]},
]


@dataclass
class Env:
    clock: VirtualClock
    sim: Simulator
    server: SimulatorServer
    c: httpx.AsyncClient  # authenticated as "k1" against base_url
    c2: httpx.AsyncClient  # authenticated as "k2"
    raw: httpx.AsyncClient  # no auth, against server.url (control endpoints)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def buy(self, app: str = "Signal", **extra: Any) -> dict[str, Any]:
        r = await self.c.post("/purchase", json={"country": "USA", "app": app, **extra})
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data


@pytest_asyncio.fixture
async def env() -> AsyncIterator[Env]:
    clock = VirtualClock()
    sim = Simulator(clock, seed=7)
    sim.add_account("k1", "10.0000", "one@example.com")
    sim.add_account("k2", "10.0000", "two@example.com")
    server = await start_simulator(sim)
    async with (
        httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": "Bearer k1"}, timeout=5
        ) as c,
        httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": "Bearer k2"}, timeout=5
        ) as c2,
        httpx.AsyncClient(base_url=server.url, timeout=5) as raw,
    ):
        yield Env(clock, sim, server, c, c2, raw)
    assert sim.invariant_violations() == []
    await server.close()


def err(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["code"] == code, body
    message: str = body["error"]
    return message


def dec(r: httpx.Response) -> Any:
    return json.loads(r.text, parse_float=Decimal)


# ------------------------------------------------------------------ basics
async def test_balance_countries_apps(env: Env) -> None:
    r = await env.c.get("/balance")
    assert r.status_code == 200
    assert r.json() == {
        "success": True,
        "message": "OK",
        "data": {"balance": 10.0, "currency": "USD", "email": "one@example.com"},
    }
    r = await env.c.get("/countries")
    assert r.json()["data"] == {"countries": [{"id": "USA", "name": "USA"}]}
    r = await env.c.get("/apps/USA")
    assert r.status_code == 200 and r.json()["success"] is True
    assert r.json()["data"] == SPEC_APPS
    assert dec(r)["data"][4]["price"] == Decimal("1.083")  # a JSON number, exact via str
    msg = err(await env.c.get("/apps/UK"), 422, "INVALID_COUNTRY")
    assert msg == "Country not supported"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/balance", None),
        ("GET", "/countries", None),
        ("GET", "/apps/USA", None),
        ("POST", "/purchase", {"country": "USA", "app": "Signal"}),
        ("GET", "/check/32886", None),
        ("POST", "/check-all", {"ids": ["32886"]}),
        ("POST", "/cancel/32886", None),
        ("GET", "/history", None),
    ],
)
async def test_auth_and_account_state_on_every_endpoint(
    env: Env, method: str, path: str, body: Any
) -> None:
    url = env.server.base_url + path
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic k1"},
                    {"Authorization": "Bearer"}):
        r = await env.raw.request(method, url, json=body, headers=headers)
        assert err(r, 401, "UNAUTHENTICATED")
    env.sim.update_account("k1", state="suspended")
    err(await env.c.request(method, path, json=body), 403, "ACCOUNT_SUSPENDED")
    env.sim.update_account("k1", state="locked")
    err(await env.c.request(method, path, json=body), 403, "ACCOUNT_LOCKED")
    env.sim.update_account("k1", state="active")
    r = await env.c.request(method, path, json=body)
    assert r.status_code in (200, 404), r.text
    assert env.sim.balance("k1") <= Decimal("10")


async def test_unknown_route_and_wrong_method(env: Env) -> None:
    r = await env.c.get("/nope")
    err(r, 404, "NOT_FOUND")
    r = await env.c.get("/purchase")
    err(r, 405, "METHOD_NOT_ALLOWED")
    r = await env.c.post("/balance")
    err(r, 405, "METHOD_NOT_ALLOWED")


# ---------------------------------------------------------------- purchase
async def test_purchase_cheapest_pool_stock_and_ids(env: Env) -> None:
    r = await env.c.post("/purchase", json={"country": "USA", "app": "sb_wa", "price": 0.01})
    assert r.status_code == 200
    body = dec(r)
    assert body["success"] is True and body["message"] == "Number purchased successfully."
    d = body["data"]
    assert d["activation_id"] == "32886"
    assert re.fullmatch(r"\+1940\d{7}", d["phone_number"])
    assert d["service"] == "WhatsApp 3" and d["country"] == "USA"
    assert d["amount_charged"] == Decimal("1.083")  # the price field was ignored
    assert d["balance_after"] == Decimal("8.917")
    d2 = await env.buy("sb_wa", app_name="WA label", country_name="United States")
    assert d2["activation_id"] == "32887" and d2["phone_number"] != d["phone_number"]
    assert d2["service"] == "WA label" and d2["country"] == "United States"
    apps = (await env.c.get("/apps/USA")).json()["data"]
    assert apps[4]["providers"][0] == {"provider_id": "3109", "price": 1.083, "count": 3998}
    st = env.sim.state()
    assert st["accounts"]["k1"]["balance"] == "7.8340"
    assert [a["pool"] for a in st["activations"]] == ["3109", "3109"]
    assert st["stock"]["sb_wa"]["3109"] == 3998
    assert [e["kind"] for e in st["ledger"]["k1"]] == ["deposit", "charge", "charge"]
    h = (await env.c.get("/history")).json()["data"]["orders"]
    assert h[0]["service"] == "WA label" and h[0]["country"] == "United States"
    # single-provider: provider_id is ignored
    d3 = await env.buy("Signal", provider_id="does-not-exist")
    assert d3["amount_charged"] == 0.6 and d3["service"] == "Signal"


async def test_purchase_validation_and_price_verification(env: Env) -> None:
    for body in ({}, {"country": "USA"}, {"app": "Signal"}, {"country": "", "app": "x"},
                 {"country": 1, "app": "Signal"}):
        err(await env.c.post("/purchase", json=body), 422, "VALIDATION_ERROR")
    r = await env.c.post("/purchase", content=b"not json",
                         headers={"Content-Type": "application/json"})
    err(r, 422, "VALIDATION_ERROR")
    msg = err(await env.c.post("/purchase", json={"country": "UK", "app": "Signal"}), 422,
              "INVALID_COUNTRY")
    assert msg == "Country not supported"
    env.advance(60)  # failed purchases use the 10/60 s budget too
    err(await env.c.post("/purchase", json={"country": "USA", "app": "Nope"}), 422,
        "PRICE_VERIFICATION_FAILED")
    err(await env.c.post("/purchase", json={"country": "USA", "app": "sb_wa",
                                            "provider_id": "9999"}),
        422, "PRICE_VERIFICATION_FAILED")
    env.sim.remove_service("Telegram")
    codes = [a["code"] for a in (await env.c.get("/apps/USA")).json()["data"]]
    assert "Telegram" not in codes
    err(await env.c.post("/purchase", json={"country": "USA", "app": "Telegram"}), 422,
        "PRICE_VERIFICATION_FAILED")
    env.sim.restore_service("Telegram")
    assert (await env.buy("Telegram"))["amount_charged"] == 1.4
    assert env.sim.state()["accounts"]["k1"]["balance"] == "8.6000"


async def test_out_of_stock_pinned_no_fallback(env: Env) -> None:
    env.sim.set_stock("sb_wa", "3109", 0)
    r = await env.c.post("/purchase", json={"country": "USA", "app": "sb_wa",
                                            "provider_id": "3109"})
    msg = err(r, 503, "OUT_OF_STOCK")
    assert msg == "No numbers available right now. Please try again shortly."
    assert env.sim.balance("k1") == Decimal("10.0000") and env.sim.state()["activations"] == []
    apps = (await env.c.get("/apps/USA")).json()["data"]
    assert apps[4]["price"] == 1.092  # cheapest pool with stock
    assert apps[4]["providers"][0] == {"provider_id": "3109", "price": 1.083, "count": 0}
    d = await env.buy("sb_wa")  # omitted → cheapest available pool
    assert d["amount_charged"] == 1.092
    d = await env.buy("sb_wa", provider_id=2617)  # an int provider_id is accepted
    assert d["amount_charged"] == 3.6
    for pid in ("3109", "2266"):
        env.sim.set_stock("sb_tg", pid, 0)
    err(await env.c.post("/purchase", json={"country": "USA", "app": "sb_tg"}), 503,
        "OUT_OF_STOCK")
    env.sim.set_stock("WhatsApp", None, 1)
    await env.buy("WhatsApp")
    err(await env.c.post("/purchase", json={"country": "USA", "app": "WhatsApp"}), 503,
        "OUT_OF_STOCK")
    assert env.sim.state()["stock"]["WhatsApp"] == 0


async def test_insufficient_balance_has_no_effect(env: Env) -> None:
    env.sim.update_account("k1", balance="1.8499")
    r = await env.c.post("/purchase", json={"country": "USA", "app": "WhatsApp"})
    assert err(r, 400, "INSUFFICIENT_BALANCE") == "Insufficient wallet balance."
    assert env.sim.balance("k1") == Decimal("1.8499")
    assert env.sim.state()["activations"] == []
    assert env.sim.state()["stock"]["sb_wa"]["3109"] == 4000
    env.sim.update_account("k1", balance="1.85")
    assert (await env.buy("WhatsApp"))["balance_after"] == 0.0


# ------------------------------------------------------------- rate limits
async def test_purchase_rate_limit(env: Env) -> None:
    for _ in range(10):
        await env.buy("Signal")
    r = await env.c.post("/purchase", json={"country": "USA", "app": "Signal"})
    assert err(r, 429, "RATE_LIMITED") == "Too many purchase attempts. Please wait 60s."
    env.advance(17)
    r = await env.c.post("/purchase", json={"country": "USA", "app": "Signal"})
    assert err(r, 429, "RATE_LIMITED") == "Too many purchase attempts. Please wait 43s."
    assert len(env.sim.state()["activations"]) == 10  # a refused request has no effect
    assert env.sim.balance("k1") == Decimal("4.0000")
    # the other account has its own budget
    r = await env.c2.post("/purchase", json={"country": "USA", "app": "Signal"})
    assert r.status_code == 200
    env.advance(43)
    await env.buy("Signal")
    assert env.sim.stats.rate_limited["k1"] == 2
    assert env.sim.stats.count("k1", "purchase") == 13
    st = env.sim.state()
    assert st["rate_limited"] == {"k1": 2}
    assert st["rate_limited_by_endpoint"]["k1"] == {"purchase": 2}


async def test_check_and_check_all_share_one_budget(env: Env) -> None:
    d = await env.buy()
    aid = d["activation_id"]
    for i in range(60):
        if i % 2:
            r = await env.c.get(f"/check/{aid}")
        else:
            r = await env.c.post("/check-all", json={"ids": [aid, "1"]})
        assert r.status_code == 200, (i, r.text)
    env.advance(5.5)
    r = await env.c.get(f"/check/{aid}")
    assert err(r, 429, "RATE_LIMITED") == "Too many check requests. Please wait 55s."
    r = await env.c.post("/check-all", json={"ids": [aid]})
    assert err(r, 429, "RATE_LIMITED") == "Too many check requests. Please wait 55s."
    env.advance(54.5)
    assert (await env.c.get(f"/check/{aid}")).status_code == 200
    assert env.sim.stats.rate_limited["k1"] == 2


async def test_cancel_rate_limit_and_429_has_no_effect(env: Env) -> None:
    d = await env.buy()
    env.advance(200)
    for _ in range(10):
        err(await env.c.post("/cancel/99999"), 404, "NOT_FOUND")
    env.advance(12)
    r = await env.c.post(f"/cancel/{d['activation_id']}")
    msg = err(r, 429, "RATE_LIMITED")
    assert msg == "Too many cancel attempts. Please wait 48s."
    assert env.sim.balance("k1") == Decimal("9.4000")  # no refund happened
    env.advance(48)
    r = await env.c.post(f"/cancel/{d['activation_id']}")
    assert r.status_code == 200 and r.json()["data"]["refund"] == 0.6


# ------------------------------------------------------------ check + cache
async def test_documented_reading_a_stored_code_bypasses_the_cache(env: Env) -> None:
    """The default (spec §8/§13, the page's literal words): once the code is stored,
    the next call returns it, even while the id's Waiting answer is cached."""
    assert env.sim.core.cache_bound is False
    aid = (await env.buy())["activation_id"]
    other = (await env.buy())["activation_id"]
    phone = env.sim.activation(aid).phone
    for check in (env.c.get(f"/check/{aid}"), env.c.post("/check-all", json={"ids": [other]})):
        r = await check
        assert r.status_code == 200, r.text
    env.advance(5)  # both Waiting answers are cached for 10 more seconds
    assert (await env.c.get(f"/check/{aid}")).json()["data"]["status"] == "Waiting"
    env.sim.deliver_sms(aid, "847261")
    env.sim.deliver_sms(other, "111222")
    r = await env.c.get(f"/check/{aid}")
    assert r.json()["data"] == {"activation_id": aid, "status": "Completed",
                                "code": "847261", "phone_number": phone}
    r = await env.c.post("/check-all", json={"ids": [aid, other]})
    assert [(i["status"], i["code"]) for i in r.json()["data"]] == [
        ("Completed", "847261"), ("Completed", "111222")]
    # Without a code the cache still holds: a Waiting answer is not refreshed.
    third = (await env.buy())["activation_id"]
    await env.c.get(f"/check/{third}")
    assert env.sim.activation(third).cache_until == env.clock.now() + 15.0
    env.advance(14)
    await env.c.get(f"/check/{third}")
    assert env.sim.activation(third).cache_until == env.clock.now() + 1.0


async def until(condition: Callable[[], bool]) -> None:
    import asyncio

    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def test_rtt_spends_simulator_time_on_the_wire() -> None:
    """``rtt``: each API request takes that long of the simulator's clock, half
    before it is handled (the handler sees the later time) and half after."""
    import asyncio

    clock = VirtualClock()
    sim = Simulator(clock, rtt=0.1)
    sim.add_account("k1", "10")
    server = await start_simulator(sim)
    t0 = clock.now()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5,
                                     headers={"Authorization": "Bearer k1"}) as c:
            task = asyncio.ensure_future(c.post("/purchase", json={"country": "USA",
                                                                   "app": "Signal"}))
            await until(lambda: sim.on_wire == 1)
            assert sim.core.activations == {}  # not handled yet: on the way in
            clock.advance(0.05)
            await until(lambda: bool(sim.core.activations) and sim.on_wire == 1)
            [act] = sim.core.activations.values()
            assert act.purchased_at == t0 + 0.05
            assert not task.done()  # the answer is on the way back
            clock.advance(0.05)
            r = await task
            assert r.status_code == 200 and sim.on_wire == 0
    finally:
        await server.close()
    with pytest.raises(ValueError):
        Simulator(clock, rtt=-1)


async def test_waiting_cache_semantics_cache_bound(env: Env) -> None:
    """The cache-bound reading (``cache_bound=True``): a cached Waiting hides a
    stored code until the id's 15-s cache runs out."""
    env.sim.core.cache_bound = True
    aid = (await env.buy())["activation_id"]
    phone = env.sim.activation(aid).phone
    r = await env.c.get(f"/check/{aid}")
    assert r.json() == {"success": True, "message": "OK", "data": {
        "activation_id": aid, "status": "Waiting", "code": None, "phone_number": phone}}
    env.advance(5)
    env.sim.deliver_sms(aid, "847261")
    t0 = env.sim.activation(aid).purchased_at
    for t in (5, 9):  # the SMS has arrived, but the cached Waiting is served
        env.clock.set(t0 + t)
        assert (await env.c.get(f"/check/{aid}")).json()["data"]["status"] == "Waiting"
    env.clock.set(t0 + 14.9)
    assert (await env.c.get(f"/check/{aid}")).json()["data"]["status"] == "Waiting"
    r = await env.c.post("/check-all", json={"ids": [aid]})
    assert r.json()["data"][0]["status"] == "Waiting"  # check-all shares the cache
    env.clock.set(t0 + 15)
    for _ in range(3):
        r = await env.c.get(f"/check/{aid}")
        assert r.json()["data"] == {"activation_id": aid, "status": "Completed",
                                    "code": "847261", "phone_number": phone}
    # a cached Waiting is not refreshed by cached hits; code with no cache → at once
    aid2 = (await env.buy())["activation_id"]
    env.sim.deliver_sms(aid2, "111222")
    r = await env.c.post("/check-all", json={"ids": [aid2]})
    assert r.json()["data"][0] == {"activation_id": aid2, "status": "Completed",
                                   "code": "111222",
                                   "phone_number": env.sim.activation(aid2).phone}
    aid3 = (await env.buy())["activation_id"]
    assert (await env.c.post("/check-all", json={"ids": [aid3]})).json()["data"][0][
        "status"] == "Waiting"
    env.advance(10)
    assert (await env.c.get(f"/check/{aid3}")).json()["data"]["status"] == "Waiting"
    env.advance(5)  # 15 s after the first (uncached) Waiting, not after the cached hit
    env.sim.deliver_sms(aid3, "333444")
    assert (await env.c.get(f"/check/{aid3}")).json()["data"]["code"] == "333444"


async def test_check_all_items_and_limits(env: Env) -> None:
    a = (await env.buy())["activation_id"]
    b = (await env.buy())["activation_id"]
    foreign = (await env.c2.post("/purchase", json={"country": "USA", "app": "Signal"}))
    fid = foreign.json()["data"]["activation_id"]
    env.sim.deliver_sms(a, "123456")
    r = await env.c.post("/check-all", json={"ids": [a, b, "99999", fid, "abc", 32886, "-1"]})
    assert r.status_code == 200
    items = r.json()["data"]
    assert items[0] == {"activation_id": a, "status": "Completed", "code": "123456",
                        "phone_number": env.sim.activation(a).phone}
    assert items[1] == {"activation_id": b, "status": "Waiting", "code": None,
                        "phone_number": env.sim.activation(b).phone}
    assert items[2] == {"activation_id": "99999", "status": "Not Found", "code": None}
    assert items[3] == {"activation_id": fid, "status": "Not Found", "code": None}
    assert items[4] == {"activation_id": "abc", "status": "Invalid", "code": None}
    assert items[5]["status"] == "Invalid" and "phone_number" not in items[5]
    assert items[6]["status"] == "Invalid" and "phone_number" not in items[6]
    ok20 = await env.c.post("/check-all", json={"ids": [a] * 20})
    assert ok20.status_code == 200 and len(ok20.json()["data"]) == 20
    msg = err(await env.c.post("/check-all", json={"ids": [a] * 21}), 422, "VALIDATION_ERROR")
    assert "20" in msg
    bad_bodies: list[Any] = [{"ids": []}, {"ids": a}, {}, {"ids": None}, [a]]
    for body in bad_bodies:
        err(await env.c.post("/check-all", json=body), 422, "VALIDATION_ERROR")
    # /check of unknown, foreign or non-numeric ids
    for bad in ("99999", fid, "abc"):
        assert err(await env.c.get(f"/check/{bad}"), 404, "NOT_FOUND")


# ------------------------------------------------------------------ cancel
async def test_cancel_too_early_refund_once(env: Env) -> None:
    d = await env.buy("sb_wa")
    aid = d["activation_id"]
    env.advance(86)
    msg = err(await env.c.post(f"/cancel/{aid}"), 422, "TOO_EARLY")
    assert msg == "Cancellation not yet allowed. Please wait 94 more second(s)."
    env.advance(93.5)
    msg = err(await env.c.post(f"/cancel/{aid}"), 422, "TOO_EARLY")
    assert msg == "Cancellation not yet allowed. Please wait 1 more second(s)."
    err(await env.c2.post(f"/cancel/{aid}"), 404, "NOT_FOUND")  # foreign
    env.advance(0.5)
    r = await env.c.post(f"/cancel/{aid}")
    assert r.status_code == 200
    assert dec(r) == {"success": True, "message": "Activation cancelled and refunded.",
                      "data": {"activation_id": aid, "refund": Decimal("1.083"),
                               "balance_after": Decimal("10.0")}}
    err(await env.c.post(f"/cancel/{aid}"), 422, "ALREADY_CANCELLED")
    assert env.sim.balance("k1") == Decimal("10.0000")
    assert (await env.c.get(f"/check/{aid}")).json()["data"]["status"] == "Cancelled"
    with pytest.raises(ControlError):
        env.sim.deliver_sms(aid, "1")
    r = await env.raw.post("/_sim/sms", json={"activation_id": aid, "code": "1"})
    assert r.status_code == 409
    refunds = [e for e in env.sim.state()["ledger"]["k1"] if e["kind"] == "refund"]
    assert refunds == [{"kind": "refund", "amount": "1.0830",
                        "at": env.clock.now(), "activation_id": aid}]


async def test_code_received_wins_over_too_early(env: Env) -> None:
    aid = (await env.buy("sb_fb"))["activation_id"]
    env.advance(10)
    env.sim.deliver_sms(aid, "847261")
    env.advance(10)
    r = await env.c.post(f"/cancel/{aid}")
    assert err(r, 422, "CODE_RECEIVED") == "Code already received. Cannot cancel."
    assert r.json()["data"] == {"activation_id": aid,
                                "phone_number": env.sim.activation(aid).phone,
                                "service": "Facebook", "status": "Completed", "code": "847261"}
    env.advance(500)
    err(await env.c.post(f"/cancel/{aid}"), 422, "CODE_RECEIVED")
    assert env.sim.balance("k1") == Decimal("9.5000")
    with pytest.raises(ControlError):
        env.sim.deliver_sms(aid, "999999")  # one code per activation


async def test_expiry_and_refund_once(env: Env) -> None:
    aid = (await env.buy("Telegram"))["activation_id"]
    env.advance(1199)
    assert (await env.c.get(f"/check/{aid}")).json()["data"]["status"] == "Waiting"
    env.advance(16)
    r = await env.c.get(f"/check/{aid}")
    assert r.json()["data"]["status"] == "Expired" and r.json()["data"]["code"] is None
    with pytest.raises(ControlError):
        env.sim.deliver_sms(aid, "123456")
    h = (await env.c.get("/history", params={"status": "cancelled"})).json()["data"]
    assert [o["status"] for o in h["orders"]] == ["Expired"]
    r = await env.c.post(f"/cancel/{aid}")
    assert r.status_code == 200 and r.json()["data"]["refund"] == 1.4
    err(await env.c.post(f"/cancel/{aid}"), 422, "ALREADY_CANCELLED")
    assert env.sim.balance("k1") == Decimal("10.0000")
    h = (await env.c.get("/history", params={"status": "cancelled"})).json()["data"]
    assert h["pagination"]["total"] == 1


async def test_expired_before_cancel_lock_refunds_at_once() -> None:
    clock = VirtualClock()
    sim = Simulator(clock, cancel_lock=180, window=60)
    sim.add_account("k", "5")
    server = await start_simulator(sim)
    try:
        async with httpx.AsyncClient(base_url=server.base_url,
                                     headers={"Authorization": "Bearer k"}) as c:
            aid = (await c.post("/purchase", json={"country": "USA", "app": "Signal"})
                   ).json()["data"]["activation_id"]
            clock.advance(30)
            err(await c.post(f"/cancel/{aid}"), 422, "TOO_EARLY")
            clock.advance(30)
            assert (await c.post(f"/cancel/{aid}")).json()["data"]["refund"] == 0.6
            assert sim.balance("k") == Decimal("5.0000")
    finally:
        await server.close()


# ----------------------------------------------------------------- history
async def test_history_filters_and_pagination(env: Env) -> None:
    empty = (await env.c.get("/history")).json()["data"]
    assert empty == {"orders": [], "pagination": {"current_page": 1, "per_page": 20,
                                                  "total": 0, "last_page": 1}}
    env.sim.update_account("k1", balance="100")
    ids: list[str] = []
    for i in range(25):
        if i and i % 10 == 0:
            env.advance(60)
        ids.append((await env.buy("Signal"))["activation_id"])
        env.advance(1)
    env.sim.deliver_sms(ids[3], "555555")
    env.advance(200)
    assert (await env.c.post(f"/cancel/{ids[4]}")).status_code == 200
    r = await env.c.get("/history")
    d = r.json()["data"]
    assert d["pagination"] == {"current_page": 1, "per_page": 20, "total": 25, "last_page": 2}
    assert [o["activation_id"] for o in d["orders"]] == ids[::-1][:20]
    o = d["orders"][0]
    assert set(o) == {"activation_id", "phone_number", "service", "country", "status", "code",
                      "amount_charged", "created_at", "completed_at"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", o["created_at"])
    assert o["completed_at"] is None and o["status"] == "Waiting" and o["amount_charged"] == 0.6
    p2 = (await env.c.get("/history", params={"page": 2})).json()["data"]
    assert [o["activation_id"] for o in p2["orders"]] == ids[::-1][20:]
    assert p2["pagination"]["current_page"] == 2
    p3 = (await env.c.get("/history", params={"page": 3})).json()["data"]
    assert p3["orders"] == [] and p3["pagination"]["last_page"] == 2
    small = (await env.c.get("/history", params={"per_page": 7, "page": 4})).json()["data"]
    assert small["pagination"] == {"current_page": 4, "per_page": 7, "total": 25,
                                   "last_page": 4}
    assert len(small["orders"]) == 4
    big = (await env.c.get("/history", params={"per_page": 500})).json()["data"]
    assert big["pagination"]["per_page"] == 100 and len(big["orders"]) == 25
    comp = (await env.c.get("/history", params={"status": "completed"})).json()["data"]
    assert [(o["activation_id"], o["status"], o["code"]) for o in comp["orders"]] == [
        (ids[3], "Completed", "555555")]
    assert comp["orders"][0]["completed_at"].endswith("+00:00")
    canc = (await env.c.get("/history", params={"status": "cancelled"})).json()["data"]
    assert [(o["activation_id"], o["status"]) for o in canc["orders"]] == [
        (ids[4], "Cancelled")]
    wait = (await env.c.get("/history", params={"status": "waiting"})).json()["data"]
    assert wait["pagination"]["total"] == 23
    for params in ({"status": "bogus"}, {"per_page": 0}, {"per_page": "x"}, {"page": 0}):
        err(await env.c.get("/history", params=params), 422, "VALIDATION_ERROR")
    # other accounts see only their own orders
    other = (await env.c2.get("/history")).json()["data"]
    assert other["pagination"]["total"] == 0


# ------------------------------------------------------------------ faults
async def test_injected_errors(env: Env) -> None:
    env.sim.add_fault("purchase", status=409, code="CONCURRENT_ERROR")
    r = await env.c.post("/purchase", json={"country": "USA", "app": "Signal"})
    err(r, 409, "CONCURRENT_ERROR")
    assert env.sim.state()["activations"] == [] and env.sim.balance("k1") == Decimal(10)
    aid = (await env.buy())["activation_id"]
    env.sim.add_fault("check", count=2, code="PROVIDER_ERROR")
    err(await env.c.get(f"/check/{aid}"), 502, "PROVIDER_ERROR")
    assert (await env.c.post("/check-all", json={"ids": [aid]})).status_code == 200
    err(await env.c.get(f"/check/{aid}"), 502, "PROVIDER_ERROR")
    assert (await env.c.get(f"/check/{aid}")).status_code == 200
    r = await env.raw.post("/_sim/faults", json={"endpoint": "any", "status": 500,
                                                 "code": "SERVER_ERROR"})
    assert r.status_code == 200 and r.json()["data"]["faults"][0]["remaining"] == 1
    assert err(await env.c.get("/balance"), 500, "SERVER_ERROR")
    assert (await env.c.get("/balance")).status_code == 200
    err(await env.raw.post("/_sim/faults", json={"endpoint": "nope", "status": 500}), 422,
        "CONTROL_ERROR")


async def test_drop_fault_effect_happens_without_response(env: Env) -> None:
    r = await env.raw.post("/_sim/faults", json={"endpoint": "purchase", "drop": True})
    assert r.status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        await env.c.post("/purchase", json={"country": "USA", "app": "sb_wa"})
    st = env.sim.state()
    assert len(st["activations"]) == 1 and st["accounts"]["k1"]["balance"] == "8.9170"
    h = (await env.c.get("/history", params={"status": "waiting"})).json()["data"]
    assert h["orders"][0]["activation_id"] == st["activations"][0]["id"]
    env.sim.add_fault("balance", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await env.c.get("/balance")
    assert (await env.c.get("/balance")).json()["data"]["balance"] == 8.917


async def test_late_purchase_fault(env: Env) -> None:
    """The late purchase: no answer now, the order appears ``late`` s later (sim time)
    with that time as its created_at; with a 5xx status the answer is that error."""
    r = await env.raw.post("/_sim/faults", json={"endpoint": "purchase", "late": 90})
    assert r.status_code == 200 and r.json()["data"]["faults"][0]["late"] == 90.0
    with pytest.raises(httpx.RemoteProtocolError):
        await env.c.post("/purchase", json={"country": "USA", "app": "Signal"})
    assert env.sim.state()["activations"] == [] and len(env.sim.state()["late_purchases"]) == 1
    env.advance(89)
    assert (await env.c.get("/history")).json()["data"]["orders"] == []
    env.advance(1)
    [order] = (await env.c.get("/history")).json()["data"]["orders"]
    assert order["created_at"] == "2026-01-01T00:01:30+00:00" and order["service"] == "Signal"
    assert env.sim.state()["late_done"] == [order["activation_id"]]
    assert env.sim.balance("k1") == Decimal("9.4000")
    env.sim.add_fault("purchase", late=5, status=502)
    err(await env.c.post("/purchase", json={"country": "USA", "app": "Telegram"}), 502,
        "PROVIDER_ERROR")
    env.sim.set_stock("Telegram", None, 0)  # the server's own checks when it gets to it
    env.advance(5)
    assert len((await env.c.get("/history")).json()["data"]["orders"]) == 1
    for bad in ({"late": 5, "endpoint": "cancel"}, {"late": 0, "endpoint": "purchase"},
                {"late": 5, "endpoint": "purchase", "status": 422}):
        err(await env.raw.post("/_sim/faults", json=bad), 422, "CONTROL_ERROR")


async def test_random_late_purchases(env: Env) -> None:
    r = await env.raw.post("/_sim/faults", json={"random": {
        "rate": 1.0, "seed": 3, "kinds": ["late"], "late": [30, 40]}})
    assert r.status_code == 200 and r.json()["data"]["random"]["late"] == [30.0, 40.0]
    assert (await env.c.get("/balance")).status_code == 200  # not a purchase: no fault
    with pytest.raises(httpx.RemoteProtocolError):
        await env.c.post("/purchase", json={"country": "USA", "app": "Signal"})
    [late] = env.sim.state()["late_purchases"]
    assert 30 <= late["due"] - env.clock.now() <= 40
    env.advance(40)
    assert len(env.sim.state()["late_done"]) == 1


async def test_latency_fault(env: Env) -> None:
    env.sim.add_fault("countries", latency=0.5)
    with pytest.raises(httpx.ReadTimeout):
        await env.c.get("/countries", timeout=0.05)
    r = await env.c.get("/countries")
    assert r.status_code == 200


async def test_random_faults(env: Env) -> None:
    r = await env.raw.post("/_sim/faults", json={"random": {
        "rate": 1.0, "seed": 3, "kinds": ["error"], "endpoints": ["balance"]}})
    assert r.status_code == 200 and r.json()["data"]["random"]["rate"] == 1.0
    codes = {(await env.c.get("/balance")).json()["code"] for _ in range(30)}
    assert codes == {"SERVER_ERROR", "PROVIDER_ERROR", "CONCURRENT_ERROR"}
    assert (await env.c.get("/countries")).status_code == 200  # other endpoints unaffected
    env.sim.set_random_faults(0.5, seed=1, kinds=["error", "drop"])
    outcomes: list[str] = []
    for _ in range(40):
        try:
            resp = await env.c.get("/countries")
            outcomes.append("ok" if resp.status_code == 200 else "error")
        except httpx.RemoteProtocolError:
            outcomes.append("drop")
    assert set(outcomes) == {"ok", "error", "drop"}
    await env.raw.post("/_sim/faults", json={"clear": True})
    assert all([(await env.c.get("/countries")).status_code == 200 for _ in range(10)])


# ----------------------------------------------------------------- control
async def test_control_endpoints(env: Env) -> None:
    r = await env.raw.post("/_sim/accounts", json={"api_key": "k3", "balance": "2.5",
                                                   "email": "three@example.com"})
    assert r.json()["data"] == {"api_key": "k3", "balance": "2.5000",
                                "email": "three@example.com", "state": "active"}
    hdr = {"Authorization": "Bearer k3"}
    r = await env.raw.get(env.server.base_url + "/balance", headers=hdr)
    assert r.json()["data"] == {"balance": 2.5, "currency": "USD", "email": "three@example.com"}
    await env.raw.post("/_sim/accounts", json={"api_key": "k3", "state": "suspended"})
    err(await env.raw.get(env.server.base_url + "/balance", headers=hdr), 403,
        "ACCOUNT_SUSPENDED")
    err(await env.raw.post("/_sim/accounts", json={"api_key": "k3", "state": "weird"}), 422,
        "CONTROL_ERROR")
    aid = (await env.buy())["activation_id"]
    r = await env.raw.post("/_sim/sms", json={"activation_id": aid, "code": "246810"})
    assert r.status_code == 200
    assert (await env.c.get(f"/check/{aid}")).json()["data"]["code"] == "246810"
    assert (await env.raw.post("/_sim/sms", json={"activation_id": "1", "code": "1"})
            ).status_code == 404
    t0 = env.clock.now()
    r = await env.raw.post("/_sim/advance", json={"seconds": 90})
    assert r.status_code == 200 and env.clock.now() == t0 + 90
    r = await env.raw.post("/_sim/stock", json={"app": "sb_fb", "provider_id": "3109",
                                                "count": 0})
    assert r.json()["data"] == {"3109": 0, "2266": 890}
    assert (await env.raw.post("/_sim/stock", json={"app": "sb_fb", "provider_id": "1",
                                                    "count": 0})).status_code == 404
    r = await env.raw.post("/_sim/services", json={"app": "Signal", "remove": True})
    assert r.json()["data"] == {"app": "Signal", "removed": True}
    err(await env.c.post("/purchase", json={"country": "USA", "app": "Signal"}), 422,
        "PRICE_VERIFICATION_FAILED")
    await env.raw.post("/_sim/services", json={"app": "Signal", "remove": False})
    await env.buy("Signal")
    st = (await env.raw.get("/_sim/state")).json()["data"]
    assert st["accounts"]["k1"] == {"balance": "8.8000", "email": "one@example.com",
                                    "state": "active"}
    assert [a["status"] for a in st["activations"]] == ["Completed", "Waiting"]
    acts = st["activations"][0]
    assert acts["refunded"] is False and acts["price"] == "0.6000" and acts["app"] == "Signal"
    assert [e["kind"] for e in st["ledger"]["k1"]] == ["deposit", "charge", "charge"]
    assert st["requests"]["k1"]["purchase"] == 3 and st["requests"]["k1"]["check"] == 1
    assert st["stock"]["sb_fb"]["3109"] == 0 and st["stock"]["Signal"] is None
    assert (await env.raw.post("/_sim/accounts", content=b"[]")).status_code == 422


async def test_advance_refused_without_virtual_clock() -> None:
    sim = Simulator(SystemClock())
    server = await start_simulator(sim)
    try:
        async with httpx.AsyncClient(base_url=server.url) as c:
            r = await c.post("/_sim/advance", json={"seconds": 5})
            assert r.status_code == 409 and r.json()["success"] is False
    finally:
        await server.close()


async def test_auto_sms_and_ratio() -> None:
    clock = VirtualClock()
    sim = Simulator(clock, auto_sms=(30, 60), auto_sms_ratio=0.5, seed=11, window=300)
    sim.add_account("k", "100")
    server = await start_simulator(sim)
    try:
        async with httpx.AsyncClient(base_url=server.base_url,
                                     headers={"Authorization": "Bearer k"}) as c:
            ids = []
            for i in range(20):
                if i == 10:
                    clock.advance(60)
                r = await c.post("/purchase", json={"country": "USA", "app": "Signal"})
                ids.append(r.json()["data"]["activation_id"])
            clock.advance(29)
            first = (await c.post("/check-all", json={"ids": ids[10:]})).json()["data"]
            assert {i["status"] for i in first} == {"Waiting"}
            clock.advance(100)
            items = (await c.post("/check-all", json={"ids": ids})).json()["data"]
            got = [i for i in items if i["status"] == "Completed"]
            assert 0 < len(got) < 20  # some numbers never get a code
            assert all(re.fullmatch(r"\d{6}", i["code"]) for i in got)
            for i in got:
                act = sim.activation(i["activation_id"])
                assert act.code_at is not None
                assert 30 <= act.code_at - act.purchased_at <= 60
            clock.advance(300)
            items = (await c.post("/check-all", json={"ids": ids})).json()["data"]
            assert {i["status"] for i in items} == {"Completed", "Expired"}
            assert sum(i["status"] == "Completed" for i in items) == len(got)
    finally:
        await server.close()


async def test_auto_sms_never_after_window() -> None:
    clock = VirtualClock()
    sim = Simulator(clock, auto_sms=(50, 50), window=40, seed=1)
    sim.add_account("k", "10")
    sim.add_account("k", "10")  # upsert is idempotent
    server = await start_simulator(sim)
    try:
        async with httpx.AsyncClient(base_url=server.base_url,
                                     headers={"Authorization": "Bearer k"}) as c:
            aid = (await c.post("/purchase", json={"country": "USA", "app": "Signal"})
                   ).json()["data"]["activation_id"]
            clock.advance(100)
            r = await c.get(f"/check/{aid}")
            assert r.json()["data"]["status"] == "Expired"
            assert sim.state()["activations"][0]["sms_pending"] is False
    finally:
        await server.close()


async def test_trickle_fault_sends_headers_then_one_byte_per_interval(env: Env) -> None:
    """Slow loris: the status and headers come at once; the body is trickled, so a
    per-read timeout longer than the interval never fires, while the whole body
    takes len(body) intervals. The effect happens (the purchase is made)."""
    r = await env.raw.post("/_sim/faults", json={"endpoint": "purchase", "trickle": 0.01})
    assert r.status_code == 200 and r.json()["data"]["faults"][0]["trickle"] == 0.01
    async with env.c.stream("POST", "/purchase", json={"country": "USA", "app": "Signal"},
                            timeout=1.0) as resp:
        assert resp.status_code == 200
        length = int(resp.headers["content-length"])
        chunks = [chunk async for chunk in resp.aiter_raw()]
    assert len(chunks) == length > 50  # one byte per write
    body = b"".join(chunks)
    assert b'"amount_charged": 0.6' in body
    assert len(env.sim.state()["activations"]) == 1


async def test_patch_fault_rewrites_answer_fields(env: Env) -> None:
    r = await env.raw.post("/_sim/faults", json={
        "endpoint": "apps", "patch": {"code=Signal/price": -3,
                                      "code=sb_tg/providers/provider_id=2266/price": 1e30}})
    assert r.status_code == 200
    apps = {a["code"]: a for a in (await env.c.get("/apps/USA")).json()["data"]}
    assert apps["Signal"]["price"] == -3
    assert apps["sb_tg"]["providers"][0] == {"provider_id": "2266", "price": 1e30, "count": 1820}
    assert (await env.c.get("/apps/USA")).json()["data"][2]["price"] == 0.6  # used up
    env.sim.add_fault("purchase", patch={"amount_charged": Decimal("1E+30")})
    raw = (await env.c.post("/purchase", json={"country": "USA", "app": "Signal"})).text
    assert '"amount_charged": 1E+30' in raw  # a Decimal goes out as that exact number
    assert env.sim.balance("k1") == Decimal("9.4")  # the real charge is unchanged
    # an error answer is never patched; a patch needs a success to apply to
    err(await env.raw.post("/_sim/faults", json={"endpoint": "apps", "status": 500,
                                                 "patch": {"x": 1}}), 422, "CONTROL_ERROR")


async def test_fault_for_one_account(env: Env) -> None:
    env.sim.add_fault("balance", status=500, api_key="k2")
    assert (await env.c.get("/balance")).status_code == 200  # k1 is not affected
    assert (await env.c2.get("/balance")).status_code == 500
    assert (await env.c2.get("/balance")).status_code == 200  # consumed


async def test_random_trickle_kind(env: Env) -> None:
    r = await env.raw.post("/_sim/faults", json={"random": {
        "rate": 1.0, "seed": 3, "kinds": ["trickle"], "trickle": 0.01,
        "endpoints": ["countries"]}})
    assert r.status_code == 200 and r.json()["data"]["random"]["trickle"] == 0.01
    resp = await env.c.get("/countries")
    assert resp.status_code == 200 and resp.json()["data"]["countries"][0]["id"] == "USA"
    err(await env.raw.post("/_sim/faults", json={"random": {"kinds": ["slow"]}}), 422,
        "CONTROL_ERROR")


async def test_price_control_and_a_lagging_price_view(env: Env) -> None:
    r = await env.raw.post("/_sim/price", json={"app": "sb_tg", "provider_id": "2266",
                                                "price": "0.55"})
    assert r.status_code == 200
    [tg] = r.json()["data"]
    assert tg["price"] == 0.55 and tg["providers"][0] == {"provider_id": "2266",
                                                          "price": 0.55, "count": 1820}
    assert (await env.buy("sb_tg", provider_id="2266"))["amount_charged"] == 0.55
    # /apps keeps showing the old price while /purchase charges the new one.
    await env.raw.post("/_sim/price", json={"app": "Signal", "price": 0.75, "listed": "0.60"})
    apps = {a["code"]: a for a in (await env.c.get("/apps/USA")).json()["data"]}
    assert apps["Signal"]["price"] == 0.6
    assert (await env.buy("Signal"))["amount_charged"] == 0.75
    env.sim.set_price("sb_tg", "3109", "0.40")  # the Python API; /apps re-sorts
    apps = {a["code"]: a for a in (await env.c.get("/apps/USA")).json()["data"]}
    assert [p["provider_id"] for p in apps["sb_tg"]["providers"]] == ["3109", "2266"]
    assert apps["sb_tg"]["price"] == 0.4
    for bad in ({"app": "Signal"}, {"app": "Signal", "price": "abc"},
                {"app": "Signal", "price": -1}, {"app": "Signal", "price": "NaN"},
                {"app": "Signal", "price": True}, {"app": "Signal", "price": "1e30"},
                {"app": "Signal", "price": 1, "listed": 0}):
        err(await env.raw.post("/_sim/price", json=bad), 422, "CONTROL_ERROR")
    assert (await env.raw.post("/_sim/price", json={"app": "sb_tg", "provider_id": "1",
                                                    "price": 1})).status_code == 404
    assert (await env.raw.post("/_sim/price", json={"app": "nope", "price": 1})
            ).status_code == 404
