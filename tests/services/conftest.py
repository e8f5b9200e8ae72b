"""Engine test harness: the simulator over real HTTP on 127.0.0.1, a VirtualClock
shared by simulator and engine, and a driver that advances the clock to each due
time and calls ``run_due`` (as the Telegram layer's JobQueue would)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet

from bot.clock import VirtualClock
from bot.config import Settings
from bot.sandbox.simulator import Simulator, SimulatorServer, start_simulator
from bot.services.api import Activation, Event, EventKind
from bot.services.engine import Engine
from tests.conftest import ON_POSTGRES

OP_KEY = "sk_operator_0123456789abcdef0123"
USER_KEY = "sk_userkey_A_0123456789abcdef0123"
USER_KEY_B = "sk_userkey_B_fedcba9876543210fedc"
ADMIN = 1000
ALICE = 1
BOB = 2
FERNET = Fernet.generate_key().decode()


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, plus a log of (clock time, method, path) for every request."""

    def __init__(self, clock: VirtualClock) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._clock = clock
        self.log: list[tuple[float, str, str]] = []
        self.checks: list[tuple[float, list[str]]] = []  # check-all: (time, ids)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        now = self._clock.now()
        self.log.append((now, request.method, request.url.path))
        if request.url.path.endswith("/check-all"):
            self.checks.append((now, [str(i) for i in json.loads(request.content)["ids"]]))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def times(self, suffix: str) -> list[float]:
        return [t for t, _, path in self.log if path.endswith(suffix)]

    def count(self, fragment: str) -> int:
        return sum(1 for _, _, path in self.log if fragment in path)


@dataclass
class Harness:
    clock: VirtualClock
    sim: Simulator
    server: SimulatorServer
    transport: RecordingTransport
    db_path: Path
    # DAISYBOT_TEST_BACKEND=postgresql: a fresh PostgreSQL database (tests/conftest.py)
    database_url: str | None = None
    engines: list[Engine] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def settings(self, mode: str = "operator", **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "funding_mode": mode,
            "daisysim_base_url": self.server.base_url,
            "daisysim_api_key": OP_KEY if mode == "operator" else None,
            "encryption_key": FERNET,
            "database_path": str(self.db_path),
            "admin_ids": [ADMIN],
            "daisysim_timeout_seconds": 5.0,
        }
        if self.database_url is not None:
            values["database_url"] = self.database_url
        values.update(overrides)
        return Settings(_env_file=None, **values)

    async def engine(
        self,
        mode: str = "operator",
        *,
        handler: Callable[[Event], Awaitable[None]] | None = None,
        subscribe: bool = True,
        **overrides: Any,
    ) -> Engine:
        eng = Engine(self.settings(mode, **overrides), clock=self.clock, transport=self.transport)
        await eng.start()
        if subscribe:
            eng.subscribe(handler or self.record)
        self.engines.append(eng)
        return eng

    async def record(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, activation_id: int | None = None) -> list[EventKind]:
        return [
            e.kind for e in self.events
            if activation_id is None or e.activation.id == activation_id
        ]

    async def run_until(self, engine: Engine, when: float, *, max_steps: int = 100_000) -> None:
        """Advance the clock to ``when``, running every due time on the way."""
        await engine.run_due()
        for _ in range(max_steps):
            due = engine.next_due()
            if due is None or due > when:
                break
            self.clock.set(max(due, self.clock.now()))
            await engine.run_due()
        else:  # pragma: no cover - a scheduling bug
            raise AssertionError("run_until: too many steps")
        if when > self.clock.now():
            self.clock.set(when)
        await engine.run_due()

    async def run_for(self, engine: Engine, seconds: float) -> None:
        await self.run_until(engine, self.clock.now() + seconds)

    def sms(self, act: Activation, code: str) -> None:
        """The SMS for ``act`` reaches DaisySim now."""
        assert act.remote_id is not None
        self.sim.deliver_sms(act.remote_id, code)

    def sim_refunds(self, api_key: str = OP_KEY) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.sim.state()["ledger"].get(api_key, []):
            if entry["kind"] == "refund":
                out[entry["activation_id"]] = out.get(entry["activation_id"], 0) + 1
        return out

    def sim_balance(self, api_key: str = OP_KEY) -> Decimal:
        return self.sim.balance(api_key)


@pytest_asyncio.fixture
async def h(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    clock = VirtualClock()
    sim = Simulator(clock, seed=7)
    sim.add_account(OP_KEY, "500.0000", email="operator@example.com")
    sim.add_account(USER_KEY, "20.0000", email="alice@example.com")
    sim.add_account(USER_KEY_B, "20.0000", email="bob@example.com")
    server = await start_simulator(sim, host="127.0.0.1", port=0)
    transport = RecordingTransport(clock)
    database_url = request.getfixturevalue("postgres_migrated_url") if ON_POSTGRES else None
    harness = Harness(clock, sim, server, transport, tmp_path / "bot.sqlite3", database_url)
    try:
        yield harness
    finally:
        for eng in harness.engines:
            await eng.close()
        await transport.aclose()
        await server.close()
        assert sim.invariant_violations() == []
