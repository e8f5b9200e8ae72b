"""``daisybot run`` as a subprocess: /healthz tells the truth, a bad database is one line.

* getUpdates failing (502) for longer than HEALTH_UPDATES_MAX_AGE_SECONDS → 503
  naming ``updates``; healthy again once polling succeeds. A long poll that is
  simply waiting (longer than the bound) stays healthy.
* The database's disk full (a real, small tmpfs filled up) → 503 naming
  ``database``; healthy again once there is space.
* Starting on a read-only database (a real read-only file system): one clear line
  on stderr, exit code 1, no traceback.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from cryptography.fernet import Fernet

from bot.sandbox.fake_telegram import FakeTelegram
from bot.sandbox.simulator import SimulatorServer
from tests import proc as subproc
from tests.texts import text

TOKEN = "4545454:HealthTruthSecretTok_k3"
OP_KEY = "sk_health_operator_9a8b7c6d5e4f30211203"
WAIT = 40.0  # safety net for bounded waits (seconds); PTB's retry backoff is in it
UPDATES_MAX_AGE = 1.5


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[tuple[FakeTelegram, SimulatorServer]]:
    async with subproc.upstreams(TOKEN, OP_KEY) as pair:
        yield pair


def _env(fake: FakeTelegram, sim: SimulatorServer, db_path: Path, health_port: int,
         fernet: str) -> dict[str, str]:
    return subproc.base_env() | {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": fake.url,
        "DAISYSIM_BASE_URL": sim.base_url,
        "FUNDING_MODE": "operator",
        "DAISYSIM_API_KEY": OP_KEY,
        "DATABASE_PATH": str(db_path),
        "ENCRYPTION_KEY": fernet,
        "HEALTH_PORT": str(health_port),
        "HEALTH_UPDATES_MAX_AGE_SECONDS": str(UPDATES_MAX_AGE),
    }


class Bot:
    """A running ``daisybot run`` and its /healthz."""

    def __init__(self, proc: asyncio.subprocess.Process, health_port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{health_port}/healthz"
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [asyncio.create_task(subproc.drain(proc.stdout, self.out)),
                        asyncio.create_task(subproc.drain(proc.stderr, self.err))]

    @property
    def output(self) -> str:
        return "".join(self.out) + "".join(self.err)

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.get(self.url) as r:
            text = await r.text()
            assert TOKEN not in text and OP_KEY not in text
            return r.status, await r.json()

    async def until(self, status: int, what: str) -> dict[str, Any]:
        """Bounded wait until /healthz answers ``status``; returns its body."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            assert self.proc.returncode is None, f"daisybot exited early:\n{self.output}"
            try:
                code, body = await self.health()
            except aiohttp.ClientError:
                code, body = 0, {}
            if code == status:
                return body
            assert loop.time() < deadline, f"timed out waiting for {what}:\n{self.output}"
            await asyncio.sleep(0.1)

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), WAIT)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.wait_for(asyncio.gather(*self.readers), WAIT)
        assert self.proc.returncode is not None
        return self.proc.returncode


async def _start(env: dict[str, str], cwd: Path, health_port: int) -> Bot:
    proc = await asyncio.create_subprocess_exec(
        *subproc.daisybot_command(), "run", env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    return Bot(proc, health_port)


async def test_healthz_503_while_get_updates_fails_then_200(
    upstreams: tuple[FakeTelegram, SimulatorServer], tmp_path: Path
) -> None:
    fake, sim = upstreams
    port = subproc.free_port()
    bot = await _start(_env(fake, sim, tmp_path / "db.sqlite3", port,
                            Fernet.generate_key().decode()), tmp_path, port)
    try:
        body = await bot.until(200, "healthy")
        assert body["checks"] == {"application": True, "updates": True, "database": True,
                                  "outbox": True}
        # A long poll waits 10 s, far longer than the bound: waiting is not failing.
        for _ in range(25):
            code, body = await bot.health()
            assert code == 200, body
            await asyncio.sleep(0.1)
        # Three 502s in a row: PTB backs off 1 s, 1.5 s, ... between them.
        fake.inject_error("getUpdates", 502, count=3)
        alice = fake.user(1, "Alice")
        await alice.send("/start")  # ends the waiting long poll; the next ones fail
        body = await bot.until(503, "503 while getUpdates fails")
        assert body["status"] == "unavailable"
        assert body["checks"] == {"application": True, "updates": False, "database": True,
                                  "outbox": True}
        # nothing else (the role: one process of several on a database leads)
        assert set(body) == {"status", "checks", "uptime_seconds", "role"}
        assert body["role"] == "leader"
        await bot.until(200, "healthy again after getUpdates recovers")
        await alice.wait_for(text("menu_title"), WAIT)
        assert [c.status for c in fake.calls if c.method == "getUpdates"].count(502) == 3
    finally:
        code = await bot.stop()
    assert code == 0, bot.output
    assert TOKEN not in bot.output and OP_KEY not in bot.output


async def test_healthz_503_while_the_disk_is_full_then_200(
    upstreams: tuple[FakeTelegram, SimulatorServer], tmp_path: Path
) -> None:
    fake, sim = upstreams
    with subproc.small_disk(tmp_path / "disk") as disk:
        port = subproc.free_port()
        bot = await _start(_env(fake, sim, disk / "db.sqlite3", port,
                                Fernet.generate_key().decode()), tmp_path, port)
        try:
            await bot.until(200, "healthy")
            filler = subproc.fill_disk(disk)
            body = await bot.until(503, "503 with the disk full")
            assert body["checks"]["database"] is False
            assert body["checks"]["updates"] is True and body["checks"]["application"] is True
            filler.unlink()
            await bot.until(200, "healthy again with space")
            alice = fake.user(1, "Alice")  # and it works: a write (a new user) commits
            await alice.send("/start")
            await alice.wait_for(text("menu_title"), WAIT)
        finally:
            code = await bot.stop()
        assert code == 0, bot.output
        assert "the database's disk is full" in bot.output


def test_start_on_a_read_only_database_is_one_clear_line(tmp_path: Path) -> None:
    with subproc.small_disk(tmp_path / "disk", "4m") as disk:
        db_path = disk / "daisybot.sqlite3"
        db = sqlite3.connect(db_path)  # an existing database, then read-only
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.close()
        subproc.remount(disk, "ro")
        env = subproc.base_env() | {
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": "http://127.0.0.1:9",  # never contacted
            "FUNDING_MODE": "operator",
            "DAISYSIM_API_KEY": OP_KEY,
            "DATABASE_PATH": str(db_path),
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
        done = subprocess.run(
            [*subproc.daisybot_command(), "run"], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=60, check=False,
        )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"daisybot: the database {db_path} cannot be written (")
    assert "mounted read-write" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert TOKEN not in done.stderr and OP_KEY not in done.stderr
