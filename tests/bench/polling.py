"""Polling benchmarks on a VirtualClock: how many waiting activations one account
sustains, OTP latency, check requests per delivered code — ours vs the baseline.

Method (both flows): ``n`` waiting activations on one simulator account; the
simulator delivers each one's code at a random virtual time within the
measurement window (``minutes`` long; codes land between its first minute — a
full minute with all ``n`` waiting — and 30 s before its end); the run ends
when every code has been pushed (or the flow gave up).

* baseline — activations are created directly in the simulator's state (the
  reference flow's purchases are not what is measured) and each gets its own
  reference poller (:mod:`tests.bench.baseline`), started at a random phase
  within the first 15 s;
* ours — activations are bought through ``Engine.buy`` (the client's purchase
  budget, 10/min, with virtual time moving while buying; everything bought so
  far is being polled meanwhile), then the measurement window starts. The engine
  is driven the way the app's scheduler drives it: ``run_due()`` at the time it
  returned last.

An account "sustains" ``n`` when the run saw zero 429s, every code delivered was
pushed, and the p99 latency stayed within the 15-s polling cadence (≤ 15.5 s).
"""

from __future__ import annotations

import math
import random
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.clock import VirtualClock
from tests.bench.baseline import ReferenceFleet
from tests.bench.common import OPERATOR_KEY, Pump, SimHandle, percentile, start_sim

LATENCY_P99_TARGET = 15.5
LATENCY_P50_TARGET = 8.0
SIM_WINDOW = 6 * 3600.0  # the simulator's activation window: longer than any run
FULL_LOAD_SECONDS = 60.0  # no code arrives in the first minute of the window


@dataclass
class PollRun:
    flow: str  # "ours" | "baseline"
    n: int
    delivered: int = 0  # codes the simulator delivered
    pushed: int = 0  # distinct codes that reached the user (event / reference flow)
    duplicates: int = 0  # codes pushed more than once
    wrong: int = 0  # pushed codes that differ from the delivered one
    rate_limited: int = 0
    check_requests: int = 0
    latencies: list[float] = field(default_factory=list)  # virtual seconds
    virtual_seconds: float = 0.0
    real_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.delivered - self.pushed

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def checks_per_otp(self) -> float:
        return self.check_requests / self.pushed if self.pushed else math.nan

    @property
    def all_delivered(self) -> bool:
        return self.delivered == self.n and self.pushed == self.delivered and not self.wrong

    @property
    def sustained(self) -> bool:
        return (
            self.rate_limited == 0
            and self.all_delivered
            and self.duplicates == 0
            and self.p99 <= LATENCY_P99_TARGET
        )

    def summary(self) -> str:
        return (
            f"{self.flow:8s} n={self.n:4d} 429={self.rate_limited:4d} "
            f"delivered={self.delivered}/{self.n} pushed={self.pushed} dup={self.duplicates} "
            f"p50={self.p50:.1f}s p99={self.p99:.1f}s checks/otp={self.checks_per_otp:.2f} "
            f"sustained={self.sustained} ({self.real_seconds:.1f}s real)"
        )


def _schedule(rng: random.Random, start: float, ids: list[str], minutes: float
              ) -> list[tuple[float, str, str]]:
    """Each id's code at a random time in [start + 60 s, start + window - 30 s]: the
    first minute runs with all ``n`` waiting (the full load on the check budget)."""
    lo = FULL_LOAD_SECONDS
    hi = max(lo + 1.0, minutes * 60.0 - 30.0)
    plan = [(start + rng.uniform(lo, hi), aid, f"{rng.randrange(1_000_000):06d}")
            for aid in ids]
    plan.sort()
    return plan


# ---------------------------------------------------------------------- baseline


