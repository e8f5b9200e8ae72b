"""App-level benchmarks: the real python-telegram-bot Application over the fake
Bot API.

* :func:`run_updates` — the bot as a subprocess (``python -m bot run``, its own
  core) long-polling :class:`~tests.bench.harness.TimedFakeTelegram` in this
  process; many fake users send /start and press menu buttons (Wallet / History /
  Menu). Throughput is measured closed-loop (``concurrency`` users always
  waiting for the bot), per-update latency open-loop at a fixed offered rate.
  The database holds ``db_users`` users and ``active`` waiting activations
  (polled against the simulator meanwhile); the process RSS is read at the end.
* :func:`run_bot_share` — in-process app on a VirtualClock: codes delivered at
  random virtual times; OTP latency on the virtual clock (delivery → the code
  event handed to the app's handler) and the bot's own share in wall time
  (handler invoked → the fake Bot API has received the OTP ``sendMessage``).
* :func:`run_restore` — time ``Engine.start()`` and the app's start-up on a
  database with ``active`` waiting activations and ``users`` users.
* :func:`run_first_contact` — the bot as a subprocess; ``users`` users send
  ``per_user`` commands each at once (a flood the 30/s limit needs a while to
  answer), then a new user sends /start and an idle user presses a button: wall
  seconds until the new user's first reply and until the press is answered
  (answerCallbackQuery), and until the flood is drained. ``ptb_rate_limiter``
  runs the same with python-telegram-bot's AIORateLimiter (the old limiter);
  ``concurrent_updates=N`` admits up to N updates at once (a what-if: every update
  handled at once, so the queue in front of Telegram is the limiter's alone).
"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.clock import SystemClock, VirtualClock
from bot.sandbox.fake_telegram import FakeUser
from bot.sandbox.simulator import Simulator
from tests.bench.common import (
    BOT_TOKEN,
    OPERATOR_KEY,
    Pump,
    cpu_seconds,
    percentile,
    start_sim,
)
from tests.bench.harness import BotProcess, TimedFakeTelegram, populate, wait_ready
from tests.texts import button, lead, pattern, text

WALLET = button("btn_wallet")
HISTORY = button("btn_history")
HOME = button("btn_home")
OTP_PREFIX = lead("otp_message")  # "🔑 Code for", also the start of the sent HTML
ADMIN_ID = 1
WAIT = 30.0


# ------------------------------------------------------------------------ updates/s


@dataclass
class UpdatesResult:
    users: int  # users who interacted
    db_users: int
    active: int
    updates: int = 0  # updates in the throughput phase
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # throughput phase
    paced_rate: float = 0.0
    paced_latencies_ms: list[float] = field(default_factory=list)
    unanswered: int = 0
    errors: list[str] = field(default_factory=list)
    rss_mb: float = 0.0
    ready_seconds: float = 0.0  # process spawn -> first getUpdates
    bot_cpu: float = 0.0  # CPU seconds of the bot process in the throughput phase
    driver_cpu: float = 0.0  # CPU seconds of this process (fake Bot API + users) in it
    bot_error_lines: int = 0
    paced_bot_cpu: float = 0.0  # CPU seconds of the bot process in the paced phase
    paced_wall: float = 0.0  # wall seconds of the paced phase (until its last answer)
    meter_cpu: float = 0.0  # run_updates(meter=...): its CPU seconds in the throughput phase
    paced_meter_cpu: float = 0.0  # ... and in the paced phase

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0


class UserDriver:
    """One fake user's menu walk; every step returns the update's latency (ms):
    enqueued → the bot's first answer for it reached the fake."""

    def __init__(self, fake: TimedFakeTelegram, user: FakeUser) -> None:
        self.fake = fake
        self.user = user
        self.menu_id: int | None = None
        self.step = 0

    async def start(self) -> float:
        t0 = time.perf_counter()
        await self.user.send("/start")
        msg = await self.user.wait_for(lambda m: m.has_button(WALLET), WAIT)
        self.menu_id = msg.message_id
        return self._first_after(t0, ("sendMessage",)) - t0

    async def press(self, label: str, then: str) -> float:
        assert self.menu_id is not None
        t0 = time.perf_counter()
        qid = await self.user.press_nowait(label, message_id=self.menu_id)
        await self.fake.wait_callback_answer(qid, timeout=WAIT)
        mid = self.menu_id
        await self.user.wait_for(lambda m: m.message_id == mid and m.has_button(then), WAIT)
        answered = self.fake.answer_times().get(qid)
        assert answered is not None
        return answered - t0

    async def next(self) -> float:
        """The next step of the walk: Wallet → Menu → History → Menu → ..."""
        plan = ((WALLET, HOME), (HOME, WALLET), (HISTORY, HOME), (HOME, WALLET))
        label, then = plan[self.step % len(plan)]
        self.step += 1
        return await self.press(label, then)

    def _first_after(self, t0: float, methods: tuple[str, ...]) -> float:
        times = [
            s.t for s in self.fake.stamps
            if s.t >= t0 and s.method in methods and str(s.params.get("chat_id")) == str(
                self.user.id)
        ]
        assert times, "no reply recorded"
        return min(times)


