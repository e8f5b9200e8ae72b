"""Quotes persisted with an id: Confirm buys by quote id (``buy_quote``), the
engine re-checks owner, lifetime and use server-side, and a quote survives a
restart within its lifetime."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.services.api import (
    ActivationState,
    DuplicateRequest,
    PriceChanged,
    QuoteExpired,
    QuoteNotFound,
)
from bot.services.catalogue import QUOTE_TTL
from tests.services.conftest import ALICE, BOB, Harness
from tests.services.test_lifecycle import MODES, balance, setup


@pytest.mark.parametrize("mode", MODES)
async def test_buy_by_quote_id(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    quote = await eng.quote(ALICE, "sb_wa", None)
    assert quote.id > 0 and quote.pool is not None
    assert quote.expires_at == h.clock.now() + QUOTE_TTL
    act = await eng.buy_quote(ALICE, quote.id, chat_id=ALICE, message_id=7)
    assert act.state is ActivationState.WAITING
    assert act.price == quote.price and act.service_code == "sb_wa"
    assert (act.chat_id, act.message_id) == (ALICE, 7)
    [order] = h.sim.state()["activations"]
    assert str(order["pool"]) == quote.pool  # the quoted pool was bought upstream
    assert await balance(eng, h, mode) == before - quote.price


async def test_someone_elses_quote_is_refused(h: Harness) -> None:
    eng = await setup(h, "operator")
    quote = await eng.quote(ALICE, "Signal", None)
    with pytest.raises(QuoteNotFound):
        await eng.buy_quote(BOB, quote.id)
    with pytest.raises(QuoteNotFound):
        await eng.buy_quote(ALICE, quote.id + 1000)  # no such quote
    assert h.transport.count("/purchase") == 0
    assert await eng.inspect.balance(BOB) == Decimal("10")
    # Alice's quote was not used up by Bob's attempt.
    act = await eng.buy_quote(ALICE, quote.id)
    assert act.user_id == ALICE and act.price == quote.price


@pytest.mark.parametrize("mode", MODES)
async def test_an_expired_quote_is_refused_with_a_fresh_one(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    quote = await eng.quote(ALICE, "Signal", None)
    h.clock.advance(QUOTE_TTL)
    with pytest.raises(QuoteExpired) as info:
        await eng.buy_quote(ALICE, quote.id)
    assert isinstance(info.value, PriceChanged)  # a UI that asks again handles it
    fresh = info.value.quote
    assert fresh is not None and fresh.id != quote.id and fresh.price == quote.price
    assert fresh.expires_at == h.clock.now() + QUOTE_TTL
    assert h.transport.count("/purchase") == 0
    assert await balance(eng, h, mode) == before
    act = await eng.buy_quote(ALICE, fresh.id)  # the fresh one buys
    assert act.price == fresh.price


@pytest.mark.parametrize("mode", MODES)
async def test_a_quote_buys_once(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    quote = await eng.quote(ALICE, "Signal", None)
    first = await eng.buy_quote(ALICE, quote.id)
    with pytest.raises(DuplicateRequest) as info:
        await eng.buy_quote(ALICE, quote.id)
    assert info.value.activation is not None and info.value.activation.id == first.id
    # Even after its lifetime: still the first purchase, never a fresh quote.
    h.clock.advance(QUOTE_TTL + 1)
    with pytest.raises(DuplicateRequest):
        await eng.buy_quote(ALICE, quote.id)
    assert h.transport.count("/purchase") == 1
    assert len(h.sim.state()["activations"]) == 1
    assert await balance(eng, h, mode) == before - quote.price


async def test_a_quote_survives_a_restart(h: Harness) -> None:
    eng = await setup(h, "operator")
    quote = await eng.quote(ALICE, "sb_wa", "3170")
    await eng.close()
    h.engines.remove(eng)
    h.clock.advance(QUOTE_TTL / 2)
    eng = await h.engine("operator")
    act = await eng.buy_quote(ALICE, quote.id)
    assert act.state is ActivationState.WAITING
    assert act.provider_id == "3170" and act.price == quote.price
    assert await eng.inspect.balance(ALICE) == Decimal("10") - quote.price


@pytest.mark.parametrize("mode", MODES)
async def test_a_fresh_price_above_the_quote_is_asked_again(h: Harness, mode: str) -> None:
    eng = await setup(h, mode)
    before = await balance(eng, h, mode)
    quote = await eng.quote(ALICE, "Signal", None)
    h.sim.set_price("Signal", None, quote.price + Decimal("0.25"))
    with pytest.raises(PriceChanged) as info:
        await eng.buy_quote(ALICE, quote.id)
    assert not isinstance(info.value, QuoteExpired)
    fresh = info.value.quote
    assert fresh is not None and fresh.id != quote.id
    assert fresh.price == quote.price + Decimal("0.25")
    assert h.transport.count("/purchase") == 0
    assert await balance(eng, h, mode) == before
    # The quote was not used up: its price is simply no longer available.
    with pytest.raises(PriceChanged):
        await eng.buy_quote(ALICE, quote.id)
    act = await eng.buy_quote(ALICE, fresh.id)
    assert act.price == fresh.price
