"""``python -m tests.bench.update_cost [--full] [--seed N] [--variants V,...]``: what an
update costs the bot, per Bot API transport, side by side in one run.

For each transport variant (``httpx/64``: PTB's HTTPXRequest with the 64-connection
pool the bot shipped with; ``httpx/8``: the same, pool of 8; ``aiohttp/8`` and
``aiohttp/32``: :class:`bot.telegram.request.AiohttpRequest`, pool of 32 shipped)
the bot runs as a subprocess (``python -m bot run``, ``TELEGRAM_HTTP_BACKEND`` /
``TELEGRAM_CONNECTION_POOL_SIZE`` set) against the fake Bot API and the simulator in this process:

* **CPU per update** — :func:`tests.bench.app_bench.run_updates` (the updates
  benchmark's closed-loop load: users send /start and press Wallet / History / Menu,
  ``concurrency`` of them waiting on the bot at any time, the database holding
  ``db_users`` users and ``active`` waiting activations polled meanwhile): the bot
  process's CPU time (user + system, from ``/proc/<pid>/stat``) over the throughput
  phase ÷ the updates answered in it. Everything the process does in that time counts
  (getUpdates, the engine's polling, the flood limiter, SQLite).
* **Share of one core at Telegram's limit** — CPU per update × 30 updates/s (about
  30 messages/s is what Telegram lets a bot send); cross-checked by the paced phase:
  CPU seconds ÷ wall seconds while updates are offered at ``paced_rate``/s.
* **Another user's answer while one user floods** — :func:`run_flood_latency`: one
  user sends /help at ``flood_rate``/s for ``seconds`` s (their queue is bounded: 1
  running + 8 waiting, the rest dropped with one note); meanwhile ``others`` users
  each send /start every ``gap`` s; latency = sent → the fake Bot API received the
  reply (p50 / p99), against the same users' /start with no flood.

Benchmarks measure; nothing here asserts a timing (the smoke test checks invariants).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.clock import SystemClock
from tests.bench import app_bench
from tests.bench.app_bench import ADMIN_ID, WAIT, UserDriver
from tests.bench.common import Table, cpu_seconds, fmt, percentile, start_sim
from tests.bench.harness import BotProcess, TimedFakeTelegram, wait_ready

TELEGRAM_RATE = 30.0  # messages/s a bot may send (Telegram's broadcast limit)
BEFORE = ("httpx", 64)  # the transport the bot shipped with before issue 14
SHIPPED = ("aiohttp", 32)  # the default now (TELEGRAM_HTTP_BACKEND, TELEGRAM_CONNECTION_POOL_SIZE)
VARIANTS: tuple[tuple[str, int], ...] = (
    ("httpx", 64), ("httpx", 8), ("aiohttp", 8), ("aiohttp", 32)
)
TARGET_CPU_MS = 1.2  # issue 14: bot CPU per update


def variant_env(backend: str, pool: int) -> dict[str, str]:
    return {"TELEGRAM_HTTP_BACKEND": backend, "TELEGRAM_CONNECTION_POOL_SIZE": str(pool)}


def label(variant: tuple[str, int]) -> str:
    return f"{variant[0]}/{variant[1]}"


@dataclass(frozen=True)
class CostConfig:
    users: int = 40
    walkers: int = 20
    steps: int = 4
    concurrency: int = 16
    db_users: int = 1000
    active: int = 100
    paced_rate: float = 20.0
    paced_seconds: float = 5.0
    flood_seconds: float = 8.0
    flood_rate: float = 100.0
    others: int = 4
    gap: float = 1.2
    transport_requests: int = 500  # per round of the transport-alone measurement


def config_for(cfg: Any) -> CostConfig:
    """The sizes of a :class:`tests.bench.benchmarks.Config` (its updates benchmark's
    load, so that a variant run here compares with that run)."""
    flood_seconds = 20.0 if cfg.name == "full" else max(3.0, min(8.0, 2 * cfg.paced_seconds))
    return CostConfig(users=cfg.users, walkers=cfg.walkers, steps=cfg.steps,
                      concurrency=cfg.concurrency, db_users=cfg.db_users, active=cfg.active,
                      paced_rate=cfg.paced_rate, paced_seconds=cfg.paced_seconds,
                      flood_seconds=flood_seconds, others=6 if cfg.name == "full" else 3,
                      transport_requests=2000 if cfg.name == "full" else 200)


@dataclass
class Cost:
    variant: tuple[str, int]
    updates: int = 0
    bot_cpu: float = 0.0
    seconds: float = 0.0
    paced_rate: float = 0.0
    paced_cpu: float = 0.0
    paced_wall: float = 0.0
    unanswered: int = 0
    error_lines: int = 0

    @classmethod
    def of(cls, variant: tuple[str, int], upd: app_bench.UpdatesResult) -> Cost:
        return cls(variant, upd.updates, upd.bot_cpu, upd.seconds, upd.paced_rate,
                   upd.paced_bot_cpu, upd.paced_wall, upd.unanswered, upd.bot_error_lines)

    @property
    def cpu_ms(self) -> float:
        return self.bot_cpu / self.updates * 1000 if self.updates else math.nan

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def core_share(self, rate: float = TELEGRAM_RATE) -> float:
        """Share of one core (0..1) at ``rate`` updates/s at this CPU per update."""
        return self.cpu_ms * rate / 1000

    @property
    def paced_share(self) -> float:
        return self.paced_cpu / self.paced_wall if self.paced_wall else math.nan


async def run_cost(variant: tuple[str, int], cfg: CostConfig, *, seed: int = 1,
                   log: Callable[[str], None] | None = None) -> Cost:
    upd = await app_bench.run_updates(
        users=cfg.users, walkers=cfg.walkers, steps=cfg.steps, db_users=cfg.db_users,
        active=cfg.active, concurrency=cfg.concurrency, paced_rate=cfg.paced_rate,
        paced_seconds=cfg.paced_seconds, seed=seed, env=variant_env(*variant))
    cost = Cost.of(variant, upd)
    if log:
        for err in upd.errors[:5]:
            log(f"cost {label(variant)} problem: {err}")
        log(f"cost {label(variant)}: {cost.updates} updates in {cost.seconds:.1f}s "
            f"({cost.per_second:.0f}/s), bot CPU {cost.bot_cpu:.2f}s = {cost.cpu_ms:.2f} ms/update "
            f"→ {100 * cost.core_share():.1f}% of a core at {TELEGRAM_RATE:g}/s; paced "
            f"{cost.paced_rate:g}/s: {100 * cost.paced_share:.1f}% of a core; unanswered "
            f"{cost.unanswered}, ERROR lines {cost.error_lines}")
    return cost


@dataclass
class FloodLatency:
    variant: tuple[str, int]
    seconds: float = 0.0  # how long the flood lasted
    quiet_ms: list[float] = field(default_factory=list)
    during_ms: list[float] = field(default_factory=list)
    flood_sent: int = 0
    flood_answered: int = 0
    notes: int = 0
    bot_cpu: float = 0.0  # in the flood phase
    errors: list[str] = field(default_factory=list)
    error_lines: int = 0


async def run_flood_latency(variant: tuple[str, int], cfg: CostConfig, *, seed: int = 1,
                            log: Callable[[str], None] | None = None) -> FloodLatency:
    from bot.telegram.texts import plain
    from tests.texts import pattern

    result = FloodLatency(variant, cfg.flood_seconds)
    sim = await start_sim(SystemClock(), window=4 * 3600.0, seed=seed)
    fake = TimedFakeTelegram()
    await fake.start()
    with tempfile.TemporaryDirectory(prefix="bench-flood-latency-") as tmp:
        work = Path(tmp)
        bot = BotProcess.configure(
            work, telegram_url=fake.url, daisysim_url=sim.base_url,
            db_path=work / "bot.sqlite3", admin_ids=[ADMIN_ID],
            env={"LOG_LEVEL": "WARNING", **variant_env(*variant)})
        bot.start()
        try:
            await wait_ready(fake, bot)
            others = [UserDriver(fake, fake.user(310_000 + i, first_name=f"O{i}"))
                      for i in range(cfg.others)]
            flooder = fake.user(319_999, first_name="Flo")

            async def sample(d: UserDriver, until: float, into: list[float]) -> None:
                while time.perf_counter() < until:
                    t = time.perf_counter()
                    try:
                        into.append(await d.start() * 1000)
                    except AssertionError as exc:
                        result.errors.append(str(exc)[:300])
                        return
                    await asyncio.sleep(max(0.0, cfg.gap - (time.perf_counter() - t)))

            quiet_until = time.perf_counter() + min(cfg.flood_seconds, 6.0)
            await asyncio.gather(*(sample(d, quiet_until, result.quiet_ms) for d in others))
            await fake.wait_idle(quiet=0.5, timeout=WAIT)

            stop = time.perf_counter() + cfg.flood_seconds
            cpu0 = cpu_seconds(bot.pid)

            async def flood() -> None:
                start = time.perf_counter()
                while time.perf_counter() < stop:
                    await flooder.send("/help")
                    result.flood_sent += 1
                    due = start + result.flood_sent / cfg.flood_rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))

            flooding = asyncio.ensure_future(flood())
            await asyncio.sleep(0.2)  # the flood is on before the first sample
            await asyncio.gather(*(sample(d, stop, result.during_ms) for d in others))
            await flooding
            result.bot_cpu = cpu_seconds(bot.pid) - cpu0
            await fake.wait_idle(quiet=1.0, timeout=WAIT + cfg.flood_seconds)
            texts = [m.text for m in flooder.bot_messages()]
            help_answer = pattern("help")
            result.flood_answered = sum(help_answer.search(t) is not None for t in texts)
            result.notes = sum(t == plain("en", "flood_note") for t in texts)
            bad = [line for line in bot.log_text().splitlines()
                   if " ERROR " in line or " CRITICAL " in line]
            result.error_lines = len(bad)
            result.errors += [f"bot log: {line[:300]}" for line in bad[:5]]
            if log:
                log(f"flood latency {label(variant)}: other users' /start p50/p99 "
                    f"{percentile(result.during_ms, 50):.0f}/"
                    f"{percentile(result.during_ms, 99):.0f} ms during "
                    f"({len(result.during_ms)} samples), quiet "
                    f"{percentile(result.quiet_ms, 50):.0f}/"
                    f"{percentile(result.quiet_ms, 99):.0f} ms; flooder sent "
                    f"{result.flood_sent} /help, {result.flood_answered} answered, "
                    f"{result.notes} note(s); bot CPU {result.bot_cpu:.2f}s in the flood")
        finally:
            await asyncio.to_thread(bot.stop)  # the fake must answer its last calls
            await fake.close()
            await sim.close()
    return result


# ------------------------------------------------------------- the transport alone

_ECHO_SERVER = """
import asyncio, sys
from aiohttp import web
body = sys.argv[1].encode()
async def handle(request):
    await request.read()
    return web.Response(body=body, content_type="application/json")
