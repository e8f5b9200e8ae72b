"""End-to-end harness: the real PTB Application over HTTP.

* FakeTelegram (strict Bot API) and the DaisySim simulator run in-process on
  127.0.0.1 (ephemeral ports).
* One VirtualClock is shared by the simulator and the engine, so the 180 s cancel
  lock and the 20 min give-up time pass instantly: :meth:`Harness.advance` moves
  the clock through every due time of the engine and calls ``kick`` (what the
  JobQueue does in production).
* The bot long-polls the fake server (``getUpdates`` with ``timeout=1``), exactly
  as in production; waiting for replies is event-driven (``FakeUser.wait_for``,
  ``press`` waits for answerCallbackQuery), timeouts are safety nets only.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet

from bot.app import build_application, kick, shutdown, startup
from bot.clock import VirtualClock
from bot.config import FundingMode, Settings
from bot.sandbox.fake_telegram import ChatMessage, FakeTelegram, FakeUser
from bot.sandbox.simulator import Simulator, SimulatorServer, start_simulator
from bot.services.api import Activation, EngineAPI
from bot.telegram.context import DaisyApp
from tests.conftest import ON_POSTGRES
from tests.texts import pattern, text

TOKEN = "4242:e2e-test-token-not-a-real-one"
OP_KEY = "sk_operator_e2e_0123456789abcdef0123"
USER_KEY = "sk_user_alice_e2e_9f8e7d6c5b4a39281706"
ADMIN = 1000
ALICE = 1
BOB = 2
FERNET = Fernet.generate_key().decode()
WAIT = 10.0  # safety net for event-driven waits (seconds)


@dataclass
class Harness:
    tmp_path: Path
    clock: VirtualClock
    sim: Simulator
    sim_server: SimulatorServer
    fake: FakeTelegram
    mode: FundingMode
    overrides: dict[str, Any] = field(default_factory=dict)
    app: DaisyApp | None = None
    daisysim_transport: Any = None  # e.g. a GatedTransport; None: plain HTTP
    # DAISYBOT_TEST_BACKEND=postgresql: the test's fresh PostgreSQL database
    database_url: str | None = None

    # ------------------------------------------------------------ lifecycle
    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "bot_token": TOKEN,
            "telegram_base_url": self.fake.url,
            "daisysim_base_url": self.sim_server.base_url,
            "funding_mode": self.mode,
            "database_path": str(self.tmp_path / "daisybot.sqlite3"),
            "encryption_key": FERNET,
            "admin_ids": [ADMIN],
            "allowed_user_ids": [],
            "give_up_minutes": 20,
            "conversation_timeout_seconds": 600,
        }
        if self.mode == FundingMode.OPERATOR:
            values["daisysim_api_key"] = OP_KEY
        if self.database_url is not None:
            values["database_url"] = self.database_url
        values.update(self.overrides)
        return Settings(_env_file=None, **values)

    async def start_bot(self) -> DaisyApp:
        assert self.app is None
        app = build_application(
            self.settings(), clock=self.clock, daisysim_transport=self.daisysim_transport
        )
        await app.initialize()
        await startup(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        self.app = app
        await self.kick()
        return app

    async def stop_bot(self) -> None:
        app, self.app = self.app, None
        if app is None:
            return
        assert app.updater is not None
        if app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await shutdown(app)
        await app.shutdown()

    async def restart_bot(self) -> DaisyApp:
        await self.stop_bot()
        return await self.start_bot()

    # ------------------------------------------------------------ time
    @property
    def engine(self) -> EngineAPI:
        assert self.app is not None
        return self.app.bot_data.engine

    async def kick(self) -> float | None:
        assert self.app is not None
        return await kick(self.app)

    async def advance(self, seconds: float) -> None:
        """Move the shared clock forward, stopping at every engine due time on the
        way (as the JobQueue would), then let the bot settle."""
        target = self.clock.now() + seconds
        for _ in range(10_000):
            due = self.engine.next_due()
            if due is None or due > target:
                break
            if due > self.clock.now():
                self.clock.set(due)
            await self.kick()
        if target > self.clock.now():
            self.clock.set(target)
        await self.kick()
        await self.settle()

    async def settle(self) -> None:
        await self.fake.wait_idle(quiet=0.05, timeout=WAIT)

    # ------------------------------------------------------------ helpers
    def user(self, user_id: int = ALICE, first_name: str = "Alice") -> FakeUser:
        return self.fake.user(user_id, first_name=first_name)

    async def credit(self, user_id: int, amount: str) -> Decimal:
        return await self.engine.admin_adjust(ADMIN, user_id, Decimal(amount), "test credit")

    async def activations(self, user_id: int = ALICE) -> list[Activation]:
        page = await self.engine.history(user_id, "all", 1, 100)
        return list(page.items)

    def sim_activations(self) -> list[dict[str, Any]]:
        state = self.sim.state()
        acts = state.get("activations", [])
        return list(acts.values()) if isinstance(acts, dict) else list(acts)

    async def buy(
        self, user: FakeUser, service_label: str | re.Pattern[str],
        pool_label: str | re.Pattern[str] | None = None,
    ) -> ChatMessage:
        """/buy → service → (pool) → Confirm; returns the order message.

        ``service_label``: a label, e.g. ``tests.texts.service_button("Signal", "$0.60")``
        (which also matches the "recently bought" form)."""
        await user.send("/buy")
        await user.wait_for(text("buy_list_title"), WAIT)
        await user.press(service_label)
        if pool_label is not None:
            await user.wait_for(pattern("buy_pools_title"), WAIT)
            await user.press(pool_label)
        confirm = await user.wait_for(pattern("buy_confirm"), WAIT)
        await user.press(pattern("btn_confirm"), message_id=confirm.message_id)
        number = pattern("order_number")
        return await user.wait_for(
            lambda m: m.message_id == confirm.message_id and number.search(m.text) is not None,
            WAIT,
        )


class GatedTransport(httpx.AsyncBaseTransport):
    """Real HTTP to the simulator, except that requests whose path ends with one of
    ``hold`` wait until :meth:`release` — a blocked upstream call, without wall-clock
    sleeps. ``entered`` is set when a held request is on the wire."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.hold: set[str] = set()
        self.entered = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self.hold.clear()
        self._released.set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if any(request.url.path.endswith(path) for path in self.hold):
            self.entered.set()
            await self._released.wait()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest_asyncio.fixture
