"""Failover soak (issue 15): ``python -m tests.bench.failover_soak [--ci] [--kills N]
[--purchases N] [--users N] [--fault-rate F] [--seed N] [--keep DIR]``.

Two bot processes (``python -m bot run`` through :mod:`tests.bench.run_bot`, each with
its own /healthz port) share one PostgreSQL database (a throwaway cluster,
tests/pgcluster.py, or ``$DAISYBOT_TEST_POSTGRES``). One leads (it holds the advisory
lock and long-polls the fake Bot API); the other waits hot. The DaisySim simulator and
the fake Bot API run in this process, as in :mod:`tests.bench.soak`, whose users,
kill points and invariant checks this module reuses by import: users buy numbers
through the chat (codes arrive, some never do: auto-cancel refunds; some users press
Cancel & refund; some top up with Telegram Stars), and the killer SIGKILLs the current
LEADER at a chosen point (while the simulator handles a purchase, a poll or a cancel,
right after an OTP message went out, right after a pre-checkout answer, or at a random
moment) and restarts it; it comes back as the follower while the survivor takes over.
One kill kind ("fence") does not kill the leader but terminates its database
connection (``pg_terminate_backend``): the leader must exit at once with status 75
(and is restarted, as Docker's restart policy would).

Each takeover is timed: kill → the survivor's first getUpdates, and kill → the first
update it handled (its first answer to a user); and each code's latency, from its due
time upstream to its push (reported: a stalled leader shows there). At the end every
activation is drained to a final state and the database (snapshotted into a SQLite file so that
:func:`tests.bench.soak.verify` reads it unchanged), the chat transcripts and the
simulator's state are compared: 0 lost codes, 0 codes pushed twice, 0 double refunds
(bot ledger and upstream), 0 double purchases (every upstream order has exactly one
bot order, no request id twice), every activation final, wallets exact to the cent,
every Stars payment credited once; and the leadership itself: no getUpdates conflict
between two live processes, never two processes saying "leader" at once, every
takeover within ``--takeover-limit`` seconds, no exit we did not cause.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import ClientSession, ClientTimeout, web

from bot.clock import SystemClock
from tests.bench import soak
from tests.bench.common import start_sim
from tests.bench.failover_db import (
    code_latencies,
    fence_leader,
    fresh_database,
    open_work,
    populate_pg,
    snapshot,
    verify_failover,
)
from tests.bench.failover_nodes import BotPair, Node, peer_pid
from tests.bench.harness import BotProcess
from tests.proc import free_port

FENCE_EXIT = 75  # the leader lost its database connection (bot.leadership)
SLOW_CODE_SECONDS = 15.0  # a code pushed later than this after it was due (reported)
ANSWERS = frozenset({"answerCallbackQuery", "sendMessage", "editMessageText"})


@dataclass(frozen=True)
class FailoverConfig:
    soak: soak.SoakConfig  # users, purchases, timings, faults (tests.bench.soak)
    kills: int = 12
    kill_kinds: tuple[str, ...] = ("purchase", "push", "poll", "fence", "cancel", "push",
                                   "topup", "random")
    leader_poll_interval: float = 0.5  # LEADER_POLL_INTERVAL of both bots
    takeover_limit: float = 10.0  # a takeover slower than this is a failure
    health_every: float = 0.5  # the monitor's /healthz sampling period


FULL = FailoverConfig(soak=replace(soak.SoakConfig(), purchases=100, kills=12))
CI = FailoverConfig(
    soak=replace(
        soak.CI, purchases=10, kills=4, users=4, fault_rate=0.05, late_weight=0,
        telegram_storms=False, topups=2, kill_gap=(0.5, 1.5), deadline=90.0,
        give_up=10.0, window=18.0, auto_sms=(1.0, 8.0)),
    kills=4, kill_kinds=("purchase", "push", "fence", "poll"),
)


@dataclass
class FailoverReport(soak.Report):
    takeovers: list[float] = field(default_factory=list)  # kill → survivor's getUpdates
    first_answers: list[float] = field(default_factory=list)  # kill → first update handled
    double_refunds: int = 0
    poll_conflicts: int = 0  # a live poller got 409: two processes polled at once
    two_leaders: int = 0  # health samples where both processes said "leader"
    slow_takeovers: int = 0
    fences: int = 0
    fenced_overlaps: int = 0  # informational: a fenced leader's last poll was superseded
    code_latencies: list[float] = field(default_factory=list)  # code due → pushed (s)

    EXTRA_INVARIANTS: ClassVar[tuple[str, ...]] = (
        "double_refunds", "poll_conflicts", "two_leaders", "slow_takeovers")

    @property
    def ok(self) -> bool:
        return super().ok and all(getattr(self, n) == 0 for n in self.EXTRA_INVARIANTS)

    def takeover_line(self) -> str:
        def stats(values: list[float]) -> str:
            if not values:
                return "none"
            return (f"median {statistics.median(values):.2f} s, max {max(values):.2f} s "
                    f"({len(values)})")

        slow = sum(1 for v in self.code_latencies if v > SLOW_CODE_SECONDS)
        return (f"takeover (kill → survivor's first getUpdates): {stats(self.takeovers)}\n"
                f"takeover (kill → first update handled):      {stats(self.first_answers)}\n"
                f"code latency (due upstream → pushed):        {stats(self.code_latencies)}; "
                f"over {SLOW_CODE_SECONDS:.0f} s: {slow}")

    def render(self) -> str:
        lines = super().render().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("=>"))
        extra = [
            f"double refunds:        {self.double_refunds}",
            f"getUpdates conflicts:  {self.poll_conflicts}",
            f"two leaders at once:   {self.two_leaders}",
            f"slow takeovers:        {self.slow_takeovers}",
        ]
        head = [self.takeover_line(), f"connection kills (fence, exit {FENCE_EXIT}): "
                                      f"{self.fences}   a fenced leader's last poll "
                                      f"superseded: {self.fenced_overlaps}"]
        return "\n".join(head + lines[:at] + extra + lines[at:])


# -------------------------------------------------------------------- fake Bot API


class FailoverFake(soak.PushKillFake):
    """:class:`~tests.bench.soak.PushKillFake` that times takeovers and counts
    getUpdates conflicts between live pollers (a poll superseded on a dead process's
    closed connection is the expected end of a kill, not a conflict)."""

    report: FailoverReport | None = None
    killed_at: float | None = None  # perf_counter of the last kill, until taken over
    polled_at: float | None = None  # the survivor's first getUpdates after it
    taken: asyncio.Event | None = None  # set with polled_at
    answered = False  # the first update after the takeover was handled

    def kill_started(self) -> None:
        self.killed_at, self.polled_at = time.perf_counter(), None
        self.answered = False
        if self.taken is None:
            self.taken = asyncio.Event()
        self.taken.clear()

    victim_pid: int | None = None  # the process killed (or fenced) last
    live_pids: Callable[[], list[int]] = staticmethod(lambda: [])

    def from_survivor(self, request: web.Request) -> bool:
        """The request came from a process other than the victim (the victim may
        still send a request it had under way, and a fenced leader lives on a moment)."""
        transport = request.transport
        if transport is None:
            return False
        peer, own = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        if not peer or not own:
            return False
        pids = [p for p in self.live_pids() if p != self.victim_pid]
        return peer_pid(int(peer[1]), int(own[1]), pids) is not None

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info.get("method", "")
        if method.lower() == "getupdates":
            if (self.killed_at is not None and self.polled_at is None
                    and self.from_survivor(request)):
                self.polled_at = time.perf_counter()
                if self.taken is not None:
                    self.taken.set()
                if self.report is not None:
                    self.report.takeovers.append(self.polled_at - self.killed_at)
            response = await super()._handle(request)
            transport = request.transport
            alive = transport is not None and not transport.is_closing()
            if response.status == 409 and alive and self.report is not None:
                if self.from_survivor(request):
                    self.report.problem("poll_conflicts", "a live poller got 409 Conflict "
                                                          f"({len(self.report.takeovers)} "
                                                          "takeovers so far)")
                else:  # the fenced leader's poll, superseded before it exited
                    self.report.fenced_overlaps += 1
            return response
        response = await super()._handle(request)
        if (self.polled_at is not None and self.killed_at is not None and not self.answered
                and method in ANSWERS and self.from_survivor(request)):
            self.answered = True
            if self.report is not None:
                self.report.first_answers.append(time.perf_counter() - self.killed_at)
        return response


class LeaderKiller(soak.Killer):
    """:class:`~tests.bench.soak.Killer` aimed at whichever process leads. A "fence"
    kill terminates the leader's database connection instead of the process."""

    def __init__(self, pair: BotPair, fake: FailoverFake, report: FailoverReport,
                 fence: Callable[[], Awaitable[bool]]) -> None:
        super().__init__(pair.nodes[0].proc, report)
        self.pair = pair
        self.fake = fake
        self.fence_fn = fence
        self.fence_next = False
        self.victim: Node | None = None
        self.fence_tasks: set[asyncio.Task[None]] = set()

    def kill_now(self, kind: str) -> None:
        target = self.pair.leader()
        if target is not None and target.proc.running and self.victim is None:
            self.victim = target
            self.fake.victim_pid = target.proc.pid
            self.fake.kill_started()
            if self.fence_next:
                target.expected_exit = FENCE_EXIT
                task = asyncio.get_running_loop().create_task(self._fence(kind))
                self.fence_tasks.add(task)
                task.add_done_callback(self.fence_tasks.discard)
            else:
                target.expected_exit = -signal.SIGKILL
                os.kill(target.proc.pid, signal.SIGKILL)
                self.report.kills[kind] += 1
        self.armed = None
        self.killed.set()

    async def _fence(self, kind: str) -> None:
        if await self.fence_fn():
            self.report.kills[f"fence: {kind}"] += 1
            assert isinstance(self.report, FailoverReport)
            self.report.fences += 1


