"""``python -m tests.bench.ownkey_scale [--accounts N ...] [--legacy N ...] [--waiting 3]
[--rtt 0.1] [--pass-limit 15]``: own-key mode at scale (issue 14, item 4).

``N`` own-key accounts (each user's key stored encrypted, as linking writes it)
with ``--waiting`` waiting numbers each, bought in the simulator's state
directly. The engine runs in a child process of its own (so its RSS and sockets
are the bot's alone; the bot's modules, PTB included, are imported first); the
simulator runs in this process, every answer delayed ``--rtt`` seconds (its
latency fault: a real sleep). The child measures:

* ``Engine.start()``: wall seconds and CPU seconds (restoring every account and
  its waiting numbers from the database);
* RSS of the whole child process after the start (and its peak at the end);
* sockets: the child's socket file descriptors, sampled every 50 ms from before
  the start to the end of the pass (the asyncio self-pipe excluded);
* the pass: the engine's own loop (``run_due`` as the app's job runs it) for
  ``--pass-limit`` wall seconds (the poll interval); the simulator records each
  account's first check-all, so "polled" is how many accounts had their first
  round within the limit, and the full pass time is the last first round
  (NaN if not every account was reached); 429s come from the simulator.

``shared`` is the shipped engine (one :class:`~bot.daisysim.wire.Pool` for every
key); ``per-key`` ( ``--legacy``) is the engine with a client factory that
builds each key's client with a pool (an httpx client, an SSL context) of its
own, as main did before issue 14 — the "before" of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.clock import SystemClock
from bot.sandbox.simulator import Simulator
from tests.bench.common import fmt, start_sim

MODES = ("shared", "per-key")
_FERNET_ENV = "BENCH_OWNKEY_ENCRYPTION_KEY"  # the child's ENCRYPTION_KEY (not in argv)
LOG = Callable[[str], None]


@dataclass
class ScaleResult:
    mode: str
    accounts: int
    waiting: int
    rtt: float
    pass_limit: float
    poll_concurrency: int = 0  # > 0: what-if, the engine's concurrent rounds set to this
    start_s: float = math.nan  # Engine.start() wall seconds
    start_cpu_s: float = math.nan  # ... and CPU seconds of the child meanwhile
    rss_mb: float = math.nan  # child's RSS after the start
    rss_peak_mb: float = math.nan  # VmHWM at the end
    rss_before_mb: float = math.nan  # after imports, before the start
    sockets_max: int = 0  # socket fds of the child (max over the run, self-pipe excluded)
    clients: int = 0
    pools: int = 0  # distinct connection pools among the clients
    tracked: int = 0
    polled: int = 0  # accounts whose first check-all came within the pass limit
    pass_s: float = math.nan  # last account's first check-all (NaN: not all reached)
    checks: int = 0  # check-all requests the simulator served during the pass
    rate_limited: int = 0  # 429s the simulator sent
    errors: list[str] = field(default_factory=list)

    @property
    def full_pass(self) -> bool:
        return self.polled == self.accounts


def _key(i: int) -> str:
    return f"sk_scale_{i:06d}_0123456789abcdef"


def populate(db_path: Path, sim: Simulator, accounts: int, waiting: int,
             fernet: str) -> None:
    """The bot's database and the simulator's state: ``accounts`` own-key users,
    each with ``waiting`` waiting numbers (polls due at once)."""
    from cryptography.fernet import Fernet

    from bot.services.crypto import key_hash, mask_key

    vault = Fernet(fernet.encode("ascii"))
    core = sim.core
    now = sim.clock.now()
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            for i in range(accounts):
                key = _key(i)
                acct = core.upsert_account(key, "1000")
                uid = 500_000 + i
                conn.execute("INSERT INTO users (id, role, locale, created_at, settings)"
                             " VALUES (?, 'user', 'en', ?, '{}')", (uid, now))
                cur = conn.execute(
                    "INSERT INTO accounts (kind, owner_user_id, key_hash, key_encrypted,"
                    " key_masked, email, created_at) VALUES ('user', ?, ?, ?, ?, ?, ?)",
                    (uid, key_hash(key), vault.encrypt(key.encode()).decode("ascii"),
                     mask_key(key), acct.email, now),
                )
                account_id = cur.lastrowid
                for j in range(waiting):
                    act = core.purchase(acct, country="USA", app="Signal", provider_id=None,
                                        app_name=None, country_name=None)
                    price = str(act.price)
                    conn.execute(
                        "INSERT INTO activations (user_id, account_id, remote_id, service_code,"
                        " service_name, provider_id, phone, price, cost, state, request_id,"
                        " purchase_sent_at, purchased_at, cancel_after, expires_at, chat_id,"
                        " cancel_available_emitted) VALUES"
                        " (?, ?, ?, 'Signal', ?, NULL, ?, ?, ?, 'waiting', ?, ?, ?, ?, ?, ?, 1)",
                        (uid, account_id, act.aid, act.service_label, act.phone, price, price,
                         f"scale-{i}-{j}", now - 20, now - 20, now + 3600, now + 7200, uid),
                    )
    finally:
        conn.close()


# ------------------------------------------------------------------ the child


def _socket_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            continue
    return n


def _status_mb(field_name: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024.0
    return math.nan


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    import bot.app  # noqa: F401  (the whole bot's modules, as the shipped process has them)
    from bot.config import Settings
    from bot.daisysim.client import DaisySimClient
    from bot.services.engine import Engine

    extra: dict[str, Any] = {}
    if args.poll_concurrency:  # POLL_CONCURRENCY (default 64)
        extra["poll_concurrency"] = args.poll_concurrency
    settings = Settings(
        _env_file=None, funding_mode="own_key", daisysim_base_url=args.sim,
        encryption_key=os.environ[_FERNET_ENV], database_path=args.db, log_level="WARNING",
        give_up_minutes=180, daisysim_timeout_seconds=20.0, **extra,
    )
    out: dict[str, Any] = {}
    base_sockets = _socket_fds()
    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _socket_fds() - base_sockets)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    clock = SystemClock()
    engine: Engine
    if args.mode == "per-key":
        def own_pool_client(api_key: str) -> DaisySimClient:
            # main's Engine._default_client: every key a client (pool, SSL context) of its own
            return DaisySimClient(
                api_key, base_url=settings.daisysim_base_url, clock=clock,
                timeout=settings.daisysim_timeout_seconds, max_attempts=1,
            )
        engine = Engine(settings, clock=clock, client_factory=own_pool_client)
    else:
        engine = Engine(settings, clock=clock)
    out["rss_before_mb"] = _status_mb("VmRSS")
    cpu0, t0 = _cpu(), time.perf_counter()
    await engine.start()
    out["start_s"] = time.perf_counter() - t0
    out["start_cpu_s"] = _cpu() - cpu0
    out["rss_mb"] = _status_mb("VmRSS")
    clients = engine.inspect.clients()
    out["clients"] = len(clients)
    out["pools"] = len({id(c.pool) for c in clients})
    out["tracked"] = len(engine.inspect.tracked())

    async def loop() -> None:  # what the app's job does: run what is due, sleep until next
        while True:
            due = await engine.run_due()
            wait = 0.05 if due is None else max(0.0, min(1.0, due - clock.now()))
            await asyncio.sleep(wait)

    out["pass_started"] = time.time()
    runner = asyncio.create_task(loop())
    await asyncio.sleep(args.pass_limit)
    out["pass_ended"] = time.time()
    runner.cancel()
    try:
        await runner
    except asyncio.CancelledError:
        pass
    except Exception as exc:  # reported, not hidden
        out["error"] = f"engine loop: {type(exc).__name__}: {exc}"
    stop.set()
    await sampler
    out["sockets_max"] = peak
    out["rss_peak_mb"] = _status_mb("VmHWM")
    await engine.close()
    return out


# ------------------------------------------------------------------ the parent


async def run_scale(accounts: int, *, mode: str = "shared", waiting: int = 3, rtt: float = 0.1,
                    pass_limit: float = 15.0, poll_concurrency: int = 0,
                    log: LOG | None = None) -> ScaleResult:
    """One run (see the module docstring). ``poll_concurrency`` > 0: a what-if
    with the engine's bound on concurrent poll rounds set to it."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    from cryptography.fernet import Fernet

    from storage.db import Database

    result = ScaleResult(mode, accounts, waiting, rtt, pass_limit, poll_concurrency)
    first_check: dict[str, float] = {}

    @web.middleware
    async def record_rounds(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.endswith("/check-all"):
            key = request.headers.get("Authorization", "").partition(" ")[2]
            first_check.setdefault(key, time.time())
        return await handler(request)

    handle = await start_sim(SystemClock(), window=4 * 3600.0, seed=1,
                             middlewares=[record_rounds])
    fernet = Fernet.generate_key().decode("ascii")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ownkey-") as tmp:
            db_path = Path(tmp) / "bot.sqlite3"
            db = await Database.open(db_path)
            await db.close()
            populate(db_path, handle.sim, accounts, waiting, fernet)
            if rtt > 0:
                handle.sim.add_fault("any", count=10**9, latency=rtt)
            served = handle.served
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.bench.ownkey_scale", "--child",
                "--mode", mode, "--db", str(db_path), "--sim", handle.base_url,
                "--pass-limit", str(pass_limit), "--poll-concurrency", str(poll_concurrency),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1", _FERNET_ENV: fernet},
            )
            stdout, stderr = await proc.communicate()
            if proc.returncode != 0:
                result.errors.append(f"child exited {proc.returncode}: "
                                     f"{stderr.decode(errors='replace')[-2000:]}")
                return result
            data = json.loads(stdout.decode().strip().splitlines()[-1])
            for name in ("start_s", "start_cpu_s", "rss_mb", "rss_peak_mb", "rss_before_mb",
                         "sockets_max", "clients", "pools", "tracked"):
                setattr(result, name, data[name])
            if "error" in data:
                result.errors.append(data["error"])
            started, ended = float(data["pass_started"]), float(data["pass_ended"])
            in_pass = [t for t in first_check.values() if started <= t <= ended]
            result.polled = len(in_pass)
            if result.polled == accounts and in_pass:
                result.pass_s = max(in_pass) - started
            result.checks = sum(handle.sim.stats.count(_key(i), "check-all")
                                for i in range(accounts))
            result.rate_limited = sum(handle.sim.stats.rate_limited.values())
            if log is not None:
                what_if = (f" (what-if: {poll_concurrency} rounds at once)"
                           if poll_concurrency else "")
                log(f"ownkey {mode} {accounts}×{waiting}{what_if}: {summary(result)}; "
                    f"{handle.served - served} requests served")
    finally:
        await handle.close()
    return result