async def run_baseline(n: int, *, minutes: float = 10.0, seed: int = 1,
                       cache_bound: bool = False) -> PollRun:
    import time

    real0 = time.perf_counter()
    clock = VirtualClock()
    sim = await start_sim(clock, window=SIM_WINDOW, seed=seed, cache_bound=cache_bound)
    rng = random.Random(seed)
    run = PollRun("baseline", n)
    fleet = ReferenceFleet.create(sim.base_url, OPERATOR_KEY, clock)
    try:
        core = sim.sim.core
        acct = core.accounts[OPERATOR_KEY]
        ids = [
            core.purchase(acct, country="USA", app="Signal", provider_id=None,
                          app_name=None, country_name=None).aid
            for _ in range(n)
        ]
        t0 = clock.now()
        for aid in ids:
            fleet.start(aid, delay=rng.uniform(0.0, fleet.interval))
        plan = _schedule(rng, t0, ids, minutes)
        delivered_at: dict[str, tuple[float, str]] = {}
        pump = Pump(clock, sim, idle=lambda: fleet.busy == 0)
        while True:
            await pump.settle()
            while plan and plan[0][0] <= clock.now():
                _, aid, code = plan.pop(0)
                sim.sim.deliver_sms(aid, code)
                delivered_at[aid] = (clock.now(), code)
            if all(t.done() for t in fleet.tasks):
                break
            candidates = [x for x in (clock.next_wakeup(), plan[0][0] if plan else None)
                          if x is not None]
            if not candidates:
                break
            clock.set(max(clock.now(), min(candidates)))
        await fleet.wait()
        run.virtual_seconds = clock.now() - t0
        run.delivered = len(delivered_at)
        for aid, out in fleet.outcomes.items():
            run.rate_limited += out.rate_limited
            if out.code is None:
                continue
            run.pushed += 1
            at, code = delivered_at.get(aid, (math.nan, ""))
            if code != out.code:
                run.wrong += 1
            assert out.seen_at is not None
            run.latencies.append(out.seen_at - at)
        run.check_requests = sim.check_requests()
        # The simulator's own count must agree with what the pollers saw.
        assert sim.rate_limited() == run.rate_limited, (sim.rate_limited(), run.rate_limited)
    finally:
        await fleet.aclose()
        await sim.close()
    run.real_seconds = time.perf_counter() - real0
    return run


# --------------------------------------------------------------------------- ours


