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
update it handled (its first answer to a user). At the end every activation is drained
to a final state and the database (snapshotted into a SQLite file so that
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
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import ClientSession, ClientTimeout, web

from bot.clock import SystemClock
from tests.bench import soak
from tests.bench.common import OPERATOR_KEY, SimHandle, start_sim
from tests.bench.harness import BotProcess
from tests.proc import free_port

FENCE_EXIT = 75  # the leader lost its database connection (bot.leadership)
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
        soak.CI, purchases=10, kills=4, users=6, fault_rate=0.05, late_weight=0,
        telegram_storms=False, topups=3, kill_gap=(1.0, 2.5), deadline=110.0,
        give_up=12.0, window=20.0, auto_sms=(1.0, 10.0)),
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

    INVARIANTS: ClassVar[tuple[str, ...]] = (  # type: ignore[misc]
        *soak.Report.INVARIANTS, "double_refunds", "poll_conflicts", "two_leaders",
        "slow_takeovers")

    def takeover_line(self) -> str:
        def stats(values: list[float]) -> str:
            if not values:
                return "none"
            return (f"median {statistics.median(values):.2f} s, max {max(values):.2f} s "
                    f"({len(values)})")

        return (f"takeover (kill → survivor's first getUpdates): {stats(self.takeovers)}\n"
                f"takeover (kill → first update handled):      {stats(self.first_answers)}")

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
                                      f"{self.fences}"]
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

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info.get("method", "")
        if method.lower() == "getupdates":
            if self.killed_at is not None and self.polled_at is None:
                self.polled_at = time.perf_counter()
                if self.taken is not None:
                    self.taken.set()
                if self.report is not None:
                    self.report.takeovers.append(self.polled_at - self.killed_at)
            response = await super()._handle(request)
            transport = request.transport
            alive = transport is not None and not transport.is_closing()
            if response.status == 409 and alive and self.report is not None:
                self.report.problem("poll_conflicts", "a live poller got 409 Conflict")
            return response
        response = await super()._handle(request)
        if (self.polled_at is not None and self.killed_at is not None and not self.answered
                and method in ANSWERS):
            self.answered = True
            if self.report is not None:
                self.report.first_answers.append(time.perf_counter() - self.killed_at)
        return response


# ---------------------------------------------------------------------- processes


@dataclass
class Node:
    """One of the two bot processes."""

    name: str
    proc: BotProcess
    health_port: int
    role: str | None = None  # the last /healthz role ("leader", "follower"), None: down
    healthy: bool = False
    expected_exit: int | None = None  # -SIGKILL or FENCE_EXIT once we caused the exit

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz"


