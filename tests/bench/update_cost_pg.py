"""``python -m tests.bench.update_cost_pg [--full] [--url URL] [--repeat N] [--seed N]``:
what an update costs on PostgreSQL against SQLite, the same measured workload on both.

The workload is :func:`tests.bench.app_bench.run_updates` (the one
:mod:`tests.bench.update_cost` measures per transport, with the shipped Bot API
transport, aiohttp/32): the bot as a subprocess (``python -m bot run``) long-polling
the fake Bot API; users send /start and press Wallet / History / Menu, ``concurrency``
of them waiting on the bot at any time, the database holding ``db_users`` users and
``active`` waiting activations polled meanwhile; then an open-loop phase at
``paced_rate`` updates/s. Per backend:

* **SQLite** — ``DATABASE_PATH``, a file populated directly (``harness.populate``);
  the database's work runs inside the bot process (aiosqlite's thread), so the bot's
  CPU is the whole cost.
* **PostgreSQL** — ``DATABASE_URL`` to a fresh database on the server, populated with
  the same rows (:func:`populate_pg`, after the bot's own migrations); the cost is the
  bot process's CPU plus the server's: every process of the cluster (the postmaster's
  own and reaped children's times, plus each live child's, from ``/proc``), and the
  bot's backend alone (the processes titled with the bot's database).

Reported per update (CPU ÷ the updates answered in the throughput phase): the bot's CPU,
the server's, both together; latency per update p50 / p99 (update enqueued → the bot's
first answer reached the fake Bot API) in the paced phase and under the closed loop.
Without ``--url`` a throwaway cluster is started with durable settings (fsync,
synchronous_commit, full_page_writes on; PostgreSQL's default shared_buffers), as is
SQLite's (``synchronous=FULL``). Backends alternate run by run (``--repeat``); the
table shows the median of the runs.

Benchmarks measure; nothing here asserts a timing (the smoke test checks invariants).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.sandbox.simulator import Simulator
from tests.bench import app_bench
from tests.bench.common import OPERATOR_KEY, fmt, percentile
from tests.bench.pg_driver import DURABLE, server
from tests.bench.update_cost import SHIPPED, TELEGRAM_RATE, CostConfig, config_for, variant_env

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count(1)


# ------------------------------------------------------------------ server CPU


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def _ticks(fields: list[str], *, children: bool = False) -> int:
    total = int(fields[11]) + int(fields[12])  # utime + stime
    if children:
        total += int(fields[13]) + int(fields[14])  # cutime + cstime (reaped children)
    return total


class ServerMeter:
    """CPU seconds of a PostgreSQL server on this machine: ``meter()`` the whole
    cluster (postmaster incl. its reaped children + every live child); each call also
    records the CPU of the backends serving ``dbname`` in :attr:`backend_readings`."""

    def __init__(self, postmaster: int, dbname: str | None = None) -> None:
        self.postmaster = postmaster
        self.dbname = dbname
        self.backend_readings: list[float] = []
        self.backends_seen = 0  # most processes serving ``dbname`` seen at one call
        self._hz = os.sysconf("SC_CLK_TCK")

    @classmethod
    async def for_server(cls, url: str, dbname: str | None = None) -> ServerMeter | None:
        """The meter of the server at ``url``, or None if it is not on this machine."""
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            try:
                postmaster = int(_stat(backend)[1])  # the backend's parent (while it lives)
                _stat(postmaster)
            except (OSError, ValueError, IndexError):
                return None
        finally:
            await conn.close()
        return cls(postmaster, dbname)

    def _children(self) -> Iterator[tuple[int, list[str]]]:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = _stat(int(entry.name))
            except (OSError, IndexError):
                continue  # exited meanwhile (its time is in the postmaster's cutime)
            if fields[1] == str(self.postmaster):
                yield int(entry.name), fields

    def _title(self, pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return ""

    def __call__(self) -> float:
        ticks = _ticks(_stat(self.postmaster), children=True)
        backend = serving = 0
        for pid, fields in self._children():
            own = _ticks(fields)
            ticks += own
            # "postgres: <user> <database> [local] <activity>"
            if self.dbname is not None and f" {self.dbname} " in self._title(pid):
                backend += own
                serving += 1
        self.backends_seen = max(self.backends_seen, serving)
        self.backend_readings.append(backend / self._hz)
        return ticks / self._hz


# ------------------------------------------------------------------- population


async def populate_pg(url: str, sim: Simulator, users: int, active: int,
                      first_user: int = 100_000, *, credit: Decimal = Decimal("10"),
                      app: str = "Signal", cancel_lock: float = 3600.0,
                      give_up: float = 7200.0, api_key: str = OPERATOR_KEY) -> None:
    """The rows :func:`tests.bench.harness.populate` writes into a SQLite file, in the
    PostgreSQL database at ``url`` (migrated by the bot's own code first)."""
    import asyncpg

    from bot.services.crypto import key_hash, mask_key
    from storage import open_database

    db = await open_database(url)  # creates the schema (migrations)
    await db.close()
    now = sim.clock.now()
    acct = sim.core.accounts[api_key]
    user_ids = [first_user + i for i in range(users)]
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            account_id = await conn.fetchval(
                "INSERT INTO accounts (kind, owner_user_id, key_hash, key_encrypted,"
                " key_masked, email, created_at) VALUES ('operator', NULL, $1, NULL, $2,"
                " NULL, $3) RETURNING id", key_hash(api_key), mask_key(api_key), now)
            await conn.executemany(
                "INSERT INTO users (id, role, locale, created_at, settings)"
                " VALUES ($1, 'user', 'en', $2, '{}')", [(u, now) for u in user_ids])
            amount = credit.quantize(Decimal("0.0001"))
            await conn.executemany(
                "INSERT INTO ledger (user_id, amount, kind, note, actor_id, created_at)"
                " VALUES ($1, $2, 'credit', 'bench', NULL, $3)",
                [(u, amount, now) for u in user_ids])
            for i in range(active):
                uid = user_ids[i % users]
                act = sim.core.purchase(acct, country="USA", app=app, provider_id=None,
                                        app_name=None, country_name=None)
                price = Decimal(str(act.price))
                aid = await conn.fetchval(
                    "INSERT INTO activations (user_id, account_id, remote_id, service_code,"
                    " service_name, provider_id, phone, price, cost, state, request_id,"
                    " purchase_sent_at, purchased_at, cancel_after, expires_at, chat_id,"
                    " cancel_available_emitted) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7,"
                    " $8, 'waiting', $9, $10, $11, $12, $13, $14, 1) RETURNING id",
                    uid, account_id, act.aid, app, act.service_label, act.phone, price, price,
                    f"bench-pop-{i}", now, now, now + cancel_lock, now + give_up, uid)
                await conn.executemany(
                    "INSERT INTO ledger (user_id, amount, kind, activation_id, note,"
                    " created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    [(uid, -price, "hold", aid, "hold", now),
                     (uid, -price, "charge", aid, "purchase", now),
                     (uid, price, "release", aid, "hold settled", now)])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# ----------------------------------------------------------------------- runs


@dataclass
class BackendRun:
    backend: str
    upd: app_bench.UpdatesResult
    server_cpu: float = math.nan  # PostgreSQL: every cluster process, throughput phase
    backend_cpu: float = math.nan  # ... the bot's backend alone
    paced_server_cpu: float = math.nan
    backends_seen: int = 0  # server processes that served the bot's database at once

    def _per(self, cpu: float) -> float:
        return cpu / self.upd.updates * 1000 if self.upd.updates else math.nan

    @property
    def bot_ms(self) -> float:
        return self._per(self.upd.bot_cpu)

    @property
    def server_ms(self) -> float:
        return self._per(self.server_cpu) if self.backend == "postgresql" else 0.0

    @property
    def backend_ms(self) -> float:
        return self._per(self.backend_cpu) if self.backend == "postgresql" else 0.0

    @property
    def total_ms(self) -> float:
        return self.bot_ms + self.server_ms

    @property
    def paced_share(self) -> float:
        """CPU seconds (bot + server) per wall second in the paced phase."""
        server = self.paced_server_cpu if self.backend == "postgresql" else 0.0
        wall = self.upd.paced_wall
        return (self.upd.paced_bot_cpu + server) / wall if wall else math.nan


@contextmanager
def no_database_url() -> Iterator[None]:
    """The SQLite run must not inherit a DATABASE_URL from this environment."""
    saved = os.environ.pop("DATABASE_URL", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["DATABASE_URL"] = saved


async def _admin(server_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def database_dsn(server_url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{dbname}"))


async def run_backend(backend: str, cfg: CostConfig, *, server_url: str | None = None,
                      seed: int = 1, log: Callable[[str], None] | None = None) -> BackendRun:
    """One measured run of the workload on ``backend`` (``server_url``: the PostgreSQL
    server for a fresh database; needed for ``"postgresql"``)."""
    sizes: dict[str, Any] = {
        "users": cfg.users, "walkers": cfg.walkers, "steps": cfg.steps,
        "db_users": cfg.db_users, "active": cfg.active, "concurrency": cfg.concurrency,
        "paced_rate": cfg.paced_rate, "paced_seconds": cfg.paced_seconds, "seed": seed,
    }
    env = variant_env(*SHIPPED)
    with no_database_url():
        if backend == "sqlite":
            run = BackendRun(backend, await app_bench.run_updates(env=env, **sizes))
        else:
            assert server_url is not None, "PostgreSQL needs a server URL"
            dbname = f"bench_cost_{os.getpid()}_{next(_names)}"
            await _admin(server_url, f'CREATE DATABASE "{dbname}"')
            try:
                dsn = database_dsn(server_url, dbname)
                meter = await ServerMeter.for_server(server_url, dbname)

                async def populate(sim: Simulator, users: int, active: int,
                                   first_user: int) -> None:
                    await populate_pg(dsn, sim, users, active, first_user)

                upd = await app_bench.run_updates(
                    env={**env, "DATABASE_URL": dsn}, populate_with=populate, meter=meter,
                    **sizes)
                run = BackendRun(backend, upd)
                if meter is not None:
                    readings = meter.backend_readings  # 4: the two phases' ends
                    run.server_cpu, run.paced_server_cpu = upd.meter_cpu, upd.paced_meter_cpu
                    run.backends_seen = meter.backends_seen
                    if len(readings) >= 2:
                        run.backend_cpu = readings[1] - readings[0]
            finally:
                await _admin(server_url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    if log:
        u = run.upd
        for err in u.errors[:5]:
            log(f"{backend} problem: {err}")
        log(f"{backend}: {u.updates} updates in {u.seconds:.1f}s, bot CPU {run.bot_ms:.2f} "
            f"ms/update, server {run.server_ms:.2f} ms (its backend {run.backend_ms:.2f}), "
            f"paced {u.paced_rate:g}/s p50/p99 {percentile(u.paced_latencies_ms, 50):.1f}/"
            f"{percentile(u.paced_latencies_ms, 99):.1f} ms, closed-loop p50/p99 "
            f"{percentile(u.latencies_ms, 50):.1f}/{percentile(u.latencies_ms, 99):.1f} ms; "
            f"paced phase {100 * run.paced_share:.1f} % of a core (bot {u.paced_bot_cpu:.2f} s "
            f"in {u.paced_wall:.1f} s); unanswered {u.unanswered}, ERROR lines {u.bot_error_lines}")
    return run


@dataclass
class Report:
    cfg: CostConfig
    runs: list[BackendRun] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # the server's

    def of(self, backend: str) -> list[BackendRun]:
        return [r for r in self.runs if r.backend == backend]


async def server_settings(server_url: str) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(server_url)
    try:
        out = {"server_version": str(await conn.fetchval("SHOW server_version"))}
        for name in DURABLE:
            out[name] = str(await conn.fetchval(f"SHOW {name}"))
        return out
    finally:
        await conn.close()


async def run(cfg: CostConfig, *, server_url: str, repeat: int = 1, seed: int = 1,
              backends: tuple[str, ...] = BACKENDS,
              log: Callable[[str], None] | None = None) -> Report:
    report = Report(cfg, settings=await server_settings(server_url))
    for _ in range(repeat):
        for backend in backends:  # alternating: load from elsewhere falls on both
            report.runs.append(await run_backend(backend, cfg, server_url=server_url,
                                                 seed=seed, log=log))
    return report


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _latency(runs: list[BackendRun], paced: bool) -> str:
    if not runs:
        return "n/a"
    p50 = _median([percentile(r.upd.paced_latencies_ms if paced else r.upd.latencies_ms, 50)
                   for r in runs])
    p99 = _median([percentile(r.upd.paced_latencies_ms if paced else r.upd.latencies_ms, 99)
                   for r in runs])
    return f"{fmt(p50, '', 1)} / {fmt(p99, ' ms', 1)}"


def _ratio(a: float, b: float) -> str:
    return f"{b / a:.2f}×" if a and not (math.isnan(a) or math.isnan(b)) else "—"


def markdown(report: Report) -> str:
    sq, pg = report.of("sqlite"), report.of("postgresql")

    def med(runs: list[BackendRun], attr: str) -> float:
        return _median([getattr(r, attr) for r in runs]) if runs else math.nan

    cfg = report.cfg
    rows = [
        "| per update | SQLite | PostgreSQL | PostgreSQL ÷ SQLite |",
        "|---|---|---|---|",
        f"| CPU of the bot process | {fmt(med(sq, 'bot_ms'), ' ms', 2)} | "
        f"{fmt(med(pg, 'bot_ms'), ' ms', 2)} | {_ratio(med(sq, 'bot_ms'), med(pg, 'bot_ms'))} |",
        f"| CPU of the PostgreSQL server (all its processes; the bot's backend alone) | — "
        f"(in the bot process) | {fmt(med(pg, 'server_ms'), ' ms', 2)} "
        f"({fmt(med(pg, 'backend_ms'), ' ms', 2)}) | — |",
        f"| CPU, bot + database server | {fmt(med(sq, 'total_ms'), ' ms', 2)} | "
        f"{fmt(med(pg, 'total_ms'), ' ms', 2)} | "
        f"{_ratio(med(sq, 'total_ms'), med(pg, 'total_ms'))} |",
        f"| … share of one core at Telegram's {TELEGRAM_RATE:g} updates/s | "
        f"{fmt(med(sq, 'total_ms') * TELEGRAM_RATE / 10, ' %', 1)} | "
        f"{fmt(med(pg, 'total_ms') * TELEGRAM_RATE / 10, ' %', 1)} | — |",
        f"| … share of one core measured while {cfg.paced_rate:g} updates/s are offered "
        f"(bot + server CPU ÷ wall; the engine's polling of the waiting numbers included) | "
        f"{fmt(100 * med(sq, 'paced_share'), ' %', 1)} | "
        f"{fmt(100 * med(pg, 'paced_share'), ' %', 1)} | "
        f"{_ratio(med(sq, 'paced_share'), med(pg, 'paced_share'))} |",
        f"| Latency p50 / p99 at {cfg.paced_rate:g} updates/s offered (enqueued → the bot's "
        f"answer received) | {_latency(sq, True)} | {_latency(pg, True)} | — |",
        f"| Latency p50 / p99, closed loop ({cfg.concurrency} users waiting on the bot) | "
        f"{_latency(sq, False)} | {_latency(pg, False)} | — |",
        "| Updates measured per run; unanswered / bot ERROR lines (all runs) | "
        + " | ".join(
            f"{runs[0].upd.updates if runs else 0}; "
            f"{sum(r.upd.unanswered for r in runs)} / {sum(r.upd.bot_error_lines for r in runs)}"
            for runs in (sq, pg)) + " | — |",
    ]
    s = report.settings
    rows += [
        "",
        f"- {len(pg)} run(s) per backend, alternating, median shown; {cfg.users} users "
        f"({cfg.walkers} walk {cfg.steps} more steps), {cfg.db_users} users and {cfg.active} "
        f"waiting activations in the database; Bot API transport {'/'.join(map(str, SHIPPED))}.",
        f"- SQLite: WAL, synchronous=FULL. PostgreSQL {s.get('server_version', '?')}, one "
        "connection, unix socket: " + ", ".join(
            f"{k}={v}" for k, v in s.items() if k != "server_version") + ".",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.update_cost_pg",
                                 description="Cost per update on PostgreSQL vs SQLite.")
    ap.add_argument("--full", action="store_true",
                    help="the sizes of benchmarks --full (default: those of its quick run)")
    ap.add_argument("--url", default=os.environ.get("DAISYBOT_BENCH_POSTGRES"),
                    help="PostgreSQL server URL (default $DAISYBOT_BENCH_POSTGRES, else a "
                         "throwaway cluster with durable settings)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per backend (alternating)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backends", default=",".join(BACKENDS), help="default: %(default)s")
    args = ap.parse_args(argv)
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if not backends or set(backends) - set(BACKENDS):
        ap.error(f"--backends: a list of {', '.join(BACKENDS)}")
    from tests.bench import benchmarks

    cfg = config_for(benchmarks.FULL if args.full else benchmarks.QUICK)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with server(args.url) as url:
        report = asyncio.run(run(cfg, server_url=url, repeat=args.repeat, seed=args.seed,
                                 backends=backends, log=say))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
