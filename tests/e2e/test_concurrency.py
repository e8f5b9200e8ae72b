"""One user's slow step never holds up another user; one user's updates stay in order."""

from __future__ import annotations

import asyncio
import re

from telegram import Chat, Message, Update, User

from bot.ui.updates import PerUserUpdateProcessor
from tests.e2e.conftest import BOB, WAIT, Harness


async def test_a_slow_purchase_does_not_block_other_users(h: Harness) -> None:
    alice, bob = h.user(), h.user(BOB, "Bob")
    await bob.send("/start")
    await bob.wait_for("What would you like to do?", WAIT)
    await alice.send("/buy")
    await alice.wait_for("Choose a service", WAIT)
    await alice.press("Signal · $0.60")
    confirm = await alice.wait_for("Confirm your purchase", WAIT)
    h.sim.add_fault("purchase", latency=2.0)  # DaisySim takes its time
    alice_press = asyncio.create_task(
        alice.press(re.compile("^✅ Confirm"), message_id=confirm.message_id)
    )
    await alice.wait_for(lambda m: "Buying" in m.text, WAIT)  # Alice's purchase is on the wire
    await bob.send("/wallet")
    await bob.wait_for("Wallet", WAIT)
    assert h.sim_activations() == []  # Bob was served while Alice's purchase was pending
    await alice_press
    await alice.wait_for(lambda m: m.message_id == confirm.message_id and "Number:" in m.text,
                         WAIT)
    assert len(h.sim_activations()) == 1


def _update(update_id: int, user_id: int) -> Update:
    user = User(user_id, "U", is_bot=False)
    chat = Chat(user_id, Chat.PRIVATE)
    msg = Message(update_id, None, chat, from_user=user, text="x")  # type: ignore[arg-type]
    return Update(update_id, message=msg)


async def test_processor_keeps_each_users_order_and_runs_users_concurrently() -> None:
    processor = PerUserUpdateProcessor(16)
    log: list[tuple[int, str]] = []
    gate = asyncio.Event()

    async def work(update_id: int, slow: bool) -> None:
        log.append((update_id, "start"))
        if slow:
            await gate.wait()
        log.append((update_id, "end"))

    tasks = [
        asyncio.create_task(processor.process_update(_update(1, 10), work(1, True))),
        asyncio.create_task(processor.process_update(_update(2, 10), work(2, False))),
        asyncio.create_task(processor.process_update(_update(3, 20), work(3, False))),
    ]
    for _ in range(20):
        await asyncio.sleep(0)
    # user 20 finished while user 10's first update is still blocked; user 10's
    # second update has not even started
    assert (3, "end") in log and (2, "start") not in log and (1, "end") not in log
    gate.set()
    await asyncio.gather(*tasks)
    assert log.index((1, "end")) < log.index((2, "start"))
    assert processor._locks == {} and processor._users == {}