class Cluster2:
    """The pair of bot processes and what the harness knows about their roles."""

    def __init__(self, nodes: list[Node], report: FailoverReport) -> None:
        self.nodes = nodes
        self.report = report
        self.session: ClientSession | None = None

    async def sample(self, node: Node) -> None:
        if not node.proc.running:
            node.role, node.healthy = None, False
            return
        assert self.session is not None
        try:
            async with self.session.get(node.url) as r:
                body = await r.json(content_type=None)
                node.healthy = r.status == 200
                node.role = str(body.get("role")) if isinstance(body, dict) else None
        except (TimeoutError, OSError, ValueError):
            node.role, node.healthy = None, False

    async def sample_all(self) -> None:
        await asyncio.gather(*(self.sample(n) for n in self.nodes))
        leaders = [n for n in self.nodes if n.role == "leader" and n.proc.running]
        if len(leaders) > 1:
            self.report.problem("two_leaders", "both processes said leader")

    def leader(self) -> Node | None:
        for n in self.nodes:
            if n.role == "leader" and n.proc.running:
                return n
        return None

    async def wait_role(self, node: Node, role: str, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while True:
            await self.sample(node)
            if node.role == role and node.healthy:
                return
            if not node.proc.running and node.expected_exit is None:
                raise RuntimeError(f"{node.name} exited early:\n{node.proc.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node.name} is not a healthy {role} (role {node.role}):\n"
                                   f"{node.proc.log_text()[-4000:]}")
            await asyncio.sleep(0.1)

    async def monitor(self, period: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample_all()
            await asyncio.sleep(period)


class LeaderKiller(soak.Killer):
    """:class:`~tests.bench.soak.Killer` aimed at whichever process leads. A "fence"
    kill terminates the leader's database connection instead of the process."""

    def __init__(self, pair: Cluster2, fake: FailoverFake, report: FailoverReport,
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


# ---------------------------------------------------------------------- database


async def populate_pg(url: str, *, users: int, credit: Decimal, now: float) -> None:
    """What :func:`tests.bench.harness.populate` writes, through the repositories:
    the operator account and ``users`` credited operator-mode users."""
    from bot.services.crypto import key_hash, mask_key
    from storage import open_database
    from storage.repositories import Repositories

    db = await open_database(url)
    try:
        repos = Repositories(db)  # type: ignore[arg-type]
        async with db.transaction():
            await repos.accounts.insert(kind="operator", owner_user_id=None,
                                        key_hash=key_hash(OPERATOR_KEY), key_encrypted=None,
                                        key_masked=mask_key(OPERATOR_KEY), email=None, now=now)
            for i in range(users):
                uid = soak.FIRST_USER + i
                await repos.users.ensure(uid, now, "en")
                await repos.ledger.add(user_id=uid, amount=credit, kind="credit", now=now,
                                       note="bench")
    finally:
        await db.close()


SNAPSHOT_TABLES = ("activations", "ledger", "stray_orders", "topups", "events")


async def snapshot(url: str, path: Path) -> None:
    """Copy the tables :func:`tests.bench.soak.verify` reads into a SQLite file
    (NUMERIC as its exact decimal text, as the SQLite schema stores money)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        tables = {t: await conn.fetch(f"SELECT * FROM {t} ORDER BY 1") for t in SNAPSHOT_TABLES}
        columns = {t: [a.name for a in (await conn.prepare(f"SELECT * FROM {t}"))
                       .get_attributes()] for t in SNAPSHOT_TABLES}
    finally:
        await conn.close()

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, bool):
            return int(value)
        if value is None or isinstance(value, int | float | str | bytes):
            return value
        return str(value)

    out = sqlite3.connect(path)
    try:
        with out:
            for table, rows in tables.items():
                cols = columns[table]
                out.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
                out.executemany(
                    f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})",
                    [tuple(plain(r[c]) for c in cols) for r in rows])
    finally:
        out.close()


async def open_work(url: str, sh: soak.Shared, fake: FailoverFake) -> int:
    """How much is not final yet (soak.settle's measure, on PostgreSQL)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        n = await conn.fetchval(
            "SELECT COUNT(*) FROM activations WHERE state IN"
            " ('purchasing','waiting','cancelling','expired')")
        n += await conn.fetchval("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL")
        n += await conn.fetchval("SELECT COUNT(*) FROM stray_orders WHERE state = 'cancelling'")
        n += await conn.fetchval(
            "SELECT COUNT(*) FROM activations a WHERE watch_until > $1 AND NOT EXISTS"
            " (SELECT 1 FROM stray_orders s WHERE s.activation_id = a.id)", time.time())
        credited = {r[0] for r in await conn.fetch(
            "SELECT charge_id FROM ledger WHERE charge_entry = 'topup'")}
    finally:
        await conn.close()
    n += len(set(fake.charges) - credited)
    return int(n) + len(sh.sim.sim.core.late_purchases) + len(fake.pending_updates)


def verify_failover(snap: Path, sim: SimHandle, report: FailoverReport) -> None:
    """Refunds at most once per activation on both sides; request ids unique."""
    conn = soak.read_only(snap)
    try:
        twice = conn.execute(
            "SELECT activation_id, COUNT(*) FROM ledger WHERE kind = 'refund'"
            " AND activation_id IS NOT NULL GROUP BY activation_id HAVING COUNT(*) > 1"
        ).fetchall()
        dup_requests = conn.execute(
            "SELECT request_id, COUNT(*) FROM activations GROUP BY request_id"
            " HAVING COUNT(*) > 1").fetchall()
    finally:
        conn.close()
    for aid, n in twice:
        report.problem("double_refunds", f"bot order {aid} refunded {n}× in the ledger")
    upstream = Counter(e.activation_id for e in sim.sim.core.accounts[OPERATOR_KEY].ledger
                       if e.kind == "refund")
    for aid, n in upstream.items():
        if n > 1:
            report.problem("double_refunds", f"upstream {aid} refunded {n}×")
    for rid, n in dup_requests:
        report.problem("double_purchases", f"request id {rid} on {n} bot orders")


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


async def supervise(pair: Cluster2, fake: FailoverFake, killer: LeaderKiller,
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
        killer.victim = None
        done += 1
    sh.kills_done = True


def fcfg_report(sh: soak.Shared) -> FailoverReport:
    assert isinstance(sh.report, FailoverReport)
    return sh.report


async def revive(pair: Cluster2, report: FailoverReport) -> None:
    """Restart any process that exited without our doing (a crash)."""
    for n in pair.nodes:
        if not n.proc.running and n.expected_exit is None:
            code = n.proc.proc.returncode if n.proc.proc is not None else None
            report.problem("crashes", f"{n.name} exited with {code}")
            n.proc.start()
            report.restarts += 1


async def settle(pair: Cluster2, url: str, sh: soak.Shared, fake: FailoverFake) -> None:
    """Wait until every activation is final and every event delivered."""
    cfg = sh.cfg
    deadline = time.monotonic() + 2 * cfg.give_up + cfg.window + cfg.late[1] + 240.0
    quiet_since: float | None = None
    report = fcfg_report(sh)
    while time.monotonic() < deadline:
        await revive(pair, report)
        busy = True
        with contextlib.suppress(Exception):
            busy = await open_work(url, sh, fake) > 0
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:
            return
        await asyncio.sleep(0.25)


async def fence_leader(url: str, key: int) -> bool:
    """Terminate the database connection holding the leader lock ``key``."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid, classid, objid FROM pg_locks WHERE locktype = 'advisory'"
            " AND objsubid = 1 AND granted AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())")
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        pids = [r["pid"] for r in rows if (r["classid"] << 32 | r["objid"]) == unsigned]
        done = False
        for pid in pids:
            done = bool(await conn.fetchval("SELECT pg_terminate_backend($1)", pid)) or done
        return done
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- run


async def run_failover_soak(fcfg: FailoverConfig, database_url: str, *,
                            log: Callable[[str], None] | None = None,
                            keep_dir: Path | None = None) -> FailoverReport:
    """The soak on ``database_url`` (an empty PostgreSQL database)."""
    from storage.leader import LEADER_LOCK_KEY

    cfg = fcfg.soak
    report = FailoverReport()
    started = time.monotonic()
    say = log or (lambda _text: None)
    rng = random.Random(cfg.seed)
    budget = 60 if cfg.fast_budgets else None
    with soak.simulator_budgets(budget), tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        work = keep_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        holder: dict[str, soak.Killer] = {}

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
        original_take = sim.sim.core.take_fault

        def counting_take(endpoint: str) -> Any:
            action = original_take(endpoint)
            if action is not None:
                kind = ("late" if action.late is not None else "drop" if action.drop
                        else "trickle" if action.trickle else
                        f"{action.status}" if action.status else "latency")
                report.faults[kind] += 1
            return action

        sim.sim.core.take_fault = counting_take  # type: ignore[method-assign]
        fake = FailoverFake()
        fake.report = report
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
        nodes = []
        for i in (1, 2):
            folder = work / f"bot{i}"
            port = free_port()
            proc = BotProcess.configure(
                folder, telegram_url=fake.url, daisysim_url=sim.base_url,
                db_path=folder / "unused.sqlite3", admin_ids=[soak.ADMIN_ID],
                env={**extra, "HEALTH_PORT": str(port)}, budget_per_minute=budget)
            nodes.append(Node(f"bot{i}", proc, port))
        pair = Cluster2(nodes, report)
        killer = LeaderKiller(pair, fake, report,
                              lambda: fence_leader(database_url, LEADER_LOCK_KEY))
        holder["k"] = killer
        fake.killer = killer
        sh = soak.Shared(cfg, sim, report, rng)
        stop_monitor = asyncio.Event()
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
            say(f"failover soak: buying done ({len(sim.sim.core.activations)} upstream "
                f"activations, {sum(report.kills.values())} kills); settling")
            sim.sim.clear_faults()
            for n in nodes:  # a victim the cancelled supervisor left down
                if not n.proc.running:
                    await asyncio.to_thread(n.proc.kill9)
                    n.expected_exit = None
                    n.proc.start()
                    report.restarts += 1
            await settle(pair, database_url, sh, fake)
            for t in list(sh.cancel_tasks):
                t.cancel()
            stop_monitor.set()
            await monitor
        finally:
            stop_monitor.set()
            await pair.session.close()
            await pair.sample_all()
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
        soak.verify(snap, sim, fake, report)
        verify_failover(snap, sim, report)
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


async def fresh_database(server_url: str, name: str) -> str:
    """CREATE DATABASE ``name`` on the server; its URL."""
    import asyncpg

    from tests.conftest import database_dsn

    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_dsn(server_url, name)


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
