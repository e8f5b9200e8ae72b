"""The bot as a subprocess (``python -m bot run``) against a fake Bot API and the
simulator running in this process, a fake Bot API that timestamps requests, and
direct population of a bot database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.sandbox.fake_telegram import FakeTelegram
from bot.sandbox.simulator import Simulator
from tests.bench.common import BOT_TOKEN, OPERATOR_KEY, rss_mb

# ---------------------------------------------------------------------- fake Bot API


@dataclass(frozen=True, slots=True)
class Stamp:
    t: float  # time.perf_counter() when the fake had handled the request
    method: str
    params: dict[str, Any]
    status: int


class TimedFakeTelegram(FakeTelegram):
    """:class:`FakeTelegram` that also records when each request was handled."""

    def __init__(self, token: str = BOT_TOKEN, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.stamps: list[Stamp] = []
        self.first_get_updates: float | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info.get("method", "").lower() == "getupdates":
            if self.first_get_updates is None:
                self.first_get_updates = time.perf_counter()  # on arrival (a long poll)
            return await super()._handle(request)
        response = await super()._handle(request)
        now = time.perf_counter()
        if self.calls:
            call = self.calls[-1]  # appended synchronously just before returning
            self.stamps.append(Stamp(now, call.method, call.params, call.status))
        return response

    def answer_times(self) -> dict[str, float]:
        """callback_query_id -> time of its answerCallbackQuery."""
        out: dict[str, float] = {}
        for s in self.stamps:
            if s.method == "answerCallbackQuery":
                qid = str(s.params.get("callback_query_id"))
                out.setdefault(qid, s.t)
        return out

    def chat_request_times(self, methods: tuple[str, ...] = ("sendMessage",)
                           ) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for s in self.stamps:
            if s.method in methods:
                try:
                    chat = int(s.params.get("chat_id"))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
                out.setdefault(chat, []).append(s.t)
        return out


# ------------------------------------------------------------------------ bot process


@dataclass
class BotProcess:
    """``python -m bot run`` configured through the environment."""

    workdir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "bot", "run"])
    starts: int = 0
    kills: int = 0

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "bot.log"

    @classmethod
    def configure(
        cls,
        workdir: Path,
        *,
        telegram_url: str,
        daisysim_url: str,
        db_path: Path,
        admin_ids: list[int] | None = None,
        token: str = BOT_TOKEN,
        api_key: str = OPERATOR_KEY,
        env: dict[str, str] | None = None,
        flood_limit: bool = True,
        concurrent_updates: int | None = None,
        budget_per_minute: int | None = None,
        legacy_update_slots: bool = False,
        ptb_rate_limiter: bool = False,
    ) -> BotProcess:
        """``env``: more settings (``CANCEL_LOCK_SECONDS``...). ``flood_limit=False``,
        ``concurrent_updates=N``, ``legacy_update_slots``, ``budget_per_minute=N`` and
        ``ptb_rate_limiter`` (the old AIORateLimiter) start the bot through
        :mod:`tests.bench.run_bot` (what-if variants / the soak's raised purchase
        and cancel budgets, see there); otherwise it is ``python -m bot run``."""
        full = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DAISYSIM_"))}
        full.update(
            {
                "BOT_TOKEN": token,
                "TELEGRAM_BASE_URL": telegram_url,
                "DAISYSIM_BASE_URL": daisysim_url,
                "DAISYSIM_API_KEY": api_key,
                "FUNDING_MODE": "operator",
                "DATABASE_PATH": str(db_path),
                "ADMIN_IDS": ",".join(str(a) for a in (admin_ids or [])),
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        full.update({k.upper(): v for k, v in (env or {}).items()})
        workdir.mkdir(parents=True, exist_ok=True)
        bot = cls(workdir, full)
        extra: list[str] = []
        if not flood_limit:
            extra.append("--no-flood-limit")
        if ptb_rate_limiter:
            extra.append("--ptb-rate-limiter")
        if concurrent_updates:
            extra += ["--concurrent-updates", str(concurrent_updates)]
        if legacy_update_slots:
            extra.append("--legacy-update-slots")
        if budget_per_minute:
            extra += ["--purchase-limit", str(budget_per_minute),
                      "--cancel-limit", str(budget_per_minute)]
        if extra:
            bot.command = [sys.executable, "-m", "tests.bench.run_bot", *extra]
            root = str(Path(__file__).resolve().parents[2])
            full["PYTHONPATH"] = os.pathsep.join(p for p in (root, full.get("PYTHONPATH")) if p)
        return bot

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running
        log = open(self.log_path, "ab")  # handed to the child, closed here after the spawn
        try:
            log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.starts += 1

    def kill9(self) -> None:
        """SIGKILL this process (only it: by its own pid) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.kills += 1
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM (graceful), SIGKILL after 10 s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""


