"""Takeover time: two ``daisybot run`` processes on one PostgreSQL database; the
leader is ``kill -9``-ed, and the time from the kill to the follower's first
``getUpdates`` (as the fake Bot API sees it arrive) is measured, N times.

``python -m tests.bench.takeover [--kills 10] [--poll-interval 0.5] [--graceful]
[--idle-seconds 20] [--database-url postgresql://…]`` (``--idle-seconds``: also what
an idle follower costs, CPU and memory)  (``--graceful``: SIGTERM instead of ``kill -9``;
the time then includes the old leader's orderly stop)

Without ``--database-url`` a throwaway cluster is started (tests/pgcluster.py; or
``$DAISYBOT_TEST_POSTGRES`` is used) and a fresh database made on it. The pieces
(:class:`Fleet`, :func:`health`, :func:`measure_takeover`) are what the leadership
tests and the failover soak use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.simulator import SimulatorServer
from tests import proc as subproc
from tests.bench.common import BOT_TOKEN, OPERATOR_KEY
from tests.bench.harness import BotProcess, TimedFakeTelegram
from tests.proc import free_port

WAIT = 30.0  # safety net for bounded waits (seconds)


async def health(port: int) -> tuple[int | None, dict[str, Any]]:
    """``GET /healthz`` of a bot process: (status, body); (None, {}) when it does not
    answer."""
    try:
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            f"http://127.0.0.1:{port}/healthz"
        ) as response:
            return response.status, await response.json()
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return None, {}


@dataclass
class Member:
    """One ``daisybot run`` of a :class:`Fleet` with its own /healthz port."""

    bot: BotProcess
    health_port: int

    async def role(self) -> str | None:
        if not self.bot.running:
            return None
        _, body = await health(self.health_port)
        role = body.get("role")
        return str(role) if role is not None else None


@dataclass
class Fleet:
    """Several ``daisybot run`` processes on one database (``database_url``, or the
    SQLite file ``db_path``), each with its own HEALTH_PORT (and webhook port when
    ``webhook`` is set: WEBHOOK_URL http://127.0.0.1:<port>/hook, the fake Bot API
    delivers to loopback)."""

    members: list[Member] = field(default_factory=list)

    @classmethod
    def configure(
        cls,
        workdir: Path,
        *,
        size: int,
        telegram_url: str,
        daisysim_url: str,
        database_url: str | None = None,
        db_path: Path | None = None,
        admin_ids: list[int] | None = None,
        env: dict[str, str] | None = None,
        webhook: bool = False,
        token: str = BOT_TOKEN,
        api_key: str = OPERATOR_KEY,
    ) -> Fleet:
        fleet = cls()
        for i in range(size):
            port = free_port()
            extra = {"HEALTH_PORT": str(port), "LEADER_POLL_INTERVAL": "0.5",
                     "DAISYSIM_TIMEOUT_SECONDS": "20"}
            if database_url is not None:
                extra["DATABASE_URL"] = database_url
            if webhook:
                hook = free_port()
                extra |= {"WEBHOOK_URL": f"http://127.0.0.1:{hook}/hook",
                          "WEBHOOK_SECRET": "whsec_fleet-0123456789",
                          "WEBHOOK_LISTEN": "127.0.0.1", "WEBHOOK_PORT": str(hook)}
            extra |= env or {}
            bot = BotProcess.configure(
                workdir / f"bot{i}", telegram_url=telegram_url, daisysim_url=daisysim_url,
                db_path=db_path or workdir / "unused.sqlite3", admin_ids=admin_ids,
                token=token, api_key=api_key, env=extra,
            )
            fleet.members.append(Member(bot, port))
        return fleet

    def start(self) -> None:
        for m in self.members:
            if not m.bot.running:
                m.bot.start()

    async def stop(self) -> None:
        """SIGTERM every member and wait for them all (in threads: the fake Bot API in
        this event loop must keep answering while they shut down)."""
        await asyncio.gather(*(asyncio.to_thread(m.bot.stop) for m in self.members))

    async def roles(self) -> list[str | None]:
        return list(await asyncio.gather(*(m.role() for m in self.members)))

    async def settled(self, limit: float = WAIT) -> tuple[Member, list[Member]]:
        """Wait until every running member answers /healthz and exactly one leads:
        (leader, followers)."""
        deadline = time.monotonic() + limit
        while True:
            roles = await self.roles()
            running = [m for m in self.members if m.bot.running]
            leaders = [m for m, r in zip(self.members, roles, strict=True) if r == "leader"]
            followers = [m for m, r in zip(self.members, roles, strict=True)
                         if r == "follower"]
            if len(leaders) == 1 and len(leaders) + len(followers) == len(running):
                return leaders[0], followers
            if len(leaders) > 1:
                raise AssertionError(f"two leaders at once: {roles}")
            if time.monotonic() > deadline:
                logs = "\n".join(m.bot.log_text()[-3000:] for m in self.members)
                raise TimeoutError(f"no single leader (roles {roles}):\n{logs}")
            await asyncio.sleep(0.05)

    def output(self) -> str:
        return "\n".join(m.bot.log_text() for m in self.members)


async def until(predicate: Callable[[], bool], what: str, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class PollingFakeTelegram(TimedFakeTelegram):
    """Also records when each *long* poll (``getUpdates`` with a timeout > 0) arrives:
    a stopping leader's last ``getUpdates`` (timeout 0, confirming what it fetched) is
    not a new leader's poll."""

    def __init__(self, token: str = BOT_TOKEN, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.long_polls: list[float] = []
        read = self.server._read_params  # the params as the fake reads them, on arrival

        async def read_and_stamp(request: web.Request) -> Any:
            params = await read(request)
            if request.match_info.get("method", "").lower() == "getupdates":
                try:
                    timeout = float(params.get("timeout") or 0)
                except (TypeError, ValueError):
                    timeout = 0.0
                if timeout > 0:
                    self.long_polls.append(time.perf_counter())
            return params

        self.server._read_params = read_and_stamp  # type: ignore[method-assign]

    def first_long_poll_after(self, moment: float) -> float | None:
        return next((t for t in self.long_polls if t >= moment), None)


@asynccontextmanager
async def upstreams(**fake_options: Any) -> AsyncIterator[tuple[PollingFakeTelegram,
                                                              SimulatorServer]]:
    """A timed fake Bot API and a simulator with a funded operator account."""
    async with subproc.upstreams(BOT_TOKEN, OPERATOR_KEY, fake_class=PollingFakeTelegram,
                                 **fake_options) as (fake, server):
        assert isinstance(fake, PollingFakeTelegram)
        yield fake, server


async def kill_leader(fleet: Fleet, fake: PollingFakeTelegram, *, graceful: bool = False
                      ) -> tuple[float, Member, Member]:
    """``kill -9`` the leader (``graceful``: SIGTERM, and wait for its exit); returns
    (seconds from the signal to the next leader's first getUpdates, the stopped member,
    the new leader)."""
    leader, _ = await fleet.settled()
    killed_at = time.perf_counter()
    if graceful:
        await asyncio.to_thread(leader.bot.stop)
    else:
        leader.bot.kill9()
    await until(lambda: fake.first_long_poll_after(killed_at) is not None,
                "the follower's getUpdates")
    first = fake.first_long_poll_after(killed_at)
    assert first is not None
    took = first - killed_at
    new, _ = await fleet.settled()
    return took, leader, new


async def measure_takeover(database_url: str, workdir: Path, *, kills: int = 10,
                           poll_interval: float = 0.5, graceful: bool = False,
                           seed: int = 1) -> list[float]:
    """Seconds from each kill (``graceful``: SIGTERM) to the follower's first getUpdates
    (``kills`` times; the killed process is started again and becomes the follower)."""
    times: list[float] = []
    # A random pause before each kill: the kill must not fall at the same moment of
    # the follower's LEADER_POLL_INTERVAL cadence every time.
    pauses = random.Random(seed)
    async with upstreams() as (fake, server):
        fleet = Fleet.configure(
            workdir, size=2, telegram_url=fake.url, daisysim_url=server.base_url,
            database_url=database_url,
            env={"LEADER_POLL_INTERVAL": str(poll_interval)},
        )
        try:
            fleet.start()
            await fleet.settled()
            await until(lambda: fake.first_get_updates is not None, "the first getUpdates")
            for _ in range(kills):
                await asyncio.sleep(pauses.uniform(0.5, 1.5))
                took, killed, _new = await kill_leader(fleet, fake, graceful=graceful)
                times.append(took)
                killed.bot.start()
                await fleet.settled()
        finally:
            await fleet.stop()
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def follower_cost(database_url: str, workdir: Path, *, seconds: float = 20.0,
                        poll_interval: float = 0.5) -> tuple[float, float, float]:
    """What a follower waiting hot costs: (its CPU share of one core, its RSS in MiB,
    the leader's CPU share) over ``seconds`` of an idle bot."""
    async with upstreams() as (fake, server):
        fleet = Fleet.configure(
            workdir, size=2, telegram_url=fake.url, daisysim_url=server.base_url,
            database_url=database_url,
            env={"LEADER_POLL_INTERVAL": str(poll_interval)},
        )
        try:
            fleet.start()
            leader, [follower] = await fleet.settled()
            await asyncio.sleep(2.0)  # past the start-up
            pids = (follower.bot.pid, leader.bot.pid)
            before = [cpu_seconds(p) for p in pids]
            await asyncio.sleep(seconds)
            after = [cpu_seconds(p) for p in pids]
            rss = follower.bot.rss_mb()
        finally:
            await fleet.stop()
    share = [(a - b) / seconds for a, b in zip(after, before, strict=True)]
    return share[0], rss, share[1]


def _fresh_database(server_url: str) -> str:
    import asyncpg

    from tests.conftest import database_dsn

    name = f"takeover_{int(time.time())}"

    async def create() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return database_dsn(server_url, name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.takeover")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--poll-interval", type=float, default=0.5)
    ap.add_argument("--graceful", action="store_true",
                    help="SIGTERM the leader instead of kill -9")
    ap.add_argument("--idle-seconds", type=float, default=0.0,
                    help="also measure an idle follower's CPU and memory for this long")
    ap.add_argument("--database-url", default=None,
                    help="an empty PostgreSQL database (default: a throwaway cluster's)")
    args = ap.parse_args(argv)
    url = args.database_url
    if url is None:
        from tests.pgcluster import lazy_server_url

        url = _fresh_database(lazy_server_url())
    with tempfile.TemporaryDirectory(prefix="takeover-") as tmp:
        times = asyncio.run(measure_takeover(url, Path(tmp), kills=args.kills,
                                             poll_interval=args.poll_interval,
                                             graceful=args.graceful))
    how = "SIGTERM" if args.graceful else "kill -9"
    print(f"takeover after {how} ({how} -> new leader's first getUpdates), "
          f"{len(times)} kills, LEADER_POLL_INTERVAL={args.poll_interval:g} s:")
    print("  " + ", ".join(f"{t:.2f}" for t in times))
    print(f"  median {statistics.median(times):.2f} s, max {max(times):.2f} s")
    if args.idle_seconds > 0:
        with tempfile.TemporaryDirectory(prefix="takeover-idle-") as tmp:
            cpu, rss, leader_cpu = asyncio.run(follower_cost(
                url, Path(tmp), seconds=args.idle_seconds, poll_interval=args.poll_interval))
        print(f"idle follower over {args.idle_seconds:g} s: {cpu * 100:.2f} % of a core, "
              f"RSS {rss:.0f} MiB (the idle leader: {leader_cpu * 100:.2f} % of a core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
