"""DaisySimClient against httpx.MockTransport: wire format, retries, limiter, reconciliation."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.clock import VirtualClock
from bot.daisysim import (
    APIConnectionError,
    APITimeoutError,
    CodeReceived,
    DaisySimClient,
    MalformedResponse,
    NotFound,
    OutOfStock,
    PurchaseFailed,
    PurchaseOutcomeUnknown,
    RateLimited,
    ServerError,
    TooEarly,
)
from bot.daisysim.keys import key_fingerprint
from tests.daisysim.helpers import run_virtual

KEY = "sk_live_SECRET_abcdef0123456789"
BASE = "https://daisysim.test/api/v1/server7"

Handler = Callable[[httpx.Request], httpx.Response]


def ok(data: Any, message: str = "OK", status: int = 200) -> httpx.Response:
    text = json.dumps({"success": True, "message": message, "data": data})
    return httpx.Response(status, text=text, headers={"content-type": "application/json"})


def fail(status: int, code: str, error: str = "Err.", data: Any = None) -> httpx.Response:
    body: dict[str, Any] = {"success": False, "error": error, "code": code}
    if data is not None:
        body["data"] = data
    return httpx.Response(status, json=body)


def raw(status: int, text: str) -> httpx.Response:
    return httpx.Response(status, text=text)


class Recorder:
    """A MockTransport handler that records requests and pops scripted answers."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def calls(self, path_suffix: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith(path_suffix)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/v1/server7")
        answer = self.routes.get(f"{request.method} {path}")
        if answer is None:
            return fail(404, "NOT_FOUND", "route")
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            result: httpx.Response = answer(request)
            return result
        assert isinstance(answer, httpx.Response)
        return answer


def make(
    routes: dict[str, Any], clock: VirtualClock | None = None, **kwargs: Any
) -> tuple[DaisySimClient, Recorder, VirtualClock]:
    clock = clock or VirtualClock()
    rec = Recorder(routes)
    kwargs.setdefault("reconcile_delay", 0.0)
    client = DaisySimClient(
        KEY,
        base_url=BASE,
        clock=clock,
        transport=httpx.MockTransport(rec),
        rng=random.Random(1),
        **kwargs,
    )
    return client, rec, clock


def iso(clock: VirtualClock, offset: float = 0.0) -> str:
    return datetime.fromtimestamp(clock.now() + offset, UTC).isoformat()


def order(aid: str, created: str, service: str = "WhatsApp 3", **kw: Any) -> dict[str, Any]:
    base = {"activation_id": aid, "phone_number": f"+1940{aid:0>7}", "service": service,
            "country": "USA", "status": "Waiting", "code": None, "amount_charged": 1.083,
            "created_at": created, "completed_at": None}
    base.update(kw)
    return base


def history(orders: list[dict[str, Any]], page: int = 1, last_page: int = 1) -> httpx.Response:
    return ok({"orders": orders, "pagination": {"current_page": page, "per_page": 100,
                                                "total": len(orders), "last_page": last_page}})


PURCHASE_OK = {"activation_id": "32886", "phone_number": "+19401234567",
               "service": "WhatsApp 3", "country": "USA", "amount_charged": 1.0830,
               "balance_after": 12.4000}

# --------------------------------------------------------------------------- wire format


async def test_headers_paths_and_parsing() -> None:
    client, rec, _ = make({
        "GET /balance": ok({"balance": 14.25, "currency": "USD", "email": "u@example.com"}),
        "GET /countries": ok({"countries": [{"id": "USA", "name": "USA"}]}),
        "GET /apps/USA": ok([{"code": "sb_wa", "name": "WhatsApp 3", "price": 1.083,
                              "providers": [{"provider_id": "3109", "price": 1.083,
                                             "count": 4000}]}]),
        "GET /check/32886": ok({"activation_id": "32886", "status": "Waiting", "code": None,
                                "phone_number": "+19401234567"}),
        "POST /cancel/32886": ok({"activation_id": "32886", "refund": 1.083,
                                  "balance_after": 14.25}),
    })
    async with client:
        bal = await client.balance()
        assert bal.balance == Decimal("14.25") and bal.email == "u@example.com"
        assert [c.id for c in await client.countries()] == ["USA"]
        apps = await client.apps()
        assert apps[0].providers[0].price == Decimal("1.083") and apps[0].multi_pool
        assert (await client.check("32886")).waiting
        cancelled = await client.cancel("32886")
        assert cancelled.refund == Decimal("1.083")
    for req in rec.requests:
        assert req.headers["authorization"] == f"Bearer {KEY}"
        assert req.headers["accept"] == "application/json"
        assert req.url.host == "daisysim.test"
        assert req.url.path.startswith("/api/v1/server7/")


