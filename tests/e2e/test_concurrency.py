"""One user's slow step never holds up another user; one user's updates stay in order."""

from __future__ import annotations

import asyncio

from telegram import Chat, Message, Update, User

from bot.config import FundingMode
from bot.telegram.updates import FairSlots, PerUserUpdateProcessor
from tests.e2e.conftest import ALICE, BOB, WAIT, GatedTransport, Harness, HarnessFactory
from tests.texts import button, pattern, service_label, text

HELP = pattern("help")  # the /help answer


async def test_a_slow_purchase_does_not_block_other_users(h: Harness) -> None:
    alice, bob = h.user(), h.user(BOB, "Bob")
    await bob.send("/start")
    await bob.wait_for(text("menu_title"), WAIT)
    await alice.send("/buy")
    await alice.wait_for(text("buy_list_title"), WAIT)
    await alice.press(service_label("Signal", "$0.60"))
    confirm = await alice.wait_for(pattern("buy_confirm"), WAIT)
    h.sim.add_fault("purchase", latency=2.0)  # DaisySim takes its time
    alice_press = asyncio.create_task(
        alice.press(pattern("btn_confirm"), message_id=confirm.message_id)
    )
    await alice.wait_for(pattern("buy_buying"), WAIT)  # Alice's purchase is on the wire
    await bob.send("/wallet")
    await bob.wait_for(text("wallet_title"), WAIT)
    assert h.sim_activations() == []  # Bob was served while Alice's purchase was pending
    await alice_press
    number = pattern("order_number")
    await alice.wait_for(
        lambda m: m.message_id == confirm.message_id and number.search(m.text) is not None, WAIT
    )
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
    assert processor._queues == {}


# ------------------------------------------------------------ issue 9.4: floods


async def _spin(times: int = 50) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


async def test_a_users_queued_updates_hold_no_slot_and_the_queue_is_bounded() -> None:
    """Two running slots; user 10's first update blocks, then 100 more of theirs
    arrive: user 20 still runs at once, user 10's queue stays at 1 + 3, and every
    dropped update reaches on_dropped (with the note once per burst)."""
    dropped: list[tuple[int, bool]] = []

    async def on_dropped(update: Update, note: bool) -> None:
        dropped.append((update.update_id, note))

    processor = PerUserUpdateProcessor(2, max_queued_per_user=3, on_dropped=on_dropped)
    log: list[int] = []
    gate = asyncio.Event()

    async def work(update_id: int, slow: bool = False) -> None:
        if slow:
            await gate.wait()
        log.append(update_id)

    tasks = [asyncio.create_task(processor.process_update(_update(1, 10), work(1, True)))]
    for uid in range(2, 102):
        tasks.append(asyncio.create_task(processor.process_update(_update(uid, 10), work(uid))))
        await _spin(2)
        assert processor.queued(10) <= 1 + 3  # the bound holds at every moment
    tasks.append(asyncio.create_task(processor.process_update(_update(500, 20), work(500))))
    await _spin()
    assert log == [500]  # user 20 was served while user 10's first update is blocked
    assert processor.queued(10) == 4
    assert [uid for uid, _ in dropped] == list(range(5, 102))  # 97 dropped, in order
    assert [note for _, note in dropped] == [True] + [False] * 96  # one note per burst
    assert processor.dropped == 97 and processor.notes_sent == 1
    gate.set()
    await asyncio.gather(*tasks)
    assert log == [500, 1, 2, 3, 4]  # the kept ones, in order
    assert processor._queues == {}
    # A new burst gets a new note.
    gate.clear()
    again = [asyncio.create_task(processor.process_update(_update(600, 10), work(600, True)))]
    again += [asyncio.create_task(processor.process_update(_update(600 + i, 10), work(600 + i)))
              for i in range(1, 6)]
    await _spin()
    gate.set()
    await asyncio.gather(*again)
    assert dropped[-2:] == [(604, True), (605, False)]
    assert processor.dropped == 99 and processor.notes_sent == 2


