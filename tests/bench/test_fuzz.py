"""Bad input into the RUNNING app: the real PTB Application long-polling the fake
Bot API, with the engine on the DaisySim simulator, all in-process.

Hypothesis (bounded examples) generates message texts and callback data: random
strings, random prefixes of valid callback data, forged activation ids of
another user, overlong data (the fake rejects > 64 bytes when the bot *sends*
a button, but ``press_data`` forges anything). Asserted, for every update:

* it is answered (callback: answerCallbackQuery; message: a bot message);
* no unhandled exception: no log record at ERROR or above (the app's error
  handler logs unexpected exceptions at ERROR);
* forged ids are refused: the other user's activation, ledger and events rows
  are byte-for-byte unchanged, and nothing of theirs (their phone number) is
  shown to the attacker;
* the bot token and the DaisySim key never appear in any captured log record
  (root logger at DEBUG; the fake's request log is not a log and is not checked).

The app runs on its own event loop in a thread for the whole module, so that
Hypothesis (synchronous) can drive it example after example.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import VirtualClock
from bot.sandbox.fake_telegram import FakeTelegram
from tests.bench.common import BOT_TOKEN, OPERATOR_KEY, start_sim

T = TypeVar("T")
ATTACKER = 7001
VICTIM = 7002
NEXT_ATTACKER = 7100  # each Hypothesis example is a fresh attacker from here on
ADMIN = 1
WAIT = 10.0
SECRETS = (BOT_TOKEN, BOT_TOKEN.split(":", 1)[1], OPERATOR_KEY)
VALID_DATA = (
    "menu:home", "menu:buy", "menu:act", "menu:wal", "menu:hist", "menu:key", "menu:help",
    "buy:list:1", "buy:list:2", "buy:svc:Signal", "buy:svc:sb_wa", "buy:pool:sb_wa:3109",
    "buy:pool:sb_wa:-", "buy:ok:Signal:-:abcde", "buy:ok:sb_wa:3109:zz9zz",
    "buy:again:Signal:-", "act:open:1", "act:ref:1", "act:cancel:1", "hist:all:1",
    "hist:completed:2", "hist:waiting:1", "hist:cancelled:1", "key:set", "key:rm", "key:rmyes",
    "key:rmno", "noop",
)


class Collector(logging.Handler):
    """Every record, from every thread (kept apart from pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            self.records.append(record)

    def text(self, record: logging.LogRecord) -> str:
        out = record.getMessage()
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return out + ("\n" + record.exc_text if record.exc_text else "")

    def errors(self, since: int = 0) -> list[str]:
        with self.guard:
            records = self.records[since:]
        return [f"{r.name}: {self.text(r)}" for r in records if r.levelno >= logging.ERROR]

    def mark(self) -> int:
        with self.guard:
            return len(self.records)


@dataclass
class Bench:
    loop: asyncio.AbstractEventLoop
    fake: FakeTelegram = field(init=False)
    app: Any = field(init=False)
    db_path: Path = field(init=False)
    victim_activation: int = field(init=False)
    victim_phone: str = field(init=False)
    menu_id: int = field(init=False)
    attacker: int = ATTACKER
    closers: list[Any] = field(default_factory=list)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def victim_rows(self) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            rows: list[tuple[Any, ...]] = []
            rows += conn.execute("SELECT * FROM activations WHERE user_id = ? ORDER BY id",
                                 (VICTIM,)).fetchall()
            rows += conn.execute("SELECT * FROM ledger WHERE user_id = ? ORDER BY id",
                                 (VICTIM,)).fetchall()
            rows += conn.execute(
                "SELECT e.* FROM events e JOIN activations a ON a.id = e.activation_id"
                " WHERE a.user_id = ? ORDER BY e.id", (VICTIM,)).fetchall()
            rows += conn.execute("SELECT * FROM users WHERE id = ?", (VICTIM,)).fetchall()
            return rows
        finally:
            conn.close()

    # ------------------------------------------------------------------ actions
    async def press(self, data: str) -> None:
        """The attacker presses a (forged) button on their menu message."""
        qid = self.fake.press_callback(self.attacker, self.menu_id, data, forged=True)
        await self.fake.wait_callback_answer(qid, timeout=WAIT)

    async def say(self, text: str) -> None:
        user = self.fake.user(self.attacker)
        await user.send(text)
        await user.wait_for(lambda m: True, WAIT)

    async def new_attacker(self) -> None:
        """The next actions come from a user the bot has never seen (with their own
        menu message). The bot paces replies to one private chat at Telegram's 1/s
        after a burst: one attacker for every example waited ~1 s per reply."""
        self.attacker = max(self.attacker + 1, NEXT_ATTACKER)
        await self.open_menu()

    async def open_menu(self) -> None:
        user = self.fake.user(self.attacker, first_name="Mallory")
        await user.send("/start")
        menu = await user.wait_for(lambda m: bool(m.buttons), WAIT)
        self.menu_id = menu.message_id


async def _setup(bench: Bench, tmp: Path) -> None:
    from bot.app import build_application, startup
    from bot.config import FundingMode, Settings

    clock = VirtualClock()
    sim = await start_sim(clock, window=3600.0)
    bench.closers.append(sim.close)
    fake = FakeTelegram(BOT_TOKEN)
    await fake.start()
    bench.closers.append(fake.close)
    bench.fake = fake
    bench.db_path = tmp / "bot.sqlite3"
    settings = Settings(
        _env_file=None, bot_token=BOT_TOKEN, telegram_base_url=fake.url,
        daisysim_base_url=sim.base_url, daisysim_api_key=OPERATOR_KEY,
        funding_mode=FundingMode.OPERATOR, database_path=str(bench.db_path),
        admin_ids=[ADMIN], give_up_minutes=60,
    )
    app = build_application(settings, clock=clock)
    await app.initialize()
    await startup(app)
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    bench.app = app
    engine = app.bot_data.engine
    # The victim owns a waiting number; the attacker has an empty wallet.
    victim = fake.user(VICTIM, first_name="Victim")
    await victim.send("/start")
    await victim.wait_for(lambda m: True, WAIT)
    await engine.admin_adjust(ADMIN, VICTIM, Decimal("5"), "fuzz")
    price = next(s.price for s in await engine.list_services(VICTIM) if s.code == "Signal")
    act = await engine.buy(VICTIM, "Signal", None, price, request_id="fuzz-victim",
                           chat_id=VICTIM)
    assert act.phone is not None
    bench.victim_activation = act.id
    bench.victim_phone = act.phone
    await bench.open_menu()


async def _teardown(bench: Bench) -> None:
    from bot.app import shutdown

    app = bench.app
    if app is not None:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await shutdown(app)
        await app.shutdown()
    for close in reversed(bench.closers):
        await close()


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    handler = Collector()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    levels = {name: logging.getLogger(name).level for name in ("bot", "telegram", "storage")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="module")
def bench(collector: Collector) -> Iterator[Bench]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-app", daemon=True)
    thread.start()
    b = Bench(loop)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        try:
            b.run(_setup(b, Path(tmp)))
            yield b
        finally:
            try:
                b.run(_teardown(b))
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(10)
                loop.close()


# -------------------------------------------------------------------- strategies

prefixes = st.sampled_from(VALID_DATA).flatmap(
    lambda d: st.integers(0, len(d)).map(lambda k: d[:k]))
mutated = st.tuples(st.sampled_from(VALID_DATA), st.text(max_size=12)).map(
    lambda p: p[0] + p[1])
overlong = st.one_of(
    st.text(min_size=65, max_size=300),
    st.sampled_from(VALID_DATA).map(lambda d: d + ":" + "9" * 80),
    st.integers(10**12, 10**40).map(lambda n: f"act:cancel:{n}"),
)
numbers = st.one_of(st.integers(-5, 10**15), st.just(2**63), st.just(-(2**63)))
forged_act = st.tuples(st.sampled_from(("open", "ref", "cancel")), numbers).map(
    lambda p: f"act:{p[0]}:{p[1]}")
callback_data = st.one_of(st.text(max_size=80), prefixes, mutated, overlong, forged_act)

commands = st.tuples(
    st.sampled_from(("/start", "/buy", "/active", "/wallet", "/history", "/cancel", "/help",
                     "/admin", "/credit", "/debit", "/key", "/start@other_bot")),
    st.text(max_size=30),
).map(lambda p: f"{p[0]} {p[1]}".rstrip())
texts = st.one_of(st.text(min_size=1, max_size=300), commands,
                  st.text(alphabet="0123456789 -.,$", min_size=1, max_size=20)).filter(
    lambda s: bool(s.strip()))
actions = st.lists(
    st.one_of(callback_data.map(lambda d: ("press", d)), texts.map(lambda t: ("say", t))),
    min_size=1, max_size=4,
)


# ------------------------------------------------------------------------- tests


def _assert_clean(bench: Bench, collector: Collector, since: int, before: list[Any]) -> None:
    errors = collector.errors(since)
    assert not errors, "\n".join(errors)
    assert bench.victim_rows() == before
    shown = "\n".join(m.text for m in bench.fake.transcript(bench.attacker))
    assert bench.victim_phone not in shown


def test_forged_activation_ids_of_another_user_are_refused(
    bench: Bench, collector: Collector
) -> None:
    before = bench.victim_rows()
    assert before, "the victim's rows must exist"
    since = collector.mark()
    victim_id = bench.victim_activation
    for data in (f"act:open:{victim_id}", f"act:ref:{victim_id}", f"act:cancel:{victim_id}",
                 f"act:cancel:{victim_id}", f"act:open:{victim_id:012d}"):
        bench.run(bench.press(data))
    _assert_clean(bench, collector, since, before)
    # The victim's number is untouched upstream-facing too: still waiting, no cancel.
    engine = bench.app.bot_data.engine
    act = bench.run(engine.get_activation(VICTIM, victim_id))
    assert act.state.value == "waiting" and act.refund_amount is None


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=actions)
def test_random_input_is_answered_and_harmless(
    bench: Bench, collector: Collector, steps: list[tuple[str, str]]
) -> None:
    bench.run(bench.new_attacker())
    before = bench.victim_rows()
    since = collector.mark()
    for kind, value in steps:
        if kind == "press":
            bench.run(bench.press(value))
        else:
            bench.run(bench.say(value))
    _assert_clean(bench, collector, since, before)


def test_secrets_never_reach_the_logs(bench: Bench, collector: Collector) -> None:
    # Runs after the others in this module (file order): every record so far.
    bench.run(bench.press("menu:wal"))
    bench.run(bench.say("/start"))
    with collector.guard:
        records = list(collector.records)
    assert len(records) > 50  # DEBUG logging really was captured
    for record in records:
        text = collector.text(record)
        for secret in SECRETS:
            assert secret not in text, f"secret in a {record.name} log record"
