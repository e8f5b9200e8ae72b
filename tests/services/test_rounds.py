"""Rounds: one per key, bounded concurrency, slow ones left running (structure,
not timings: the rounds block on events the test controls)."""

from __future__ import annotations

import asyncio

from bot.services.rounds import Rounds


async def test_a_blocked_round_does_not_hold_up_the_others() -> None:
    late: list[str] = []
    rounds = Rounds(concurrency=4, patience=0.05, on_late_done=lambda: late.append("woken"))
    release = asyncio.Event()
    done: list[str] = []

    async def slow() -> None:
        await release.wait()
        done.append("slow")

    async def fast() -> None:
        done.append("fast")

    await rounds.run({"a": slow, "b": fast})
    assert done == ["fast"] and rounds.running("a") and not rounds.running("b")
    await rounds.run({"a": fast})  # a key never gets a second round at once
    assert done == ["fast"] and late == []
    release.set()
    for _ in range(100):
        if late:
            break
        await asyncio.sleep(0)
    assert done == ["fast", "slow"] and late == ["woken"] and not rounds.running("a")


async def test_concurrency_is_bounded_and_close_cancels() -> None:
    rounds = Rounds(concurrency=2, patience=0.05, on_late_done=lambda: None)
    active = 0
    peak = 0
    gate = asyncio.Event()

    async def work() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await gate.wait()
        finally:
            active -= 1

    await rounds.run({k: work for k in range(5)})
    assert peak == 2 and all(rounds.running(k) for k in range(5))
    await rounds.close()
    assert active == 0 and not any(rounds.running(k) for k in range(5))
