"""Hypothesis stateful test: random purchases, SMS deliveries, time jumps, cancels and
checks through the client against an in-process simulator on a shared VirtualClock.

Invariants: wallet = start - charges + refunds (exact Decimal), at most one refund per
activation, no cancel accepted within 180 s of purchase, and no 429 caused by the client.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.clock import VirtualClock
from bot.daisysim import (
    CodeReceived,
    DaisySimClient,
    InsufficientBalance,
    OutOfStock,
    PurchaseFailed,
    PurchaseOutcomeUnknown,
    TooEarly,
    UnknownAPIError,
)
from bot.sandbox.simulator import Simulator, start_simulator
from tests.daisysim.helpers import run_virtual

T = TypeVar("T")
KEY = "sk_stateful_0123456789abcdef"
START = Decimal("12.0000")
CANCEL_LOCK = 180.0
WINDOW = 1200.0
PRODUCTS = [("Signal", None, None), ("sb_tg", None, "Telegram 2"),
            ("sb_wa", "2617", "WhatsApp 3"), ("whatsapp-(us)5", None, None)]


class ClientMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = VirtualClock()
        self.sim = Simulator(self.clock, cancel_lock=CANCEL_LOCK, window=WINDOW, seed=5)
        self.sim.add_account(KEY, START)
        self.server = self.loop.run_until_complete(start_simulator(self.sim))
        self.client = DaisySimClient(KEY, base_url=self.server.base_url, clock=self.clock,
                                     reconcile_delay=0.0, rng=random.Random(0), timeout=5.0)
        self.charges = Decimal(0)
        self.refunds = Decimal(0)
        self.bought: dict[str, tuple[float, Decimal]] = {}  # id -> (purchased_at, price)
        self.ids: list[str] = []
        self.codes: dict[str, str] = {}
        self.refunded: set[str] = set()
        self.code_seq = 100000

    def run(self, aw: Awaitable[T]) -> T:
        return self.loop.run_until_complete(run_virtual(self.clock, aw, limit=10 * 3600))

    def teardown(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.server.close())
        self.loop.close()

    # ------------------------------------------------------------------ helpers

    def _record_purchase(self, aid: str, amount: Decimal) -> None:
        assert aid not in self.bought
        act = self.sim.activation(aid)
        assert act.price == amount
        self.bought[aid] = (act.purchased_at, amount)
        self.ids.append(aid)
        self.charges += amount

    def _elapsed(self, aid: str) -> float:
        return self.clock.now() - self.bought[aid][0]

    # -------------------------------------------------------------------- rules

    @rule(product=st.sampled_from(PRODUCTS), fault=st.sampled_from([None, None, "drop", "500"]))
    def purchase(self, product: tuple[str, str | None, str | None], fault: str | None) -> None:
        app, pool, name = product
        if fault == "drop":
            self.sim.add_fault("purchase", drop=True)
        elif fault == "500":
            self.sim.add_fault("purchase", status=500)
        before = self.sim.balance(KEY)
        try:
            p = self.run(self.client.purchase("USA", app, pool, app_name=name,
                                              exclude_ids=self.ids))
        except InsufficientBalance:
            assert fault is None or self.sim.state()["faults"] == []
            assert self.sim.balance(KEY) == before
            self.sim.clear_faults()  # an unused fault must not hit a later rule
            event("purchase: insufficient balance")
            return
        except OutOfStock:
            raise AssertionError("stock is ample in this test") from None
        except PurchaseOutcomeUnknown:
            # A dropped purchase the server refused (e.g. insufficient balance): no
            # answer and no order, so the client cannot call it "not bought" — and
            # indeed nothing was bought.
            assert fault == "drop"
            assert self.sim.balance(KEY) == before
            assert len(self.sim.state()["activations"]) == len(self.bought)
            self.sim.clear_faults()
            event("purchase: drop -> outcome unknown, nothing bought")
            return
        except PurchaseFailed as err:
            # A 500 fault has no effect: the server answered, /history is authoritative.
            assert fault == "500" and err.bought is False
            assert self.sim.balance(KEY) == before
            assert len(self.sim.state()["activations"]) == len(self.bought)
            event(f"purchase: {fault} -> not bought")
            return
        assert p.reconciled == (fault == "drop")
        event(f"purchase: bought{' (reconciled)' if p.reconciled else ''}")
        assert p.amount_charged is not None
        self._record_purchase(p.activation_id, p.amount_charged)
        assert self.sim.balance(KEY) == before - p.amount_charged

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def deliver_sms(self, data: st.DataObject) -> None:
        aid = data.draw(st.sampled_from(self.ids))
        if aid in self.codes or aid in self.refunded or self._elapsed(aid) >= WINDOW:
            return
        self.code_seq += 1
        code = str(self.code_seq)
        self.sim.deliver_sms(aid, code)
        self.codes[aid] = code

    @rule(seconds=st.sampled_from([1.0, 15.0, 60.0, 100.0, 179.0, 181.0, 600.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        aid = data.draw(st.sampled_from(self.ids))
        elapsed = self._elapsed(aid)
        try:
            result = self.run(self.client.cancel(aid))
        except TooEarly as err:
            elapsed = self._elapsed(aid)
            assert aid not in self.codes and aid not in self.refunded
            assert elapsed < CANCEL_LOCK
            assert err.seconds_left == max(1, math.ceil(CANCEL_LOCK - elapsed))
            event("cancel: too early")
            return
        except CodeReceived as err:
            assert err.otp == self.codes[aid] and aid not in self.refunded
            event("cancel: code received")
            return
        except UnknownAPIError as err:
            assert err.code == "ALREADY_CANCELLED" and aid in self.refunded
            event("cancel: already cancelled")
            return
        elapsed = self._elapsed(aid)
        assert elapsed >= CANCEL_LOCK, f"cancel accepted {elapsed:.1f}s after purchase"
        assert aid not in self.refunded and aid not in self.codes
        assert result.refund == self.bought[aid][1]
        self.refunded.add(aid)
        event("cancel: refunded")
        self.refunds += result.refund
        assert result.balance_after == START - self.charges + self.refunds

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), batch=st.booleans())
    def check(self, data: st.DataObject, batch: bool) -> None:
        chosen = data.draw(st.lists(st.sampled_from(self.ids), min_size=1, max_size=5,
                                    unique=True))
        if batch:
            results = self.run(self.client.check_all([*chosen, "1"]))
            assert results[-1].unresolvable
            results = results[:-1]
        else:
            results = [self.run(self.client.check(chosen[0]))]
        for r in results:
            if r.completed:
                assert r.code == self.codes.get(r.activation_id)
            elif r.activation_id in self.refunded:
                assert r.status == "Cancelled"

    @rule()
    def balance(self) -> None:
        bal = self.run(self.client.balance())
        assert bal.balance == START - self.charges + self.refunds

    # --------------------------------------------------------------- invariants

    @invariant()
    def wallet_matches(self) -> None:
        assert self.sim.balance(KEY) == START - self.charges + self.refunds

    @invariant()
    def books_balance_and_refunds_once(self) -> None:
        assert self.sim.invariant_violations() == []
        state: dict[str, Any] = self.sim.state()
        refunds = [e for e in state["ledger"][KEY] if e["kind"] == "refund"]
        assert len({e["activation_id"] for e in refunds}) == len(refunds) == len(self.refunded)
        for e in refunds:
            purchased_at, _ = self.bought[e["activation_id"]]
            assert e["at"] - purchased_at >= CANCEL_LOCK
        assert len(state["activations"]) == len(self.bought)

    @invariant()
    def client_never_caused_a_429(self) -> None:
        assert self.sim.stats.rate_limited.get(KEY, 0) == 0


ClientMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
TestClientStateful = ClientMachine.TestCase