# ---------------------------------------------------------------------- the killer


async def strike(kind: str, killer: LeaderKiller, fake: FailoverFake, sh: soak.Shared) -> None:
    """Arm one kill of ``kind`` (as :func:`tests.bench.soak.supervise` does) and wait
    until it landed, or kill at a random moment when its point did not come in time."""
    cfg = sh.cfg
    killer.killed.clear()
    if kind == "random":
        killer.kill_now("random moment")
    elif kind == "topup":
        fake.topup_armed = sh.topup_kill = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(killer.killed.wait(), 3 * cfg.wait)
        sh.topup_kill = False
        if fake.topup_armed:
            fake.topup_armed = False
            killer.kill_now("random moment (no top-up in time)")
    elif kind == "push":
        fake.armed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(killer.killed.wait(), 2 * cfg.wait)
        if fake.armed:
            fake.armed = False
            killer.kill_now("random moment (no OTP push in time)")
    else:  # purchase / poll / cancel; "fence": its connection, mid-purchase
        fence = kind == "fence"
        killer.fence_next = fence
        target = "purchase" if fence else kind
        try:
            for point in (target, "poll"):  # polls go on while anything is waiting
                killer.arm(point, sh.rng.choice(("before", "after")))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(killer.killed.wait(), cfg.wait)
                if killer.killed.is_set():
                    break
            if not killer.killed.is_set():
                killer.kill_now(f"random moment (no {target} in time)")
        finally:
            killer.disarm()
    if killer.fence_tasks:
        await asyncio.gather(*killer.fence_tasks, return_exceptions=True)
    killer.fence_next = False


