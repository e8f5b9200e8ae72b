"""Shared pieces of the benchmarks, the soak test and the fuzz test.

* :func:`start_sim` — the DaisySim simulator on 127.0.0.1 (port 0), with a
  counter of requests being served (used to tell when the system is idle);
* :class:`Pump` — drives a :class:`~bot.clock.VirtualClock`: runs a coroutine and,
  whenever everything is parked on the clock, jumps to the next wake-up;
* small statistics / formatting helpers (percentiles, RSS, Markdown tables).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from bot.clock import Clock, VirtualClock
from bot.sandbox.simulator import Simulator

T = TypeVar("T")

OPERATOR_KEY = "sk_bench_operator_0123456789abcdef"
BOT_TOKEN = "4242:bench-token-do-not-log-me"
HOST = "127.0.0.1"


# --------------------------------------------------------------------- simulator


@dataclass
class SimHandle:
    """A running simulator and what the harness needs to know about it."""

    sim: Simulator
    runner: web.AppRunner
    port: int
    in_flight: int = 0
    served: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v1/server7"

    @property
    def clock(self) -> Clock:
        return self.sim.clock

    def check_requests(self, api_key: str = OPERATOR_KEY) -> int:
        """check + check-all requests this account sent (including 429-refused ones)."""
        stats = self.sim.stats
        return stats.count(api_key, "check-all") + stats.count(api_key, "check")

    def rate_limited(self, api_key: str = OPERATOR_KEY) -> int:
        return int(self.sim.stats.rate_limited.get(api_key, 0))

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_sim(
    clock: Clock,
    *,
    balance: str = "100000",
    api_key: str = OPERATOR_KEY,
    port: int = 0,
    middlewares: Sequence[Any] = (),
    **kwargs: Any,
) -> SimHandle:
    """Start a :class:`Simulator` (``kwargs`` go to its constructor) with one funded
    account, on 127.0.0.1. ``middlewares``: extra aiohttp middlewares, run inside
    the request counter and outside the simulator's own envelope handling."""
    sim = Simulator(clock, **kwargs)
    sim.add_account(api_key, balance, email="bench@example.com")
    app = sim.make_app()
    handle: SimHandle | None = None

    @web.middleware
    async def count_in_flight(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        assert handle is not None
        handle.in_flight += 1
        handle.served += 1
        try:
            return await handler(request)
        finally:
            handle.in_flight -= 1

    app.middlewares.insert(0, count_in_flight)
    for i, extra in enumerate(middlewares):
        app.middlewares.insert(1 + i, extra)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    bound = int(runner.addresses[0][1])
    handle = SimHandle(sim, runner, bound)
    return handle


# -------------------------------------------------------------------- virtual time


class Pump:
    """Moves a :class:`VirtualClock` forward when the system is idle.

    "Idle" = no simulator request in progress and no new request for
    ``quiet`` consecutive real-time checks ``tick`` seconds apart. Real I/O
    (HTTP on localhost, SQLite in aiosqlite's thread) keeps running in between,
    so virtual time never jumps while a request is on the wire.
    """

    def __init__(
        self,
        clock: VirtualClock,
        sim: SimHandle | None = None,
        *,
        tick: float = 0.001,
        quiet: int = 3,
        busy: Callable[[], bool] | None = None,
        idle: Callable[[], bool] | None = None,
    ) -> None:
        """``busy``: something known to be working (never jump then); ``idle``: an
        exact test that everything is parked on the clock (settles at once)."""
        self.clock = clock
        self.sim = sim
        self.tick = tick
        self.quiet = quiet
        self.busy = busy
        self.idle = idle

    def _working(self) -> int:
        """Simulator requests being worked on (not those sleeping their ``rtt``)."""
        if self.sim is None:
            return 0
        return self.sim.in_flight - self.sim.sim.on_wire

    def _marker(self) -> tuple[int, int]:
        if self.sim is None:
            return (0, 0)
        return (self._working(), self.sim.served)

    async def settle(self, max_real: float = 30.0) -> None:
        """Wait (real time) until nothing moves."""
        deadline = time.monotonic() + max_real
        if self.idle is not None:
            while True:
                await asyncio.sleep(0)
                if self.idle() and self._working() == 0:
                    return
                await asyncio.sleep(self.tick / 10)
                if time.monotonic() > deadline:
                    raise TimeoutError("the system did not settle")
        stable = 0
        last = self._marker()
        while stable < self.quiet:
            await asyncio.sleep(self.tick)
            now = self._marker()
            busy = now[0] > 0 or (self.busy is not None and self.busy())
            stable = stable + 1 if (now == last and not busy) else 0
            last = now
            if time.monotonic() > deadline:
                raise TimeoutError("the system did not settle")

    async def drive(self, aw: Awaitable[T], *, limit: float = 7200.0) -> T:
        """Await ``aw``; whenever it is blocked on the clock (and the system is
        idle), jump the clock to the earliest wake-up. Fails if more than
        ``limit`` virtual seconds would pass."""
        start = self.clock.now()
        task = asyncio.ensure_future(aw)
        try:
            while not task.done():
                done, _ = await asyncio.wait({task}, timeout=self.tick)
                if done:
                    break
                nxt = self.clock.next_wakeup()
                if nxt is None:
                    continue
                await self.settle()
                if task.done():
                    break
                nxt = self.clock.next_wakeup()
                if nxt is None:
                    continue
                if nxt - start > limit:
                    raise AssertionError(f"more than {limit} virtual seconds would pass")
                self.clock.set(max(nxt, self.clock.now()))
        finally:
            if not task.done():
                task.cancel()
        return task.result()


# ---------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rss_mb(pid: int | None = None) -> float:
    """Resident set size (VmRSS) of a process in MiB, from /proc."""
    path = f"/proc/{pid if pid is not None else 'self'}/status"
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (seconds), from /proc."""
    path = f"/proc/{pid if pid is not None else 'self'}/stat"
    with open(path, encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1
    )


@dataclass
class Row:
    metric: str
    ours: str
    baseline: str
    target: str
    met: bool | None  # None = informational (no target)
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.rows.append(Row(*args, **kwargs))

    def markdown(self) -> str:
        out = ["| metric | ours | baseline (reference flow) | target | met? |",
               "|---|---|---|---|---|"]
        for r in self.rows:
            met = "—" if r.met is None else ("yes" if r.met else "**no**")
            if r.note:
                met = f"{met} ({r.note})"
            out.append(f"| {r.metric} | {r.ours} | {r.baseline} | {r.target} | {met} |")
        if self.notes:
            out.append("")
            out.extend(f"- {n}" for n in self.notes)
        return "\n".join(out)


def fmt(value: float, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