async def test_purchase_body_never_has_a_price() -> None:
    client, rec, _ = make({"POST /purchase": ok(PURCHASE_OK, "Number purchased successfully.")})
    async with client:
        p = await client.purchase("USA", "sb_wa", "3109", app_name="WhatsApp 3")
    assert p.activation_id == "32886" and p.amount_charged == Decimal("1.0830")
    assert p.balance_after == Decimal("12.4000") and not p.reconciled
    body = json.loads(rec.requests[0].content)
    assert body == {"country": "USA", "app": "sb_wa", "provider_id": "3109",
                    "app_name": "WhatsApp 3"}
    assert client.limiter.purchase.used() == 1


async def test_check_all_limits_and_shared_budget() -> None:
    results = [{"activation_id": "1", "status": "Completed", "code": "42", "phone_number": "+1"},
               {"activation_id": "2", "status": "Not Found", "code": None}]
    client, rec, _ = make({"POST /check-all": ok(results),
                           "GET /check/1": ok(results[0])})
    async with client:
        with pytest.raises(ValueError):
            await client.check_all([str(i) for i in range(21)])
        assert await client.check_all([]) == []
        assert rec.requests == []
        got = await client.check_all(["1", "2"])
        assert got[0].completed and got[1].unresolvable
        assert json.loads(rec.requests[0].content) == {"ids": ["1", "2"]}
        await client.check("1")
        assert client.limiter.check.used() == 2  # check and check-all share one budget
        assert client.limiter.check.available() == 58