async def supervise(pair: BotPair, fake: FailoverFake, killer: LeaderKiller,
                    sh: soak.Shared, fcfg: FailoverConfig) -> None:
    """Kill the leader ``kills`` times; after each kill wait for the survivor's
    takeover, then restart the victim and wait until it is a healthy follower."""
    report = fcfg_report(sh)
    done = 0
    while done < fcfg.kills and not sh.stop.is_set():
        await asyncio.sleep(sh.rng.uniform(*sh.cfg.kill_gap))
        await pair.sample_all()
        if pair.leader() is None:
            continue
        kind = fcfg.kill_kinds[done % len(fcfg.kill_kinds)]
        await strike(kind, killer, fake, sh)
        victim = killer.victim
        if victim is None:
            continue
        expected = victim.expected_exit
        limit = fcfg.takeover_limit * 3
        try:
            code = await asyncio.to_thread(victim.proc.proc.wait, limit)  # type: ignore[union-attr]
        except Exception:
            report.problem("crashes", f"{victim.name} still runs {limit:.0f} s after a "
                                      f"{'lost connection' if expected == FENCE_EXIT else 'kill'}")
            await asyncio.to_thread(victim.proc.kill9)
            code = expected
        if code != expected:
            report.problem("crashes", f"{victim.name} exited {code}, expected {expected}")
        if fake.taken is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fake.taken.wait(), limit)
        if fake.polled_at is None or fake.killed_at is None:
            report.problem("slow_takeovers", f"no takeover within {limit:.0f} s of kill {done + 1}")
        elif fake.polled_at - fake.killed_at > fcfg.takeover_limit:
            report.problem("slow_takeovers",
                           f"takeover took {fake.polled_at - fake.killed_at:.1f} s")
        await asyncio.sleep(sh.rng.uniform(0.0, 1.0))
        victim.expected_exit = None
        victim.proc.start()  # like Docker's restart policy: back as the follower
        report.restarts += 1
        await pair.wait_role(victim, "follower")
        for other in pair.nodes:
            if other is not victim:
                await pair.wait_role(other, "leader")
        killer.victim = None
        done += 1
    sh.kills_done = True


