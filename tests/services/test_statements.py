"""Statements per view (issue 14, item 5): the wallet screen costs the same
number of SQL statements whatever the number of ledger entries and orders
(it was one activation read per entry), and what it shows is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

from bot.services.api import ActivationState, RefundReason
from bot.services.engine import Engine
from tests.services.conftest import ADMIN, ALICE, Harness


@asynccontextmanager
async def statements(eng: Engine) -> AsyncIterator[list[str]]:
    """Every SQL statement the engine's connection runs inside the block."""
    seen: list[str] = []
    conn = eng.database
    await conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        await conn.set_trace_callback(None)


async def test_wallet_statements_do_not_grow_with_entries(h: Harness) -> None:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("20"), "top-up")
    first = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="s0")
    async with statements(eng) as few:
        small = await eng.wallet(ALICE)
    assert len(small.ledger) == 2  # the top-up and one charge

    acts = [first]
    for i in range(1, 9):
        acts.append(await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id=f"s{i}"))
    await h.run_for(eng, 200)  # past the cancel lock
    outcome = await eng.cancel(ALICE, acts[-1].id)
    assert outcome.activation.state is ActivationState.REFUNDED
    async with statements(eng) as many:
        big = await eng.wallet(ALICE)
    assert len(big.ledger) == 11  # top-up, 9 charges, 1 refund
    assert len(many) == len(few), many

    # What the screen shows: each order's service name, the refund's reason.
    charges = [e for e in big.ledger if e.kind == "charge"]
    assert len(charges) == 9 and {e.service_name for e in charges} == {"Signal"}
    refund = next(e for e in big.ledger if e.kind == "refund")
    assert refund.activation_id == acts[-1].id and refund.service_name == "Signal"
    assert refund.refund_reason is RefundReason.USER_CANCEL
    top_up = next(e for e in big.ledger if e.kind not in ("charge", "refund"))
    assert top_up.service_name is None and top_up.refund_reason is None
    assert not [s for s in many if "FROM activations WHERE id = " in s]