async def test_history_params_and_iter_history_pages() -> None:
    clock = VirtualClock()
    pages = {
        1: history([order("3", iso(clock)), order("2", iso(clock, -5))], 1, 3),
        2: history([order("2", iso(clock, -5)), order("1", iso(clock, -9))], 2, 3),  # shifted
        3: history([], 3, 3),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return pages[int(request.url.params["page"])]

    client, rec, _ = make({"GET /history": answer}, clock)
    async with client:
        page = await client.history(status="waiting", per_page=50, page=2)
        assert page.pagination.current_page == 2
        assert dict(rec.requests[0].url.params) == {"per_page": "50", "page": "2",
                                                    "status": "waiting"}
        ids = [o.activation_id async for o in client.iter_history()]
        assert ids == ["3", "2", "1"]  # walked to last_page, duplicate skipped
        with pytest.raises(ValueError):
            await client.history(per_page=101)
        with pytest.raises(ValueError):
            await client.history(status="weird")  # type: ignore[arg-type]


async def test_api_errors_raise_typed_exceptions() -> None:
    data = {"activation_id": "7", "status": "Completed", "code": "847261"}
    client, _, _ = make({
        "POST /cancel/5": fail(422, "TOO_EARLY", "Please wait 94 more second(s)."),
        "POST /cancel/7": fail(422, "CODE_RECEIVED", "Code already received.", data),
        "GET /check/9": fail(404, "NOT_FOUND", "Activation not found."),
        "POST /purchase": fail(503, "OUT_OF_STOCK", "No numbers available right now."),
    })
    async with client:
        with pytest.raises(TooEarly) as too_early:
            await client.cancel("5")
        assert too_early.value.seconds_left == 94
        with pytest.raises(CodeReceived) as received:
            await client.cancel("7")
        assert received.value.otp == "847261"
        with pytest.raises(NotFound):
            await client.check("9")
        with pytest.raises(OutOfStock):
            await client.purchase("USA", "sb_wa", "3109")


async def test_key_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.daisysim")
    client, _, clock = make({
        "GET /balance": [raw(500, "<html>oops</html>")] * 4,
        "POST /purchase": httpx.ConnectError("refused"),
    })
    # The repr names the key by its log-safe fingerprint only: no part of the key.
    assert KEY not in repr(client) and "6789" not in repr(client)
    assert key_fingerprint(KEY) in repr(client) and client.key_fingerprint in repr(client)
    async with client:
        with pytest.raises(ServerError) as err:
            await run_virtual(clock, client.balance())
        with pytest.raises(APIConnectionError) as conn:
            await client.purchase("USA", "Signal")
    for text in (str(err.value), repr(err.value), str(conn.value), caplog.text):
        assert KEY not in text and "SECRET" not in text
    assert "GET /balance" in caplog.text


# --------------------------------------------------------------------------- retries


async def test_idempotent_calls_retry_5xx_and_timeouts_on_the_clock() -> None:
    bal = ok({"balance": 1, "currency": "USD", "email": "e"})
    client, rec, clock = make({"GET /balance": [raw(502, "bad gateway"),
                                                httpx.ReadTimeout("slow"),
                                                fail(502, "PROVIDER_ERROR"), bal]})
    t0 = clock.now()
    async with client:
        result = await run_virtual(clock, client.balance())
    assert result.balance == Decimal(1)
    assert len(rec.requests) == 4
    assert 0 < clock.now() - t0 <= 0.5 + 1.0 + 2.0  # jittered backoff, slept on the clock


async def test_idempotent_retries_are_bounded() -> None:
    client, rec, clock = make({"GET /check/1": [httpx.ReadTimeout("slow")] * 9}, max_attempts=3)
    async with client:
        with pytest.raises(APITimeoutError) as err:
            await run_virtual(clock, client.check("1"))
    assert err.value.request_sent and len(rec.requests) == 3
    assert client.limiter.check.used() == 3  # every attempt is a request against the budget


async def test_cancel_is_not_retried_on_5xx_or_lost_response() -> None:
    client, rec, _ = make({"POST /cancel/1": [raw(500, "boom"), httpx.ReadError("reset")]})
    async with client:
        with pytest.raises(ServerError):
            await client.cancel("1")
        with pytest.raises(APIConnectionError) as err:
            await client.cancel("1")
    assert err.value.request_sent
    assert len(rec.requests) == 2


async def test_concurrent_error_retried_immediately_even_for_cancel() -> None:
    done = ok({"activation_id": "1", "refund": 0.6, "balance_after": 1})
    client, rec, clock = make({"POST /cancel/1": [fail(409, "CONCURRENT_ERROR"),
                                                  fail(409, "CONCURRENT_ERROR"), done]})
    t0 = clock.now()
    async with client:
        assert (await client.cancel("1")).refund == Decimal("0.6")
    assert len(rec.requests) == 3 and clock.now() == t0


async def test_server_429_blocks_the_budget_then_retries() -> None:
    purchased = ok(PURCHASE_OK)
    client, rec, clock = make({"POST /purchase": [
        fail(429, "RATE_LIMITED", "Too many purchase attempts. Please wait 43s."), purchased]})
    t0 = clock.now()
    async with client:
        p = await run_virtual(clock, client.purchase("USA", "sb_wa"))
    assert p.activation_id == "32886"
    assert clock.now() - t0 == pytest.approx(43.0)
    assert client.limiter.purchase.blocked_until == pytest.approx(t0 + 43.0)
    assert len(rec.requests) == 2


async def test_429_exhausted_raises_rate_limited() -> None:
    limited = fail(429, "RATE_LIMITED", "Too many check requests. Please wait 20s.")
    client, rec, clock = make({"GET /check/1": [limited] * 5}, max_attempts=2)
    async with client:
        with pytest.raises(RateLimited) as err:
            await run_virtual(clock, client.check("1"))
    assert err.value.retry_after == 20.0 and len(rec.requests) == 2
    assert client.limiter.check.available() == 0  # blocked for 20 s after the last 429


async def test_limiter_waits_instead_of_causing_429() -> None:
    answer = ok({"activation_id": "1", "status": "Waiting", "code": None, "phone_number": "+1"})
    client, rec, clock = make({"GET /check/1": answer})
    t0 = clock.now()
    async with client:
        for _ in range(60):
            await client.check("1")
        assert clock.now() == t0 and client.limiter.check.available() == 0
        await run_virtual(clock, client.check("1"))
    assert clock.now() - t0 == pytest.approx(60.501, abs=0.01)
    assert len(rec.requests) == 61


async def test_malformed_success_body_raises() -> None:
    client, _, _ = make({"GET /balance": raw(200, "<html>maintenance</html>"),
                         "GET /countries": ok({"nope": []})})
    async with client:
        with pytest.raises(MalformedResponse):
            await client.balance()
        with pytest.raises(MalformedResponse):
            await client.countries()


# --------------------------------------------------------------------------- purchase recovery


@pytest.mark.parametrize(
    "lost",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.WriteError("broken pipe"),
        httpx.WriteTimeout("write timed out"),
        raw(502, "<html>Bad Gateway</html>"),
        fail(500, "SERVER_ERROR", "Internal server error."),
        fail(502, "PROVIDER_ERROR", "Upstream provider error."),
        raw(200, "{truncated"),
    ],
)
async def test_lost_purchase_is_reconciled_through_history(lost: Any) -> None:
    clock = VirtualClock()
    orders = [order("32890", iso(clock, 1), service="WhatsApp 3"),
              order("32889", iso(clock, 0), service="Signal"),
              order("32870", iso(clock, -300))]
    client, rec, _ = make({"POST /purchase": lost, "GET /history": history(orders)}, clock)
    async with client:
        p = await client.purchase("USA", "sb_wa", app_name="WhatsApp 3")
    assert p.reconciled and p.balance_after is None
    assert p.activation_id == "32890" and p.amount_charged == Decimal("1.083")
    assert len(rec.calls("/purchase")) == 1  # never re-sent
    assert dict(rec.calls("/history")[0].url.params) == {"per_page": "100", "page": "1"}


