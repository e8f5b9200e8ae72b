"""Own-key scale (issue 14, item 4): every account's client goes through the
engine's one connection pool (the real network transport, as shipped), so many
keys polled in one run use a bounded, kept-alive set of sockets; the pool is
closed with the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest_asyncio

from bot.clock import VirtualClock
from bot.config import Settings
from bot.sandbox.simulator import Simulator
from bot.services.api import ActivationState
from bot.services.engine import Engine
from tests.daisysim.helpers import PeerServer, start_peer_server
from tests.services.conftest import FERNET

USERS = 12
KEYS = [f"sk_shared_pool_{i:03d}_0123456789abcdef" for i in range(USERS)]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[PeerServer]:
    sim = Simulator(VirtualClock(), seed=3)
    for key in KEYS:
        sim.add_account(key, "20")
    handle = await start_peer_server(sim)
    try:
        yield handle
    finally:
        await handle.close()
        assert sim.invariant_violations() == []


def settings(server: PeerServer, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "funding_mode": "own_key",
        "daisysim_base_url": server.base_url,
        "encryption_key": FERNET,
        "database_path": str(tmp_path / "bot.sqlite3"),
        "daisysim_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def run_for(eng: Engine, clock: VirtualClock, seconds: float) -> None:
    end = clock.now() + seconds
    await eng.run_due()
    while (due := eng.next_due()) is not None and due <= end:
        clock.set(max(due, clock.now()))
        await eng.run_due()
    clock.set(end)
    await eng.run_due()


async def test_many_own_keys_share_one_pool_of_few_sockets(
    server: PeerServer, tmp_path: Path
) -> None:
    clock = server.sim.clock
    assert isinstance(clock, VirtualClock)
    eng = Engine(settings(server, tmp_path, daisysim_max_connections=4), clock=clock)
    await eng.start()
    try:
        acts = []
        for user, key in enumerate(KEYS, start=1):
            await eng.link_key(user, key)
            acts.append(await eng.buy(user, "Signal", None, Decimal("1"), request_id=f"b{user}"))
        for act in acts:
            assert act.remote_id is not None
            server.sim.deliver_sms(act.remote_id, "424242")
        await run_for(eng, clock, 60)
        for user, act in enumerate(acts, start=1):
            assert (await eng.get_activation(user, act.id)).state is ActivationState.COMPLETED
        pool = eng.pool()
        clients = eng.inspect.clients()
        assert len(clients) == USERS
        assert {id(c.pool) for c in clients} == {id(pool)}
        assert pool.max_connections == 4
        assert pool.keepalive > eng.settings.poll_interval_seconds
        # 12 keys: /balance at linking, /apps, /purchase and check-all each; one
        # socket per key before the shared pool, now at most the pool's bound.
        assert len(server.peers) >= 3 * USERS
        assert 1 <= server.connections <= 4
    finally:
        await eng.close()
    assert pool.closed


async def test_settings_bound_the_pool(server: PeerServer, tmp_path: Path) -> None:
    import pydantic

    for bad in ({"daisysim_max_connections": 65}, {"daisysim_max_connections": 0},
                {"daisysim_keepalive_seconds": 0}):
        try:
            settings(server, tmp_path, **bad)
        except pydantic.ValidationError:
            continue
        raise AssertionError(f"accepted {bad}")
    default = Settings(_env_file=None)
    assert default.daisysim_max_connections <= 64
    assert default.daisysim_keepalive_seconds > default.poll_interval_seconds