async def test_a_new_user_gets_the_next_free_slot_before_flooding_users() -> None:
    """Issue 10.8: one slot, users 1..5 each have had updates served and wait for the
    slot again; a new user (99) arrives last but is served first, then the others in
    order of how little they were served."""
    processor = PerUserUpdateProcessor(1, max_queued_per_user=10)
    log: list[int] = []
    gate = asyncio.Event()

    async def work(uid: int, slow: bool = False) -> None:
        if slow:
            await gate.wait()
        log.append(uid)

    for user in range(1, 6):  # user N has been served N times
        for _ in range(user):
            await processor.process_update(_update(0, user), work(0))
    log.clear()
    blocker = asyncio.create_task(processor.process_update(_update(1, 50), work(50, True)))
    await _spin()
    waiting = [asyncio.create_task(processor.process_update(_update(user, user), work(user)))
               for user in (5, 3, 4, 1, 2)]
    await _spin()
    newcomer = asyncio.create_task(processor.process_update(_update(9, 99), work(99)))
    await _spin()
    assert log == []  # the one slot is held by user 50
    gate.set()
    await asyncio.gather(blocker, newcomer, *waiting)
    assert log == [50, 99, 1, 2, 3, 4, 5]


async def test_fair_slots_pass_a_cancelled_grant_on() -> None:
    slots = FairSlots(1, clock=lambda: 0.0)
    await slots.acquire(1)
    second = asyncio.create_task(slots.acquire(2))
    third = asyncio.create_task(slots.acquire(3))
    await _spin()
    slots.release()  # granted to 2 (never served, arrived first) ...
    second.cancel()  # ... which is cancelled before it runs: 3 gets the slot
    await asyncio.gather(second, return_exceptions=True)
    await asyncio.wait_for(third, 1.0)
    assert slots.score(2) == 1.0 and slots.score(3) == 1.0


async def test_kept_updates_are_never_dropped() -> None:
    processor = PerUserUpdateProcessor(
        4, max_queued_per_user=0, keep=lambda u: isinstance(u, Update) and u.update_id == 3
    )
    gate = asyncio.Event()
    ran: list[int] = []

    async def work(update_id: int) -> None:
        if update_id == 1:
            await gate.wait()
        ran.append(update_id)

    tasks = [asyncio.create_task(processor.process_update(_update(i, 10), work(i)))
             for i in (1, 2, 3)]
    await _spin()
    gate.set()
    await asyncio.gather(*tasks)
    assert ran == [1, 3] and processor.dropped == 1