async def test_lost_purchase_with_nothing_in_history_is_reported_not_bought() -> None:
    clock = VirtualClock()
    client, rec, _ = make({
        "POST /purchase": fail(500, "SERVER_ERROR"),
        "GET /history": history([order("32870", iso(clock, -11), service="WhatsApp 3")]),
    }, clock)
    async with client:
        with pytest.raises(PurchaseFailed) as err:
            await client.purchase("USA", "sb_wa", app_name="WhatsApp 3")
    assert err.value.bought is False
    assert isinstance(err.value.original, ServerError) and err.value.code == "SERVER_ERROR"
    assert len(rec.calls("/purchase")) == 1


async def test_connect_error_needs_no_reconciliation() -> None:
    client, rec, _ = make({"POST /purchase": httpx.ConnectError("refused")})
    async with client:
        with pytest.raises(APIConnectionError) as err:
            await client.purchase("USA", "Signal")
    assert not err.value.request_sent
    assert not rec.calls("/history") and len(rec.requests) == 1


async def test_history_unreachable_gives_outcome_unknown() -> None:
    client, rec, clock = make({"POST /purchase": httpx.ReadTimeout("slow"),
                               "GET /history": raw(503, "down")}, max_attempts=2)
    sent = clock.now()
    async with client:
        with pytest.raises(PurchaseOutcomeUnknown) as err:
            await run_virtual(clock, client.purchase("USA", "Signal", app_name="Signal"))
    assert err.value.sent_at == sent and err.value.app == "Signal"
    assert isinstance(err.value.cause, APITimeoutError)
    assert len(rec.calls("/purchase")) == 1 and len(rec.calls("/history")) == 2


async def test_several_candidates_oldest_unknown_wins_and_exclusions() -> None:
    clock = VirtualClock()
    orders = [order("32895", iso(clock, 2)), order("32894", iso(clock, 1)),
              order("32893", iso(clock, -3)), order("32892", iso(clock, -20))]
    client, _, _ = make({"POST /purchase": httpx.ReadError("reset"),
                         "GET /history": history(orders)}, clock)
    async with client:
        p = await client.purchase("USA", "sb_wa", app_name="WhatsApp 3",
                                  exclude_ids={"32893"})
        assert p.activation_id == "32894"  # 32892 is outside the window, 32893 is known
        p2 = await client.purchase("USA", "sb_wa", app_name="WhatsApp 3",
                                   exclude_ids={"32893"})
        assert p2.activation_id == "32895"  # 32894 was claimed by the first recovery
        with pytest.raises(PurchaseOutcomeUnknown):  # no answer and no order (yet)
            await client.purchase("USA", "sb_wa", app_name="WhatsApp 3",
                                  exclude_ids={"32893"})