async def _pool(items: list[Any], concurrency: int,
                work: Callable[[Any], Awaitable[None]]) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await work(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_updates(
    *,
    users: int = 200,
    walkers: int = 50,
    steps: int = 4,
    db_users: int = 0,
    active: int = 0,
    concurrency: int = 32,
    paced_rate: float = 100.0,
    paced_seconds: float = 5.0,
    seed: int = 1,
    flood_limit: bool = True,
    concurrent_updates: int | None = None,
    env: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    populate_with: Callable[[Simulator, int, int, int], Awaitable[object]] | None = None,
    meter: Callable[[], float] | None = None,
) -> UpdatesResult:
    """``users`` fake users each send /start and press Wallet; ``walkers`` of them
    then walk ``steps`` more menu steps. ``db_users`` / ``active`` pre-populate the
    database (the RSS scenario). Then an open-loop phase at ``paced_rate``.
    ``env``: more settings for the bot process (``TELEGRAM_HTTP_BACKEND``...).
    ``populate_with(sim, users, active, first_user)``: populates instead of the SQLite
    file (another database, e.g. ``DATABASE_URL`` in ``env``); ``meter()``: CPU seconds
    of something else (the database server), read with the bot's at each phase."""
    rng = random.Random(seed)
    result = UpdatesResult(users=users, db_users=max(db_users, users), active=active)
    sim = await start_sim(SystemClock(), window=4 * 3600.0, seed=seed)
    fake = TimedFakeTelegram()
    await fake.start()
    with tempfile.TemporaryDirectory(prefix="bench-updates-") as tmp:
        work = Path(tmp)
        db_path = work / "bot.sqlite3"
        first_user = 100_000
        if populate_with is not None:
            await populate_with(sim.sim, max(db_users, users), active, first_user)
        elif db_users or active:
            await populate(db_path, sim.sim, users=max(db_users, users), active=active,
                           first_user=first_user)
        bot = BotProcess.configure(
            work, telegram_url=fake.url, daisysim_url=sim.base_url, db_path=db_path,
            admin_ids=[ADMIN_ID], flood_limit=flood_limit,
            concurrent_updates=concurrent_updates,
            env={"LOG_LEVEL": "WARNING", "GIVE_UP_MINUTES": "180", **(env or {})},
        )
        bot.start()
        try:
            result.ready_seconds = await wait_ready(fake, bot)
            drivers = [UserDriver(fake, fake.user(first_user + i, first_name=f"U{i}"))
                       for i in range(users)]

            async def first_steps(d: UserDriver) -> None:
                try:
                    result.latencies_ms.append(await d.start() * 1000)
                    result.latencies_ms.append(await d.next() * 1000)
                    result.updates += 2
                except AssertionError as exc:
                    result.unanswered += 1
                    result.errors.append(str(exc)[:300])

            async def walk(d: UserDriver) -> None:
                for _ in range(steps):
                    try:
                        result.latencies_ms.append(await d.next() * 1000)
                        result.updates += 1
                    except AssertionError as exc:
                        result.unanswered += 1
                        result.errors.append(str(exc)[:300])
                        return

            t0 = time.perf_counter()
            cpu0, bot_cpu0 = cpu_seconds(), cpu_seconds(bot.pid)
            meter0 = meter() if meter else 0.0
            await _pool(drivers, concurrency, first_steps)
            await _pool(drivers[:walkers], concurrency, walk)
            result.seconds = time.perf_counter() - t0
            result.driver_cpu = cpu_seconds() - cpu0
            result.bot_cpu = cpu_seconds(bot.pid) - bot_cpu0
            result.meter_cpu = (meter() - meter0) if meter else 0.0
            if log:
                log(f"updates: {result.updates} in {result.seconds:.1f}s "
                    f"= {result.per_second:.0f}/s (concurrency {concurrency})")

            # Open loop: one update every 1/rate s, each from a user not mid-step.
            if paced_seconds > 0 and paced_rate > 0:
                result.paced_rate = paced_rate
                idle = [d for d in drivers[:max(walkers, 1)] if d.menu_id is not None]
                rng.shuffle(idle)
                pending: set[asyncio.Task[None]] = set()

                async def one(d: UserDriver) -> None:
                    try:
                        result.paced_latencies_ms.append(await d.next() * 1000)
                    except AssertionError as exc:
                        result.unanswered += 1
                        result.errors.append(str(exc)[:300])
                    finally:
                        idle.append(d)

                start = time.perf_counter()
                paced_cpu0 = cpu_seconds(bot.pid)
                paced_meter0 = meter() if meter else 0.0
                sent = 0
                while time.perf_counter() - start < paced_seconds:
                    due = start + sent / paced_rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if not idle:
                        await asyncio.sleep(0.001)
                        continue
                    task = asyncio.ensure_future(one(idle.pop(0)))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    sent += 1
                if pending:
                    await asyncio.gather(*pending)
                result.paced_wall = time.perf_counter() - start
                result.paced_bot_cpu = cpu_seconds(bot.pid) - paced_cpu0
                result.paced_meter_cpu = (meter() - paced_meter0) if meter else 0.0
            result.rss_mb = bot.rss_mb()
            # Errors while under load (python-telegram-bot logs one at shutdown when its
            # final getUpdates waits behind the cancelled long poll: not counted).
            bad = [line for line in bot.log_text().splitlines()
                   if " ERROR " in line or " CRITICAL " in line]
            result.bot_error_lines = len(bad)
            result.errors += [f"bot log: {line[:300]}" for line in bad[:5]]
        finally:
            await asyncio.to_thread(bot.stop)  # the fake must answer its last calls
            await fake.close()
            await sim.close()
    return result


# ---------------------------------------------------------------------------- flood


@dataclass
class FloodResult:
    flood: int  # /help sent by the flooding user while their /buy waits
    slow: float  # seconds the first /apps call takes upstream
    quiet_ms: list[float] = field(default_factory=list)  # the other user's /start, no flood
    during_ms: float = float("nan")  # the other user's /start during the flood
    buy_seconds: float = float("nan")  # the flooding user's /buy: sent → service list
    answered: int = 0  # the flooding user's /help answered
    notes: int = 0  # flood notes the flooding user got
    errors: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return self.flood - self.answered


async def run_flood(flood: int = 100, *, slow: float = 6.0, samples: int = 5, seed: int = 1,
                    legacy: bool = False, log: Callable[[str], None] | None = None
                    ) -> FloodResult:
    """Issue 9.4: the bot as a subprocess; user A's ``/buy`` waits ``slow`` s on
    DaisySim's ``/apps`` while A sends ``flood`` × ``/help``; then user B sends
    ``/start``. B's latency (sent → the fake Bot API received B's answer) during the
    flood vs. without one. ``legacy``: the update processor as before the fix (PTB's
    64-slot semaphore taken before the per-user lock, no per-user bound)."""
    from bot.telegram.texts import plain

    result = FloodResult(flood, slow)
    sim = await start_sim(SystemClock(), window=4 * 3600.0, seed=seed)
    fake = TimedFakeTelegram()
    await fake.start()
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        work = Path(tmp)
        bot = BotProcess.configure(
            work, telegram_url=fake.url, daisysim_url=sim.base_url,
            db_path=work / "bot.sqlite3", admin_ids=[ADMIN_ID],
            legacy_update_slots=legacy, env={"LOG_LEVEL": "WARNING"},
        )
        bot.start()
        try:
            await wait_ready(fake, bot)
            flooder = fake.user(200_001, first_name="Flo")
            other = UserDriver(fake, fake.user(200_002, first_name="Bob"))
            for _ in range(samples):
                result.quiet_ms.append(await other.start() * 1000)
            sim.sim.add_fault("apps", latency=slow)
            t_buy = time.perf_counter()
            await flooder.send("/buy")
            while sim.sim.stats.count(OPERATOR_KEY, "apps") < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.005)  # until the slow /apps call is on the wire
            for _ in range(flood):
                await flooder.send("/help")
            result.during_ms = await other.start() * 1000
            await flooder.wait_for(text("buy_list_title"), WAIT, since=0)
            result.buy_seconds = time.perf_counter() - t_buy
            await fake.wait_idle(quiet=0.5, timeout=WAIT)
            texts = [m.text for m in flooder.bot_messages()]
            help_answer = pattern("help")
            result.answered = sum(help_answer.search(shown) is not None for shown in texts)
            result.notes = sum(shown == plain("en", "flood_note") for shown in texts)
            if log:
                log(f"flood: other user's /start {result.during_ms:.0f} ms during, "
                    f"{percentile(result.quiet_ms, 50):.0f} ms quiet; flooder's /buy "
                    f"{result.buy_seconds:.1f} s, {result.answered}/{flood} /help answered, "
                    f"{result.notes} note(s){' (legacy processor)' if legacy else ''}")
        except AssertionError as exc:
            result.errors.append(str(exc)[:300])
        finally:
            await asyncio.to_thread(bot.stop)  # the fake must answer its last calls
            await fake.close()
            await sim.close()
    return result


