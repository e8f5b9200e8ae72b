"""Helpers for tests that run ``daisybot`` as a subprocess against in-process
upstreams (the fake Bot API and the DaisySim simulator)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

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


async def terminate(
    proc: asyncio.subprocess.Process, readers: list[Any],
    wait: float,
) -> int:
    """SIGTERM, then wait for the exit and for the output readers; the exit status."""
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), wait)
    await asyncio.wait_for(asyncio.gather(*readers), wait)
    return code


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Kill a subprocess a test leaves running (after a failure) and wait for it."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def drain(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
    """Collect a subprocess's output lines (to check that no secret is printed)."""
    if stream is None:
        return
    while line := await stream.readline():
        sink.append(line.decode("utf-8", "replace"))


@asynccontextmanager
async def upstreams(
    token: str, operator_key: str, *, fake_class: type[FakeTelegram] = FakeTelegram,
    **fake_options: Any,
) -> AsyncIterator[tuple[FakeTelegram, SimulatorServer]]:
    """A fake Bot API (``fake_class``) for ``token`` and a simulator with a funded
    operator account."""
    sim = Simulator(cancel_lock=180.0)
    sim.add_account(operator_key, Decimal("100"), email="operator@example.com")
    server = await start_simulator(sim, "127.0.0.1", 0)
    fake = fake_class(token, **fake_options)
    await fake.start()
    try:
        yield fake, server
    finally:
        await fake.close()
        await server.close()


@contextmanager
def small_disk(path: Path, size: str = "16m") -> Iterator[Path]:
    """A real small file system at ``path`` (a tmpfs of ``size``; needs root, which
    CI and these machines have), to fill up or remount read-only. Skips the test
    where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True, check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def remount(path: Path, mode: str) -> None:
    """``mode``: "ro" or "rw" (a :func:`small_disk`)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True,
                   capture_output=True)


def fill_disk(folder: Path) -> Path:
    """Write a file into ``folder`` until its file system is full; returns the file."""
    filler = folder / "filler.bin"
    chunk = b"\0" * (256 * 1024)
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:  # the last partial block too
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc (VmHWM: the peak so far)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]