def engine_settings(db_path: str, sim: SimHandle, **overrides: Any) -> Any:
    """Settings for an engine in operator mode against ``sim``."""
    from pydantic import SecretStr

    from bot.config import FundingMode, Settings

    values: dict[str, Any] = {
        "bot_token": None,
        "daisysim_base_url": sim.base_url,
        "daisysim_api_key": SecretStr(OPERATOR_KEY),
        "funding_mode": FundingMode.OPERATOR,
        "database_path": db_path,
        "admin_ids": [ADMIN_ID],
        "give_up_minutes": SIM_WINDOW / 60.0 - 30.0,
        "cancel_lock_seconds": 180.0,
        "poll_interval_seconds": 15.0,
        "daisysim_timeout_seconds": 10.0,
        "encryption_key": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


ADMIN_ID = 1
FIRST_USER = 1000


async def run_ours(n: int, *, minutes: float = 10.0, seed: int = 1, users: int = 50,
                   cache_bound: bool = False, adaptive: bool = True) -> PollRun:
    """The engine (bot.services.engine.Engine) polling ``n`` waiting activations.

    ``cache_bound``: the simulator's cache-bound reading of a stored code
    (default: the documented one, a stored code comes back at once);
    ``adaptive=False``: the planner as before issue 14 (each id once per
    interval, no spare polls), for before/after rows in one run."""
    import time

    from bot.services.api import Event, EventKind
    from bot.services.engine import Engine

    real0 = time.perf_counter()
    clock = VirtualClock()
    sim = await start_sim(clock, window=SIM_WINDOW, seed=seed, cache_bound=cache_bound)
    rng = random.Random(seed)
    run = PollRun("ours" if adaptive else "interval", n)
    pushed: dict[str, list[tuple[float, str]]] = {}

    async def on_event(event: Event) -> None:
        if event.kind == EventKind.CODE_RECEIVED:
            act = event.activation
            assert act.remote_id is not None and act.code is not None
            pushed.setdefault(act.remote_id, []).append((clock.now(), act.code))

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        settings = engine_settings(str(Path(tmp) / "bot.sqlite3"), sim, poll_adaptive=adaptive)
        engine = Engine(settings, clock=clock)
        engine.subscribe(on_event)
        pump = Pump(clock, sim)
        try:
            await pump.drive(engine.start())
            user_ids = [FIRST_USER + i for i in range(users)]
            for uid in user_ids:
                await engine.ensure_user(uid)
                await engine.admin_adjust(ADMIN_ID, uid, Decimal("1000"), "bench credit")
            services = await engine.list_services(user_ids[0])
            signal = next(s for s in services if s.code == "Signal")
            # --- buy n numbers while the engine runs
            start = clock.now()
            bought: list[str] = []
            due: float | None = None
            i = 0
            while len(bought) < n:
                uid = user_ids[i % users]
                i += 1
                act = await pump.drive(engine.buy(uid, "Signal", None, signal.price,
                                                  request_id=f"bench-{i}", chat_id=uid))
                assert act.remote_id is not None
                bought.append(act.remote_id)
                due = await pump.drive(engine.run_due())
                # Let time pass up to the next purchase slot, running due work.
                slot = clock.now() + _purchase_wait(clock)
                while True:
                    target = min(x for x in (due, slot) if x is not None)
                    if target > slot or target <= clock.now():
                        break
                    clock.set(target)
                    due = await pump.drive(engine.run_due())
                if slot > clock.now():
                    clock.set(slot)
            # --- measurement window
            t0 = clock.now()
            checks_before = sim.check_requests()
            run.extra["purchase_phase_s"] = t0 - start
            run.extra["purchase_phase_checks"] = checks_before
            plan = _schedule(rng, t0, bought, minutes)
            delivered_at: dict[str, tuple[float, str]] = {}
            end = t0 + minutes * 60.0 + 120.0
            while clock.now() < end:
                while plan and plan[0][0] <= clock.now():
                    _, aid, code = plan.pop(0)
                    sim.sim.deliver_sms(aid, code)
                    delivered_at[aid] = (clock.now(), code)
                due = await pump.drive(engine.run_due())
                if not plan and len(pushed) >= len(delivered_at):
                    break
                candidates = [x for x in (due, plan[0][0] if plan else None, end)
                              if x is not None]
                target = min(candidates)
                if target <= clock.now():
                    continue
                clock.set(target)
            run.virtual_seconds = clock.now() - t0
            run.delivered = len(delivered_at)
            for aid, seen in pushed.items():
                run.pushed += 1
                run.duplicates += len(seen) - 1
                at, code = delivered_at.get(aid, (math.nan, ""))
                if seen[0][1] != code:
                    run.wrong += 1
                run.latencies.append(seen[0][0] - at)
            run.rate_limited = sim.rate_limited()
            # Only the measurement window counts (the baseline has no purchase phase).
            run.check_requests = sim.check_requests() - checks_before
            run.extra["sim_requests"] = dict(sim.sim.stats.requests.get(OPERATOR_KEY, {}))
        finally:
            await engine.close()
            await sim.close()
    run.real_seconds = time.perf_counter() - real0
    return run


def _purchase_wait(clock: VirtualClock) -> float:
    from bot.daisysim import get_limiter

    return get_limiter(OPERATOR_KEY, clock).purchase.wait_time()


# ---------------------------------------------------------------------- ladders

LADDER_OURS = (15, 30, 60, 150, 300, 400)
LADDER_BASELINE = (15, 16, 30, 60)


async def ladder(flow: str, sizes: tuple[int, ...], *, minutes: float = 10.0, seed: int = 1,
                 log: Any = None, cache_bound: bool = False) -> tuple[int, list[PollRun]]:
    """Run ``sizes`` in order; returns (max sustained n, runs). Stops after the
    first size that is not sustained."""
    best = 0
    runs: list[PollRun] = []
    for n in sizes:
        runner = run_ours if flow == "ours" else run_baseline
        run = await runner(n, minutes=minutes, seed=seed, cache_bound=cache_bound)
        runs.append(run)
        if log is not None:
            log(run.summary())
        if not run.sustained:
            break
        best = n
    return best, runs
