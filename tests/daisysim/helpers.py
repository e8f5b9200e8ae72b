"""Test helpers: drive a VirtualClock while a coroutine runs; a simulator that
records the client socket of every request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web

from bot.clock import VirtualClock
from bot.sandbox.simulator import Simulator

T = TypeVar("T")


async def run_virtual(clock: VirtualClock, aw: Awaitable[T], *, limit: float = 3600.0) -> T:
    """Await ``aw``; whenever it (or anything else) sleeps on ``clock``, jump the
    clock to the earliest wake-up. Real I/O in between is left to progress.
    Fails if more than ``limit`` virtual seconds would pass."""
    start = clock.now()
    task = asyncio.ensure_future(aw)
    try:
        while not task.done():
            await asyncio.sleep(0.001)
            nxt = clock.next_wakeup()
            if nxt is not None and not task.done():
                if nxt - start > limit:
                    raise AssertionError(f"more than {limit} virtual seconds would pass")
                clock.set(max(nxt, clock.now()))
    finally:
        if not task.done():
            task.cancel()
    return task.result()


@dataclass
class PeerServer:
    """The simulator on 127.0.0.1, recording the client socket (peer address:
    one per TCP connection) each request came on."""

    sim: Simulator
    runner: web.AppRunner
    port: int
    peers: list[tuple[str, int]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/server7"

    @property
    def connections(self) -> int:
        """Distinct TCP connections the requests so far came on."""
        return len(set(self.peers))

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_peer_server(sim: Simulator) -> PeerServer:
    app = sim.make_app()
    handle: PeerServer | None = None

    @web.middleware
    async def record_peer(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        assert handle is not None and request.transport is not None
        handle.peers.append(tuple(request.transport.get_extra_info("peername")[:2]))
        return await handler(request)

    app.middlewares.insert(0, record_peer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    handle = PeerServer(sim, runner, int(runner.addresses[0][1]))
    return handle
