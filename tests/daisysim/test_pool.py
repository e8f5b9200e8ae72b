"""One connection pool for every key (issue 14, item 4): clients of many keys
share one httpx client (one pool, one SSL context), each request carries its
own key, the sockets stay within the pool's bound and are kept alive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from bot.clock import VirtualClock
from bot.daisysim import DaisySimClient, Pool, Unauthenticated
from bot.daisysim.wire import DEFAULT_KEEPALIVE, DEFAULT_MAX_CONNECTIONS, SHARD_CONNECTIONS
from bot.sandbox.simulator import Simulator
from tests.daisysim.helpers import PeerServer, start_peer_server

KEYS = [f"sk_pool_key_{i:04d}_0123456789abcdef" for i in range(100)]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[PeerServer]:
    sim = Simulator(VirtualClock(), seed=1)
    for key in KEYS:
        sim.add_account(key, "10")
    handle = await start_peer_server(sim)
    try:
        yield handle
    finally:
        await handle.close()


async def test_keys_share_one_pool_and_each_request_carries_its_own_key() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"success": True, "data": {
            "balance": "1.0000", "currency": "USD", "email": "a@example.com"}})

    pool = Pool("http://sim.test/api/v1/server7/", transport=httpx.MockTransport(answer))
    clients = [DaisySimClient(key, pool=pool, clock=VirtualClock()) for key in KEYS[:3]]
    for client in clients:
        await client.balance()
    assert seen == [f"Bearer {key}" for key in KEYS[:3]]
    assert {id(c.pool) for c in clients} == {id(pool)}
    assert len(pool.clients) == 1  # an injected transport: one httpx client over it
    assert all(c.base_url == "http://sim.test/api/v1/server7" for c in clients)
    # The pool's own headers hold no key; no repr shows one.
    assert all("Authorization" not in http.headers for http in pool.clients)
    for text in (repr(pool), repr(clients[0]._wire), repr(clients[0])):
        assert "sk_pool_key" not in text
    # Closing one client leaves the shared pool (and the others) working.
    await clients[0].aclose()
    assert not pool.closed
    await clients[1].balance()
    await pool.aclose()
    assert pool.closed


def test_a_shared_pool_takes_the_transport_and_base_url() -> None:
    pool = Pool("http://sim.test/api")
    with pytest.raises(ValueError, match="base_url"):
        DaisySimClient(KEYS[0], pool=pool, base_url="http://other.test/api")
    with pytest.raises(ValueError, match="transport"):
        DaisySimClient(KEYS[0], pool=pool, transport=httpx.MockTransport(lambda r: None))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Pool("http://sim.test/api", max_connections=0)
    assert DEFAULT_MAX_CONNECTIONS <= 64
    assert DEFAULT_KEEPALIVE > 15.0  # longer than the poll interval


async def test_the_bound_is_spread_over_small_clients_with_one_ssl_context() -> None:
    pool = Pool("https://daisysim.test/api", max_connections=20)
    try:
        limits = [http._transport._pool._max_connections for http in pool.clients]  # type: ignore[attr-defined]
        assert limits == [SHARD_CONNECTIONS, SHARD_CONNECTIONS, 20 - 2 * SHARD_CONNECTIONS]
        contexts = {id(http._transport._pool._ssl_context) for http in pool.clients}  # type: ignore[attr-defined]
        assert len(contexts) == 1
    finally:
        await pool.aclose()


@pytest.mark.parametrize("bound", [8, 20])
async def test_a_hundred_keys_at_once_stay_within_the_socket_bound(
    server: PeerServer, bound: int
) -> None:
    """100 keys asking at the same moment: at most ``max_connections`` sockets
    (one pool per key opened 100), every request answered with its own key's
    balance."""
    pool = Pool(server.base_url, max_connections=bound, timeout=30.0)
    server.sim.add_fault("balance", count=len(KEYS), latency=0.02)  # requests overlap
    clients = [DaisySimClient(key, pool=pool, clock=VirtualClock()) for key in KEYS]
    try:
        results = await asyncio.gather(*(c.balance() for c in clients))
        assert [r.email for r in results] == [f"{key[:8]}@example.com" for key in KEYS]
        assert len(server.peers) == len(KEYS)
        assert 1 <= server.connections <= bound
        # Kept alive: the next round of every key reuses those sockets.
        before = set(server.peers)
        for client in clients:
            await client.balance()
        assert set(server.peers) == before
    finally:
        await pool.aclose()


async def test_own_pool_per_client_is_what_a_pool_replaces(server: PeerServer) -> None:
    """The shape before the fix, for contrast: a client without a shared pool
    opens its own socket, so n keys polled one after the other use n sockets."""
    clients = [DaisySimClient(key, base_url=server.base_url, clock=VirtualClock())
               for key in KEYS[:5]]
    try:
        for client in clients:
            await client.balance()
        assert server.connections == 5
    finally:
        for client in clients:
            await client.aclose()


async def test_the_key_is_not_logged_by_pooled_requests(
    server: PeerServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pool = Pool(server.base_url)
    try:
        await DaisySimClient(KEYS[7], pool=pool, clock=VirtualClock()).balance()
        with pytest.raises(Unauthenticated):
            await DaisySimClient("sk_not_a_known_key_000000000", pool=pool).balance()
    finally:
        await pool.aclose()
    assert KEYS[7] not in caplog.text
    assert "sk_not_a_known_key" not in caplog.text
