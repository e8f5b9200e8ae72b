"""SQL statements per update on the common paths (issue 14, item 5), counted on
the engine's connection while the real PTB app answers: a first /start, a
second one, a menu press, /wallet. Each count is a small constant: the gate
registers a user once per process, in one statement; the wallet does not read
an order per ledger entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.services.engine import Engine
from tests.e2e.conftest import WAIT, Harness
from tests.texts import button, pattern, service_button, text


@asynccontextmanager
async def statements(h: Harness) -> AsyncIterator[list[str]]:
    engine = h.engine
    assert isinstance(engine, Engine)
    seen: list[str] = []
    conn = engine.database
    await h.settle()  # what earlier updates left running is not counted
    await conn.set_trace_callback(seen.append)
    try:
        yield seen
        await h.settle()
    finally:
        await conn.set_trace_callback(None)


def _tables(seen: list[str]) -> list[str]:
    return [s.split(" WHERE ")[0] for s in seen]


async def test_statements_per_update_on_common_paths(h: Harness) -> None:
    bob = h.user(2, "Bob")
    async with statements(h) as first_start:
        await bob.send("/start")
        menu = await bob.wait_for(text("menu_title"), WAIT)
    # A new user: registered (and their language read back) in one statement.
    assert len(first_start) == 1 and first_start[0].startswith("INSERT INTO users")
    async with statements(h) as again:
        await bob.send("/start")
        await bob.wait_for(lambda m: m.message_id > menu.message_id, WAIT)
    assert again == []  # known to this process: nothing to read
    async with statements(h) as press:
        await bob.press(button("btn_wallet"), message_id=menu.message_id)
        shown = await bob.wait_for(pattern("wallet_title"), WAIT)
    # Open orders + spent this month, the balance, the ledger with its orders;
    # the operator account's row once per process.
    assert len(press) <= 4, _tables(press)
    async with statements(h) as home:
        await bob.press(button("btn_home"), message_id=shown.message_id)
        await bob.wait_for(text("menu_title"), WAIT)
    assert home == []  # a menu press: the menu needs nothing from the database
    async with statements(h) as wallet:
        await bob.send("/wallet")
        await bob.wait_for(lambda m: m.message_id > shown.message_id, WAIT)
    assert len(wallet) == 3, _tables(wallet)

    # Alice's wallet after two orders costs what it cost before them.
    alice = h.user()
    await alice.send("/start")
    await alice.wait_for(text("menu_title"), WAIT)
    async with statements(h) as before:
        await alice.send("/wallet")
        await alice.wait_for(pattern("wallet_title"), WAIT)
    for _ in range(2):
        await h.buy(alice, service_button("Signal"))
    async with statements(h) as after:
        await alice.send("/wallet")
        await alice.wait_for(lambda m: pattern("wallet_title").search(m.text) is not None
                             and "Signal" in m.text, WAIT)
    assert len(after) == len(before) == 3, _tables(after)