async def main():
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

# An editMessageText answer with a menu keyboard, about what the bot gets back.
_ANSWER = json.dumps({"ok": True, "result": {
    "message_id": 42, "date": 1_700_000_000, "chat": {"id": 100_001, "type": "private"},
    "from": {"id": 1, "is_bot": True, "first_name": "Daisy"}, "text": "Wallet " * 20,
    "reply_markup": {"inline_keyboard": [[{"text": f"Button {i}", "callback_data": f"m:{i}"}]
                                         for i in range(5)]}}})


async def transport_cost(variant: tuple[str, int], *, requests: int = 2000,
                         concurrency: int = 8, rounds: int = 3) -> float:
    """CPU µs of this process per Bot API request through ``variant``'s request object
    (``concurrency`` requests in flight, a typical sendMessage body, an editMessageText
    sized answer from a server in another process); the best of ``rounds``."""
    from telegram.request import RequestData
    from telegram.request._requestparameter import RequestParameter

    from bot.telegram.request import make_request

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ECHO_SERVER, _ANSWER, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int((await proc.stdout.readline()).decode())
        url = f"http://127.0.0.1:{port}/bot123:abc/sendMessage"
        req = make_request(variant[0], connection_pool_size=variant[1], pool_timeout=None)
        await req.initialize()
        data = RequestData([RequestParameter.from_input(k, v) for k, v in {
            "chat_id": 100_001, "text": "<b>Wallet</b>\nBalance: $10.00", "parse_mode": "HTML",
            "reply_markup": {"inline_keyboard": [[{"text": "Menu", "callback_data": "m:home"}]]},
        }.items()])
        best = math.inf
        try:
            for _ in range(rounds):
                cpu0 = time.process_time()
                queue = iter(range(requests))
                await asyncio.gather(*(_drain(req, url, data, queue) for _ in range(concurrency)))
                best = min(best, (time.process_time() - cpu0) / requests * 1e6)
        finally:
            await req.shutdown()
        return best
    finally:
        proc.kill()
        await proc.wait()