def fcfg_report(sh: soak.Shared) -> FailoverReport:
    assert isinstance(sh.report, FailoverReport)
    return sh.report


async def revive(pair: BotPair, report: FailoverReport) -> None:
    """Restart any process that exited without our doing (a crash)."""
    for n in pair.nodes:
        if not n.proc.running and n.expected_exit is None:
            code = n.proc.proc.returncode if n.proc.proc is not None else None
            report.problem("crashes", f"{n.name} exited with {code}")
            n.proc.start()
            report.restarts += 1


async def settle(pair: BotPair, url: str, sh: soak.Shared, fake: FailoverFake,
                 say: Callable[[str], None] | None = None) -> None:
    """Wait until every activation is final and every event delivered."""
    cfg = sh.cfg
    next_say = time.monotonic() + 5.0
    deadline = time.monotonic() + 2 * cfg.give_up + cfg.window + cfg.late[1] + 240.0
    quiet_since: float | None = None
    report = fcfg_report(sh)
    while time.monotonic() < deadline:
        await revive(pair, report)
        busy = True
        with contextlib.suppress(Exception):
            left = await open_work(url, sh, fake)
            busy = bool(left)
            if busy and say is not None and time.monotonic() >= next_say:
                say(f"failover soak: waiting for {soak._counts(left)}")
                next_say = time.monotonic() + 5.0
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:
            return
        await asyncio.sleep(0.25)


# ----------------------------------------------------------------------------- run