def summary(r: ScaleResult) -> str:
    return (f"start {r.start_s:.2f} s wall / {r.start_cpu_s:.2f} s CPU, RSS {r.rss_mb:.0f} MB "
            f"(before start {r.rss_before_mb:.0f}, peak {r.rss_peak_mb:.0f}), "
            f"sockets ≤ {r.sockets_max}, {r.clients} clients / {r.pools} pool(s), "
            f"{r.tracked} tracked, polled {r.polled}/{r.accounts} in {r.pass_limit:g} s"
            f" (pass {fmt(r.pass_s, ' s')}), {r.checks} check-all, {r.rate_limited}×429"
            + (f", errors: {r.errors}" if r.errors else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.ownkey_scale")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=MODES, default="shared", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--sim", help=argparse.SUPPRESS)
    ap.add_argument("--accounts", type=int, nargs="*", default=[1000, 10_000],
                    help="own-key accounts, shared pool (the shipped engine)")
    ap.add_argument("--legacy", type=int, nargs="*", default=[1000],
                    help="own-key accounts, one pool per key (as before issue 14)")
    ap.add_argument("--waiting", type=int, default=3)
    ap.add_argument("--rtt", type=float, default=0.1, help="simulator answer delay, s")
    ap.add_argument("--pass-limit", type=float, default=15.0)
    ap.add_argument("--poll-concurrency", type=int, default=0,
                    help="what-if: the engine's concurrent poll rounds (0: as shipped)")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args))), flush=True)
        return 0

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    async def both() -> list[ScaleResult]:
        runs = [await run_scale(n, mode="per-key", waiting=args.waiting, rtt=args.rtt,
                                pass_limit=args.pass_limit, log=say) for n in args.legacy]
        runs += [await run_scale(n, mode="shared", waiting=args.waiting, rtt=args.rtt,
                                 pass_limit=args.pass_limit, log=say) for n in args.accounts]
        if args.poll_concurrency:
            runs += [await run_scale(n, mode="shared", waiting=args.waiting, rtt=args.rtt,
                                     pass_limit=args.pass_limit, log=say,
                                     poll_concurrency=args.poll_concurrency)
                     for n in args.accounts]
        return runs

    for r in asyncio.run(both()):
        print(json.dumps({**asdict(r), "full_pass": r.full_pass}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