# ----------------------------------------------------------------------- bot share


@dataclass
class ShareResult:
    codes: int
    delivered: int = 0
    pushed: int = 0
    duplicates: int = 0
    virtual_latencies: list[float] = field(default_factory=list)  # seconds
    share_ms: list[float] = field(default_factory=list)  # wall ms
    rate_limited: int = 0


def _settings(tmp: Path, fake_url: str, sim_url: str, **overrides: Any) -> Any:
    from bot.config import FundingMode, Settings

    values: dict[str, Any] = {
        "bot_token": BOT_TOKEN,
        "telegram_base_url": fake_url,
        "daisysim_base_url": sim_url,
        "daisysim_api_key": OPERATOR_KEY,
        "funding_mode": FundingMode.OPERATOR,
        "database_path": str(tmp / "bot.sqlite3"),
        "admin_ids": [ADMIN_ID],
        "give_up_minutes": 180,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def run_bot_share(codes: int = 40, *, minutes: float = 10.0, seed: int = 1
                        ) -> ShareResult:
    from bot.app import build_application, kick, shutdown, startup
    from bot.daisysim import get_limiter
    from bot.services.api import Event, EventHandler, EventKind
    from bot.services.engine import Engine

    result = ShareResult(codes)
    clock = VirtualClock()
    sim = await start_sim(clock, window=4 * 3600.0, seed=seed)
    fake = TimedFakeTelegram()
    await fake.start()
    entries: dict[int, tuple[float, float, str]] = {}  # chat -> (virtual, wall, code)
    pushes: dict[str, int] = {}

    class TimedEngine(Engine):
        def subscribe(self, handler: EventHandler) -> None:
            async def timed(event: Event) -> None:
                if event.kind == EventKind.CODE_RECEIVED:
                    act = event.activation
                    assert act.chat_id is not None and act.code is not None
                    entries.setdefault(act.chat_id, (clock.now(), time.perf_counter(), act.code))
                    pushes[act.code] = pushes.get(act.code, 0) + 1
                await handler(event)

            super().subscribe(timed)

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-share-") as tmp:
        settings = _settings(Path(tmp), fake.url, sim.base_url)
        engine = TimedEngine(settings, clock=clock)
        app = build_application(settings, engine=engine, clock=clock)
        await app.initialize()
        await startup(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        pump = Pump(clock, sim)
        try:
            users = [fake.user(10_000 + i, first_name=f"U{i}") for i in range(codes)]
            for u in users:
                await u.send("/start")
            for u in users:
                await u.wait_for(lambda m: m.has_button(WALLET), WAIT)
                await engine.admin_adjust(ADMIN_ID, u.id, Decimal("10"), "bench")
            price = next(s.price for s in await engine.list_services(users[0].id)
                         if s.code == "Signal")
            remote: dict[int, str] = {}
            budget = get_limiter(OPERATOR_KEY, clock).purchase
            for i, u in enumerate(users):
                wait = budget.wait_time()
                if wait > 0:
                    await _advance(app, engine, clock, clock.now() + wait, kick)
                act = await pump.drive(engine.buy(u.id, "Signal", None, price,
                                                  request_id=f"share-{i}", chat_id=u.id))
                assert act.remote_id is not None
                remote[u.id] = act.remote_id
            t0 = clock.now()
            span = minutes * 60.0 - 30.0
            plan = sorted((t0 + rng.uniform(0, span), uid, f"{rng.randrange(10**6):06d}")
                          for uid in remote)
            delivered: dict[int, tuple[float, str]] = {}
            for when, uid, code in plan:
                await _advance(app, engine, clock, when, kick)
                sim.sim.deliver_sms(remote[uid], code)
                delivered[uid] = (clock.now(), code)
            await _advance(app, engine, clock, clock.now() + 60.0, kick)
            await fake.wait_idle(quiet=0.1, timeout=WAIT)
            result.delivered = len(delivered)
            sends = fake.stamps
            for uid, (at, code) in delivered.items():
                entry = entries.get(uid)
                if entry is None:
                    continue
                v_at, wall_at, seen = entry
                result.virtual_latencies.append(v_at - at)
                otp = [s.t for s in sends
                       if s.method == "sendMessage" and str(s.params.get("chat_id")) == str(uid)
                       and str(s.params.get("text", "")).startswith(OTP_PREFIX) and s.t >= wall_at]
                if otp and seen == code:
                    result.pushed += 1
                    result.share_ms.append((min(otp) - wall_at) * 1000)
            result.duplicates = sum(n - 1 for n in pushes.values() if n > 1)
            result.rate_limited = sim.rate_limited()
        finally:
            if app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await shutdown(app)
            await app.shutdown()
            await engine.close()
            await fake.close()
            await sim.close()
    return result


async def _advance(app: Any, engine: Any, clock: VirtualClock, target: float,
                   kick: Callable[[Any], Awaitable[float | None]]) -> None:
    """Move the clock to ``target``, stopping at every engine due time on the way
    (as the JobQueue would) and running the due work."""
    for _ in range(100_000):
        due = engine.next_due()
        if due is None or due > target:
            break
        if due > clock.now():
            clock.set(due)
        await kick(app)
    if target > clock.now():
        clock.set(target)
    await kick(app)


# ------------------------------------------------------------------------- restore


@dataclass
class RestoreResult:
    active: int
    users: int
    populate_seconds: float = 0.0
    engine_start_seconds: float = 0.0
    app_startup_seconds: float = 0.0
    tracked: int = 0


async def run_restore(active: int = 1000, users: int = 10_000, *, seed: int = 1
                      ) -> RestoreResult:
    """Populate a database, then time ``Engine.start()`` and the app's start-up
    (initialize + startup: engine start, setMyCommands) on it."""
    from bot.app import build_application, shutdown, startup
    from bot.services.engine import Engine

    result = RestoreResult(active, users)
    sim = await start_sim(SystemClock(), window=4 * 3600.0, seed=seed)
    fake = TimedFakeTelegram()
    await fake.start()
    with tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        t = time.perf_counter()
        await populate(Path(tmp) / "bot.sqlite3", sim.sim, users=users, active=active)
        result.populate_seconds = time.perf_counter() - t
        settings = _settings(Path(tmp), fake.url, sim.base_url)
        engine = Engine(settings)
        t = time.perf_counter()
        await engine.start()
        result.engine_start_seconds = time.perf_counter() - t
        result.tracked = len(engine.inspect.tracked())
        await engine.close()
        app = build_application(settings)
        t = time.perf_counter()
        await app.initialize()
        await startup(app)
        result.app_startup_seconds = time.perf_counter() - t
        await shutdown(app)
        await app.shutdown()
    await fake.close()
    await sim.close()
    return result


# -------------------------------------------------------------------- first contact


@dataclass
class FirstContactResult:
    users: int
    per_user: int
    limiter: str
    first_reply_s: float = math.nan  # new user's /start → their first reply (sendMessage)
    press_answer_s: float = math.nan  # an idle user's press → its answerCallbackQuery
    press_reply_s: float = math.nan  # ... → the edited menu
    drain_s: float = math.nan  # flood sent → every flood command answered
    unanswered: int = 0  # flood users with fewer replies than commands
    bot_error_lines: int = 0

    @property
    def updates(self) -> int:
        return self.users * self.per_user


async def run_first_contact(
    users: int = 200, per_user: int = 10, *, ptb_rate_limiter: bool = False,
    concurrent_updates: int | None = None, seed: int = 1,
    log: Callable[[str], None] | None = None,
) -> FirstContactResult:
    result = FirstContactResult(users, per_user, "AIORateLimiter" if ptb_rate_limiter
                                else "TelegramRateLimiter")
    if concurrent_updates:
        result.limiter += f", {concurrent_updates} updates at once"
    sim = await start_sim(SystemClock(), window=4 * 3600.0, seed=seed)
    fake = TimedFakeTelegram()
    await fake.start()
    limit = 60.0 + users * per_user / 10.0  # safety net: 10/s is far below either limiter
    with tempfile.TemporaryDirectory(prefix="bench-first-contact-") as tmp:
        work = Path(tmp)
        bot = BotProcess.configure(
            work, telegram_url=fake.url, daisysim_url=sim.base_url, db_path=work / "bot.sqlite3",
            admin_ids=[ADMIN_ID], ptb_rate_limiter=ptb_rate_limiter,
            concurrent_updates=concurrent_updates, env={"LOG_LEVEL": "WARNING"},
        )
        bot.start()
        try:
            await wait_ready(fake, bot)
            idle = UserDriver(fake, fake.user(500_000, first_name="Idle"))
            await idle.start()
            await fake.wait_idle(quiet=0.5, timeout=WAIT)
            flood = [fake.user(100_000 + i, first_name=f"F{i}") for i in range(users)]
            t_flood = time.perf_counter()
            for k in range(per_user):
                for u in flood:
                    await u.send("/start" if k == 0 else "/wallet")
            newcomer = fake.user(900_000, first_name="New")
            t_new = time.perf_counter()
            await newcomer.send("/start")
            assert idle.menu_id is not None
            t_press = time.perf_counter()
            qid = await idle.user.press_nowait(WALLET, message_id=idle.menu_id)
            mid = idle.menu_id
            await newcomer.wait_for(lambda m: m.has_button(WALLET), limit)
            result.first_reply_s = min(
                st.t for st in fake.stamps if st.method == "sendMessage"
                and str(st.params.get("chat_id")) == str(newcomer.id)) - t_new
            await fake.wait_callback_answer(qid, timeout=limit)
            result.press_answer_s = fake.answer_times()[qid] - t_press
            await idle.user.wait_for(lambda m: m.message_id == mid and m.has_button(HOME), limit)
            result.press_reply_s = max(
                st.t for st in fake.stamps if st.method == "editMessageText"
                and str(st.params.get("chat_id")) == str(idle.user.id)) - t_press
            await fake.wait_idle(quiet=1.0, timeout=limit)
            replies = fake.chat_request_times(("sendMessage",))
            done = [max(replies.get(u.id, [t_flood])) for u in flood]
            result.unanswered = sum(1 for u in flood if len(replies.get(u.id, [])) < per_user)
            result.drain_s = max(done) - t_flood
            bad = [line for line in bot.log_text().splitlines()
                   if " ERROR " in line or " CRITICAL " in line]
            result.bot_error_lines = len(bad)
            if log:
                log(f"first contact ({result.limiter}): {result.updates} updates from {users} "
                    f"users; new user's /start answered in {result.first_reply_s:.2f}s, press "
                    f"answered in {result.press_answer_s:.2f}s (menu edited in "
                    f"{result.press_reply_s:.2f}s), flood drained in {result.drain_s:.1f}s, "
                    f"unanswered {result.unanswered}, ERROR lines {result.bot_error_lines}")
        finally:
            await asyncio.to_thread(bot.stop)  # the fake must answer its last calls
            await fake.close()
            await sim.close()
    return result
