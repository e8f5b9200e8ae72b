"""Fixtures: an in-process DaisySim simulator on 127.0.0.1 and a client, sharing a
VirtualClock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio

from bot.clock import VirtualClock
from bot.daisysim import DaisySimClient
from bot.sandbox.simulator import Simulator, SimulatorServer, start_simulator

KEY = "sk_test_contract_0123456789abcdef"
START_BALANCE = "20.0000"


@dataclass
class SimEnv:
    clock: VirtualClock
    sim: Simulator
    server: SimulatorServer
    client: DaisySimClient

    def new_client(self, api_key: str = KEY, **kwargs: object) -> DaisySimClient:
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("reconcile_delay", 0.0)
        kwargs.setdefault("rng", random.Random(2))
        kwargs.setdefault("timeout", 5.0)
        return DaisySimClient(api_key, base_url=self.server.base_url, **kwargs)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def env() -> AsyncIterator[SimEnv]:
    clock = VirtualClock()
    sim = Simulator(clock, seed=1)
    sim.add_account(KEY, START_BALANCE, email="user@example.com")
    server = await start_simulator(sim, host="127.0.0.1", port=0)
    client = DaisySimClient(
        KEY,
        base_url=server.base_url,
        clock=clock,
        reconcile_delay=0.0,
        rng=random.Random(1),
        timeout=5.0,
    )
    try:
        yield SimEnv(clock, sim, server, client)
    finally:
        await client.aclose()
        await server.close()