async def test_one_users_flood_does_not_delay_another_users_start(
    make_harness: HarnessFactory,
) -> None:
    """Issue 9.4 end to end: Alice's /buy waits on a blocked /apps call while she
    sends 100 /help; Bob's /start is answered meanwhile, Alice's queue stays
    bounded, and every dropped /help is covered by one polite note."""
    from bot.app import MAX_QUEUED_PER_USER
    from bot.telegram.texts import plain

    h = await make_harness(FundingMode.OPERATOR, start=False)
    gate = GatedTransport()
    gate.hold.add("/apps/USA")
    h.daisysim_transport = gate
    await h.start_bot()
    alice, bob = h.user(), h.user(BOB, "Bob")
    note_text = plain("en", "flood_note")
    try:
        await alice.send("/buy")
        await asyncio.wait_for(gate.entered.wait(), WAIT)  # Alice's /apps is on the wire
        for _ in range(100):
            await alice.send("/help")
        await bob.send("/start")
        await bob.wait_for(text("menu_title"), WAIT)
        note = await alice.wait_for(lambda m: m.text == note_text, WAIT)
        assert gate.hold, "Bob was answered while Alice's /apps call was still blocked"
        assert not any(text("buy_list_title") in m.text for m in alice.bot_messages())
        assert not any(HELP.search(m.text) for m in alice.bot_messages())
        processor = h.app.update_processor  # type: ignore[union-attr]
        assert isinstance(processor, PerUserUpdateProcessor)
        assert processor.queued(ALICE) == 1 + MAX_QUEUED_PER_USER
    finally:
        gate.release()  # also when failing: the bot can then stop
    await alice.wait_for(text("buy_list_title"), WAIT)
    # settle() is "nothing happened for 50 ms": on a loaded machine that can come
    # between two answers, so wait for the queued answers themselves (then settle:
    # no more than those come)
    deadline = asyncio.get_running_loop().time() + WAIT
    while (sum(1 for m in alice.bot_messages() if HELP.search(m.text)) < MAX_QUEUED_PER_USER
           and asyncio.get_running_loop().time() < deadline):
        await h.settle()
    await h.settle()
    helps = [m for m in alice.bot_messages() if HELP.search(m.text)]
    notes = [m for m in alice.bot_messages() if m.text == note_text]
    assert len(helps) == MAX_QUEUED_PER_USER  # the queued ones, answered in order after /buy
    assert notes == [note]  # once per burst
    assert processor.dropped == 100 - MAX_QUEUED_PER_USER  # every /help: answered or dropped
    assert len(helps) + processor.dropped == 100
    assert processor.queued(ALICE) == 0
    # Once the queue drained, Alice is served normally again (no note).
    last = max(m.message_id for m in alice.bot_messages())
    await alice.send("/help")
    await alice.wait_for(
        lambda m: m.message_id > last and HELP.search(m.text) is not None, WAIT
    )
    assert len([m for m in alice.bot_messages() if m.text == note_text]) == 1


async def test_a_flood_of_button_presses_is_answered_and_noted_once(h: Harness) -> None:
    """Dropped presses are answered (the spinner stops) with a short toast."""
    from bot.app import MAX_QUEUED_PER_USER
    from bot.telegram.texts import plain

    alice = h.user()
    await alice.send("/start")
    menu = await alice.wait_for(text("menu_title"), WAIT)
    h.sim.add_fault("apps", latency=1.0)  # the first press waits on DaisySim a little
    first = await alice.press_nowait(button("btn_buy"), message_id=menu.message_id)
    queries = [await alice.press_nowait(button("btn_help"), message_id=menu.message_id)
               for _ in range(30)]
    answers = [await h.fake.wait_callback_answer(q, WAIT) for q in [first, *queries]]
    await h.settle()
    toast = plain("en", "flood_toast")
    assert sum(a.text == toast for a in answers) == 30 - MAX_QUEUED_PER_USER
    assert len([m for m in alice.bot_messages() if m.text == plain("en", "flood_note")]) == 1


def _text_update(text: str) -> Update:
    user = User(1, "U", is_bot=False)
    msg = Message(1, None, Chat(1, Chat.PRIVATE), from_user=user, text=text)  # type: ignore[arg-type]
    return Update(1, message=msg)


def test_messages_that_may_carry_a_key_are_never_dropped_in_own_key_mode() -> None:
    from cryptography.fernet import Fernet

    from bot.config import Settings
    from bot.telegram.flood import key_message

    own = Settings(_env_file=None, bot_token="1:x", funding_mode=FundingMode.OWN_KEY,
                   encryption_key=Fernet.generate_key().decode())
    operator = Settings(_env_file=None, bot_token="1:x", funding_mode=FundingMode.OPERATOR,
                        daisysim_api_key="sk_operator_0123456789")
    keep, keep_op = key_message(own), key_message(operator)
    for message in ("/key sk_user_alice_0123456789", "/key", "/key@daisy_bot whatever",
                    "sk_user_alice_0123456789"):
        assert keep(_text_update(message)), message
        assert not keep_op(_text_update(message)), message
    for message in ("/help", "/keyboard", "hello"):
        assert not keep(_text_update(message)), message