async def test_ids_from_successful_purchases_are_never_claimed() -> None:
    clock = VirtualClock()
    client, _, _ = make({
        "POST /purchase": [ok(PURCHASE_OK), httpx.ReadError("reset")],
        "GET /history": history([order("32886", iso(clock))]),
    }, clock)
    async with client:
        assert (await client.purchase("USA", "sb_wa", app_name="WhatsApp 3")).activation_id
        with pytest.raises(PurchaseOutcomeUnknown):
            await client.purchase("USA", "sb_wa", app_name="WhatsApp 3")


async def test_history_walk_stops_at_the_window() -> None:
    clock = VirtualClock()
    page1 = [order(str(40000 - i), iso(clock, -i * 0.1), service="Signal") for i in range(100)]
    page2 = [order("39000", iso(clock, -15), service="Signal")]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["page"] == "1":
            return history(page1, 1, 50)
        return history(page2, 2, 50)

    client, rec, _ = make({"POST /purchase": httpx.ReadTimeout("slow"),
                           "GET /history": answer}, clock)
    async with client:
        p = await client.purchase("USA", "Signal", app_name="Signal")
    assert p.activation_id == "39901"  # the oldest unknown in the window (created at -9.9 s)
    assert len(rec.calls("/history")) == 2  # page 2 reached the window edge; 48 pages unread


async def test_reconcile_delay_sleeps_on_the_clock_after_a_timeout() -> None:
    clock = VirtualClock()
    client, _, _ = make({"POST /purchase": httpx.ReadTimeout("slow"),
                         "GET /history": history([order("1", iso(clock), service="Signal")])},
                        clock, reconcile_delay=3.0)
    t0 = clock.now()
    async with client:
        p = await run_virtual(clock, client.purchase("USA", "Signal", app_name="Signal"))
    assert p.activation_id == "1" and clock.now() - t0 == pytest.approx(3.0)


APPS = ok([{"code": "sb_wa", "name": "WhatsApp 3", "price": 1.083, "providers": []}])


async def test_without_app_name_the_display_name_also_matches() -> None:
    """The server may label an order with the service's display name when no
    app_name is sent; the name comes from /apps (cached, or fetched)."""
    clock = VirtualClock()
    client, rec, _ = make({"POST /purchase": httpx.ReadError("reset"),
                           "GET /apps/USA": APPS,
                           "GET /history": history([order("7", iso(clock)),
                                                    order("6", iso(clock), service="sb_wa")])},
                          clock)
    async with client:
        first = await client.purchase("USA", "sb_wa")  # /apps fetched: "WhatsApp 3"
        assert len(rec.calls("/apps/USA")) == 1
        second = await client.purchase("USA", "sb_wa")  # cached name
        assert len(rec.calls("/apps/USA")) == 1
        assert {first.activation_id, second.activation_id} == {"6", "7"}


async def test_without_app_name_and_no_catalogue_the_outcome_is_unknown() -> None:
    client, _, _ = make({"POST /purchase": httpx.ReadError("reset"),
                         "GET /apps/USA": raw(500, "down"),
                         "GET /history": history([])}, max_attempts=1)
    async with client:
        with pytest.raises(PurchaseOutcomeUnknown):
            await client.purchase("USA", "sb_wa")  # cannot tell "not bought" safely


async def test_public_reconcile_purchase() -> None:
    clock = VirtualClock()
    sent_at = clock.now()
    clock.advance(600)  # e.g. after a restart
    orders = [order("32900", iso(clock, -590), service="Telegram 2", code="1234",
                    status="Completed")]
    client, _, _ = make({"GET /history": history(orders)}, clock)
    async with client:
        assert await client.reconcile_purchase("Telegram 2", sent_at, {"32900"}) is None
        found = await client.reconcile_purchase("Telegram 2", sent_at, ())
        assert found is not None and found.reconciled and found.activation_id == "32900"
        assert await client.reconcile_purchase("Other", sent_at) is None

    broken, _, clock2 = make({"GET /history": raw(500, "x")}, max_attempts=1)
    async with broken:
        with pytest.raises(PurchaseOutcomeUnknown):
            await broken.reconcile_purchase("Telegram 2", clock2.now())
