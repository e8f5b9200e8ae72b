"""Helpers for tests that run ``daisybot`` as a subprocess against in-process
upstreams (the fake Bot API and the DaisySim simulator)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.sandbox.fake_telegram import FakeTelegram
from bot.sandbox.simulator import Simulator, SimulatorServer, start_simulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daisybot_command() -> list[str]:
    """The installed ``daisybot`` console script (what the image runs), else ``-m bot``."""
    script = Path(sys.executable).with_name("daisybot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


def base_env() -> dict[str, str]:
    """A clean environment: nothing of the developer's settings leaks in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def drain(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
    """Collect a subprocess's output lines (to check that no secret is printed)."""
    if stream is None:
        return
    while line := await stream.readline():
        sink.append(line.decode("utf-8", "replace"))


@asynccontextmanager
async def upstreams(
    token: str, operator_key: str, **fake_options: Any
) -> AsyncIterator[tuple[FakeTelegram, SimulatorServer]]:
    """A fake Bot API for ``token`` and a simulator with a funded operator account."""
    sim = Simulator(cancel_lock=180.0)
    sim.add_account(operator_key, Decimal("100"), email="operator@example.com")
    server = await start_simulator(sim, "127.0.0.1", 0)
    fake = FakeTelegram(token, **fake_options)
    await fake.start()
    try:
        yield fake, server
    finally:
        await fake.close()
        await server.close()