async def make_harness(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[HarnessFactory]:
    created: list[Harness] = []
    # one database per test, as the SQLite file in tmp_path is
    database_url = request.getfixturevalue("postgres_migrated_url") if ON_POSTGRES else None

    async def factory(
        mode: FundingMode = FundingMode.OPERATOR, start: bool = True, **overrides: Any
    ) -> Harness:
        clock = VirtualClock()
        sim = Simulator(clock=clock, cancel_lock=180.0, window=1200.0, auto_sms=None)
        if mode == FundingMode.OPERATOR:
            sim.add_account(OP_KEY, Decimal("500"), email="operator@example.com")
        sim.add_account(USER_KEY, Decimal("20"), email="alice@example.com")
        sim_server = await start_simulator(sim, host="127.0.0.1", port=0)
        fake = FakeTelegram(TOKEN)
        await fake.start()
        h = Harness(tmp_path, clock, sim, sim_server, fake, mode, dict(overrides))
        h.database_url = database_url
        created.append(h)
        if start:
            await h.start_bot()
        return h

    yield factory
    for h in created:
        try:
            await h.stop_bot()
        finally:
            await h.fake.close()
            await h.sim_server.close()


@pytest_asyncio.fixture
async def h(make_harness: HarnessFactory) -> Harness:
    """Operator mode, Alice credited with $10."""
    harness = await make_harness(FundingMode.OPERATOR)
    await harness.credit(ALICE, "10")
    return harness


@pytest_asyncio.fixture
async def h_own(make_harness: HarnessFactory) -> Harness:
    """Own-key mode, no key linked yet."""
    return await make_harness(FundingMode.OWN_KEY)