async def _drain(req: Any, url: str, data: Any, queue: Any) -> None:
    for _ in queue:
        await req.post(url, data)  # PTB's path: do_request, then the JSON answer


@dataclass
class Report:
    costs: list[Cost]
    floods: list[FloodLatency]
    transport_us: dict[tuple[str, int], float] = field(default_factory=dict)

    def cost(self, variant: tuple[str, int]) -> Cost | None:
        return next((c for c in self.costs if c.variant == variant), None)

    def flood(self, variant: tuple[str, int]) -> FloodLatency | None:
        return next((f for f in self.floods if f.variant == variant), None)


async def run(cfg: CostConfig, *, variants: tuple[tuple[str, int], ...] = VARIANTS,
              seed: int = 1, flood_variants: tuple[tuple[str, int], ...] | None = None,
              log: Callable[[str], None] | None = None) -> Report:
    """Every variant's cost, then the flood latency (``flood_variants``: default the
    first and the last variant, i.e. before and after)."""
    costs = [await run_cost(v, cfg, seed=seed, log=log) for v in variants]
    if flood_variants is None:
        flood_variants = tuple(dict.fromkeys((variants[0], variants[-1])))
    floods = [await run_flood_latency(v, cfg, seed=seed, log=log) for v in flood_variants]
    return Report(costs, floods, await transport_costs(
        variants, requests=cfg.transport_requests, log=log))


async def transport_costs(variants: tuple[tuple[str, int], ...] = VARIANTS, *,
                          requests: int = 2000, log: Callable[[str], None] | None = None
                          ) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = {}
    for v in variants:
        out[v] = await transport_cost(v, requests=requests)
        if log:
            log(f"transport {label(v)}: {out[v]:.0f} µs CPU per request")
    return out


def add_rows(table: Table, report: Report, *, after: tuple[str, int] = SHIPPED) -> None:
    """The benchmark table's rows: CPU per update (every variant; "before" = httpx/64),
    the share of one core at 30 updates/s, another user's latency during a flood."""
    new = report.cost(after)
    before = report.cost(BEFORE)
    others = ", ".join(f"{label(c.variant)} {fmt(c.cpu_ms, ' ms', 2)}" for c in report.costs
                       if c.variant not in (after, BEFORE))
    if new is not None:
        table.add(
            f"Bot CPU per update (bot process CPU ÷ {new.updates} updates of the updates "
            f"load, {new.per_second:.0f} updates/s; Bot API transport {label(after)}, "
            f"baseline column: {label(BEFORE)} as shipped before"
            + (f"; also {others}" if others else "") + ")",
            fmt(new.cpu_ms, " ms", 2), fmt(before.cpu_ms, " ms", 2) if before else "—",
            f"≤ {TARGET_CPU_MS:g} ms", new.cpu_ms <= TARGET_CPU_MS,
        )
        table.add(
            f"Share of one core the bot uses at Telegram's limit ({TELEGRAM_RATE:g} "
            f"updates/s × CPU per update; measured at {new.paced_rate:g}/s offered)",
            f"{100 * new.core_share():.1f} % ({100 * new.paced_share:.1f} % at "
            f"{new.paced_rate:g}/s)",
            f"{100 * before.core_share():.1f} % ({100 * before.paced_share:.1f} % at "
            f"{before.paced_rate:g}/s)" if before else "—", "—", None,
        )
    if report.transport_us:
        table.add(
            "… the transport alone: CPU per Bot API request (sendMessage-sized body, "
            "editMessageText-sized answer, 8 in flight; " + ", ".join(
                f"{label(v)} {us:.0f} µs" for v, us in report.transport_us.items()) + ")",
            fmt(report.transport_us.get(after, math.nan), " µs", 0),
            fmt(report.transport_us.get(BEFORE, math.nan), " µs", 0), "—", None,
        )
    for flood in report.floods:
        table.add(
            f"Another user's answer p50 / p99 while one user floods (/start; transport "
            f"{label(flood.variant)}; {flood.flood_sent} /help in {flood.seconds:g} s, "
            f"{flood.flood_answered} answered, {flood.notes} note(s); {len(flood.during_ms)} "
            "samples, sent → the fake Bot API received the reply): p50 / p99 during, p50 quiet",
            f"{fmt(percentile(flood.during_ms, 50), ' ms', 0)} / "
            f"{fmt(percentile(flood.during_ms, 99), ' ms', 0)}, quiet "
            f"{fmt(percentile(flood.quiet_ms, 50), ' ms', 0)}",
            "—", "—", None if flood.errors else True,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.update_cost",
                                 description="Bot CPU per update per Bot API transport.")
    ap.add_argument("--full", action="store_true",
                    help="the sizes of benchmarks --full (default: those of its quick run)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variants", default=",".join(label(v) for v in VARIANTS),
                    help="backend/pool,... (default: %(default)s)")
    args = ap.parse_args(argv)
    variants = tuple((b, int(p)) for b, _, p in
                     (v.strip().partition("/") for v in args.variants.split(",") if v.strip()))
    from tests.bench import benchmarks  # the same sizes as its updates benchmark

    cfg = config_for(benchmarks.FULL if args.full else benchmarks.QUICK)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    report = asyncio.run(run(cfg, variants=variants, seed=args.seed, log=say))
    table = Table()
    add_rows(table, report, after=variants[-1])
    print(table.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