async def run_failover_soak(fcfg: FailoverConfig, database_url: str, *,
                            log: Callable[[str], None] | None = None,
                            keep_dir: Path | None = None) -> FailoverReport:
    """The soak on ``database_url`` (an empty PostgreSQL database)."""
    from storage.leader import LEADER_LOCK_KEY

    cfg = fcfg.soak
    report = FailoverReport()
    started = time.monotonic()
    clock_offset = time.time() - time.perf_counter()  # the fake's stamps → wall clock
    say = log or (lambda _text: None)
    rng = random.Random(cfg.seed)
    budget = 60 if cfg.fast_budgets else None
    with soak.simulator_budgets(budget), tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        work = keep_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        holder: dict[str, soak.Killer] = {}
        nodes: list[Node] = []

        @web.middleware
        async def hook(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                       ) -> web.StreamResponse:
            killer = holder.get("k")
            if killer is None:
                return await handler(request)
            return await killer.middleware()(request, handler)

        sim = await start_sim(
            SystemClock(), balance=str(soak.SIM_BALANCE), middlewares=[hook],
            cancel_lock=cfg.cancel_lock, window=cfg.window, auto_sms=cfg.auto_sms,
            auto_sms_ratio=cfg.auto_sms_ratio, seed=cfg.seed,
        )
        soak.count_faults(sim, report)
        fake = FailoverFake()
        fake.report = report
        fake.live_pids = lambda: [n.proc.pid for n in nodes if n.proc.running]
        await fake.start()
        await populate_pg(database_url, users=cfg.users, credit=soak.USER_CREDIT,
                          now=sim.sim.clock.now())
        extra = {
            "CANCEL_LOCK_SECONDS": str(cfg.cancel_lock),
            "GIVE_UP_MINUTES": repr(cfg.give_up / 60.0),
            "POLL_INTERVAL_SECONDS": str(cfg.poll_interval),
            "DAISYSIM_TIMEOUT_SECONDS": "5",
            "TOPUP_RECONCILE_SECONDS": "10",
            "DATABASE_URL": database_url,
            "LEADER_POLL_INTERVAL": str(fcfg.leader_poll_interval),
        }
        for i in (1, 2):
            folder = work / f"bot{i}"
            port = free_port()
            proc = BotProcess.configure(
                folder, telegram_url=fake.url, daisysim_url=sim.base_url,
                db_path=folder / "unused.sqlite3", admin_ids=[soak.ADMIN_ID],
                env={**extra, "HEALTH_PORT": str(port)}, budget_per_minute=budget)
            nodes.append(Node(f"bot{i}", proc, port))
        pair = BotPair(nodes, report)
        killer = LeaderKiller(pair, fake, report,
                              lambda: fence_leader(database_url, LEADER_LOCK_KEY))
        holder["k"] = killer
        fake.killer = killer
        sh = soak.Shared(cfg, sim, report, rng)
        stop_monitor = asyncio.Event()
        monitor: asyncio.Future[None] | None = None
        pair.session = ClientSession(timeout=ClientTimeout(total=2.0))
        try:
            nodes[0].proc.start()
            await pair.wait_role(nodes[0], "leader")
            nodes[1].proc.start()
            await pair.wait_role(nodes[1], "follower")
            monitor = asyncio.ensure_future(pair.monitor(fcfg.health_every, stop_monitor))
            kinds = ("error", "latency", "drop", "trickle") + ("late",) * cfg.late_weight
            sim.sim.set_random_faults(cfg.fault_rate, seed=cfg.seed, kinds=kinds,
                                      trickle=cfg.trickle, late=cfg.late)
            users = [fake.user(soak.FIRST_USER + i, first_name=f"User{i}")
                     for i in range(cfg.users)]
            cancelers = set(rng.sample(range(cfg.users), round(cfg.users * cfg.cancel_ratio)))
            say(f"failover soak: {cfg.users} users, {len(cancelers)} cancel; target "
                f"{cfg.purchases} purchases, {fcfg.kills} leader kills")
            tasks = [asyncio.ensure_future(soak.user_loop(u, sh, i in cancelers))
                     for i, u in enumerate(users)]
            sup = asyncio.ensure_future(supervise(pair, fake, killer, sh, fcfg))
            storms = (asyncio.ensure_future(soak.telegram_storms(fake, users, sh))
                      if cfg.telegram_storms else None)
            deadline = started + cfg.deadline
            while time.monotonic() < deadline:
                if all(t.done() for t in tasks) and sup.done():
                    break
                if sup.done() and sup.exception() is not None:
                    raise sup.exception()  # type: ignore[misc]
                await asyncio.sleep(0.2)
            sh.stop.set()
            if storms is not None:
                storms.cancel()
                await asyncio.gather(storms, return_exceptions=True)
            fake.clear_injected()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            sup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sup
            killer.disarm()
            fake.armed = fake.topup_armed = False
            say(f"failover soak: buying done after {time.monotonic() - started:.0f} s "
                f"({len(sim.sim.core.activations)} upstream activations, "
                f"{sum(report.kills.values())} kills); settling")
            sim.sim.clear_faults()
            for n in nodes:  # a victim the cancelled supervisor left down
                if not n.proc.running:
                    await asyncio.to_thread(n.proc.kill9)
                    n.expected_exit = None
                    n.proc.start()
                    report.restarts += 1
            await settle(pair, database_url, sh, fake, say)
            say(f"failover soak: settled after {time.monotonic() - started:.0f} s")
            for t in list(sh.cancel_tasks):
                t.cancel()
        finally:
            stop_monitor.set()
            if monitor is not None and not monitor.done():
                monitor.cancel()
                await asyncio.gather(monitor, return_exceptions=True)
            await pair.sample_all()
            await pair.session.close()
            # the follower first: stopping the leader first would hand over again
            order = sorted(nodes, key=lambda n: n.role == "leader")
            codes = {n.name: await asyncio.to_thread(n.proc.stop) for n in order}
        for name, code in codes.items():
            if code not in (0, None):
                report.problem("crashes", f"{name}: graceful stop ended with {code}")
        snap = work / "snapshot.sqlite3"
        with contextlib.suppress(FileNotFoundError):
            snap.unlink()
        await snapshot(database_url, snap)
        soak.verify(snap, sim, fake, report, "\n".join(n.proc.log_text() for n in nodes))
        verify_failover(snap, sim, report)
        report.code_latencies = code_latencies(snap, sim, fake, clock_offset)
        errors = [line for n in nodes for line in n.proc.log_text().splitlines()
                  if " ERROR " in line]
        report.error_lines = len(errors)
        if errors:
            say(f"failover soak: {len(errors)} ERROR lines in the bot logs, e.g. "
                f"{errors[0][:300]}")
        await fake.close()
        await sim.close()
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.failover_soak",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ci", action="store_true", help="the CI variant (a few kills, ~90 s)")
    ap.add_argument("--kills", type=int, default=None)
    ap.add_argument("--purchases", type=int, default=None)
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--fault-rate", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--takeover-limit", type=float, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep the bots' files here")
    args = ap.parse_args(argv)
    fcfg = CI if args.ci else FULL
    base: dict[str, Any] = {"seed": args.seed}
    for name in ("purchases", "users", "fault_rate"):
        if getattr(args, name) is not None:
            base[name] = getattr(args, name)
    fcfg = replace(fcfg, soak=replace(fcfg.soak, **base))
    if args.kills is not None:
        fcfg = replace(fcfg, kills=args.kills)
    if args.takeover_limit is not None:
        fcfg = replace(fcfg, takeover_limit=args.takeover_limit)
    say = lambda t: print(t, file=sys.stderr, flush=True)  # noqa: E731
    from tests.pgcluster import start_cluster

    cluster = None
    server = os.environ.get("DAISYBOT_TEST_POSTGRES")
    if not server:
        cluster = start_cluster()
        server = cluster.url
    try:
        url = asyncio.run(fresh_database(server, f"failover_{os.getpid()}"))
        report = asyncio.run(run_failover_soak(fcfg, url, log=say, keep_dir=args.keep))
    finally:
        if cluster is not None:
            cluster.stop()
    print(report.render())
    return 0 if report.ok and sum(report.kills.values()) >= fcfg.kills else 1


if __name__ == "__main__":
    raise SystemExit(main())