async def wait_ready(fake: TimedFakeTelegram, bot: BotProcess, limit: float = 30.0) -> float:
    """Wait until the bot process long-polls the fake; returns seconds since spawn."""
    started = time.perf_counter()
    fake.first_get_updates = None
    deadline = started + limit
    while fake.first_get_updates is None:
        if not bot.running:
            raise RuntimeError(f"the bot exited early:\n{bot.log_text()[-4000:]}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the bot did not start polling:\n{bot.log_text()[-4000:]}")
        await asyncio.sleep(0.01)
    return fake.first_get_updates - started


# ------------------------------------------------------------------- DB population


@dataclass
class Population:
    users: list[int]
    remote_ids: list[str]
    activation_ids: list[int]


async def populate(
    db_path: Path,
    sim: Simulator,
    *,
    users: int,
    active: int,
    first_user: int = 100_000,
    credit: Decimal = Decimal("10"),
    app: str = "Signal",
    cancel_lock: float = 3600.0,
    give_up: float = 7200.0,
    api_key: str = OPERATOR_KEY,
) -> Population:
    """A bot database with ``users`` operator-mode users (each credited) and
    ``active`` waiting activations (bought in the simulator's state directly, so
    its ids are real), as the engine itself would have written them: hold,
    charge and release in the ledger; the unlock event already sent."""
    from bot.services.crypto import key_hash, mask_key
    from storage.db import Database

    db = await Database.open(db_path)  # creates + migrates
    await db.close()
    now = sim.clock.now()
    core = sim.core
    acct = core.accounts[api_key]
    user_ids = [first_user + i for i in range(users)]
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            cur = conn.execute(
                "INSERT INTO accounts (kind, owner_user_id, key_hash, key_encrypted,"
                " key_masked, email, created_at) VALUES ('operator', NULL, ?, NULL, ?, NULL, ?)",
                (key_hash(api_key), mask_key(api_key), now),
            )
            account_id = cur.lastrowid
            conn.executemany(
                "INSERT INTO users (id, role, locale, created_at, settings)"
                " VALUES (?, 'user', 'en', ?, '{}')",
                [(u, now) for u in user_ids],
            )
            conn.executemany(
                "INSERT INTO ledger (user_id, amount, kind, note, actor_id, created_at)"
                " VALUES (?, ?, 'credit', 'bench', NULL, ?)",
                [(u, str(credit.quantize(Decimal("0.0001"))), now) for u in user_ids],
            )
            remote_ids: list[str] = []
            act_ids: list[int] = []
            for i in range(active):
                uid = user_ids[i % users]
                act = core.purchase(acct, country="USA", app=app, provider_id=None,
                                    app_name=None, country_name=None)
                price = str(act.price)
                cur = conn.execute(
                    "INSERT INTO activations (user_id, account_id, remote_id, service_code,"
                    " service_name, provider_id, phone, price, cost, state, request_id,"
                    " purchase_sent_at, purchased_at, cancel_after, expires_at, chat_id,"
                    " cancel_available_emitted) VALUES"
                    " (?, ?, ?, ?, ?, NULL, ?, ?, ?, 'waiting', ?, ?, ?, ?, ?, ?, 1)",
                    (uid, account_id, act.aid, app, act.service_label, act.phone, price, price,
                     f"bench-pop-{i}", now, now, now + cancel_lock, now + give_up, uid),
                )
                aid = int(cur.lastrowid or 0)
                act_ids.append(aid)
                remote_ids.append(act.aid)
                conn.executemany(
                    "INSERT INTO ledger (user_id, amount, kind, activation_id, note, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(uid, f"-{price}", "hold", aid, "hold", now),
                     (uid, f"-{price}", "charge", aid, "purchase", now),
                     (uid, price, "release", aid, "hold settled", now)],
                )
    finally:
        conn.close()
    return Population(user_ids, remote_ids, act_ids)


def read_only(db_path: Path) -> sqlite3.Connection:
    """Open a bot database read-only (safe while the bot runs or after a kill)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn

