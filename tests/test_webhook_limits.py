"""Webhook mode under big and forged bodies: ``daisybot run`` as a subprocess.

Before: PTB's tornado server read whole bodies (up to 100 MB each) before it looked
at the secret; six concurrent 90-MB forged bodies took the process from 80 MB to
752 MB. Now (bot/webhook.py):

* no secret / a wrong one → 403 from the headers alone, the body is never read;
* the right secret and a body over WEBHOOK_MAX_BODY_BYTES → 413 (declared, or
  streamed: reading stops at the limit);
* the process's peak RSS (VmHWM, /proc) stays within +50 MB while six 90-MB bodies
  are thrown at it at once, and it still serves a real update afterwards;
* an undecodable update with the right secret is answered 200 and skipped, and
  neither its text nor a key in it reaches the output.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from cryptography.fernet import Fernet

from bot.sandbox.fake_telegram import FakeTelegram
from bot.sandbox.simulator import SimulatorServer
from tests import proc as subproc

TOKEN = "4646464:WebhookLimitsSecretTok_m2"
OP_KEY = "sk_limits_operator_1b2c3d4e5f6a70819202"
SECRET = "whsec_Limits-0123456789_abcdefXYZ"
MAX_BODY = 64 * 1024
BIG = 90 * 1024 * 1024
CHUNK = b"x" * (256 * 1024)
RSS_BOUND_KIB = 50 * 1024
PASTED_KEY = "sk_live_PastedIntoWebhook_5e4d3c2b1a09"
TEXT = "Qx-webhook-private-text-88"
WAIT = 30.0


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[tuple[FakeTelegram, SimulatorServer]]:
    async with subproc.upstreams(TOKEN, OP_KEY, webhook_retry_delay=0.05) as pair:
        yield pair


async def _request(
    port: int, headers: dict[str, str], body: int = 0, *, chunked: bool = False,
    payload: bytes | None = None, declared: int | None = None,
) -> tuple[int | None, int]:
    """A raw HTTP/1.1 POST; sends ``body`` bytes (or ``payload``) unless the server
    stops it; ``declared``: the Content-Length to claim. Returns (status, or None
    when the answer was lost; bytes sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = ["POST /tg/hook HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif declared is not None:
        lines.append(f"Content-Length: {declared}")
    elif payload is not None:
        lines.append(f"Content-Length: {len(payload)}")
    else:
        lines.append(f"Content-Length: {body}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    sent = 0
    try:
        await writer.drain()
        if payload is not None:
            writer.write(payload)
            sent = len(payload)
        while sent < body:
            piece = CHUNK[: min(len(CHUNK), body - sent)]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            sent += len(piece)
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
    except OSError:
        pass  # the server closed the connection: expected for a refused body
    try:
        line = await asyncio.wait_for(reader.readline(), WAIT)
    except (OSError, TimeoutError):
        line = b""
    writer.close()
    status = int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None
    return status, sent


def _update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Eve", "language_code": "en"}
    return {"update_id": update_id, "message": {
        "message_id": 1, "from": user, "date": 1_700_000_000, "text": text,
        "chat": {"id": user_id, "type": "private", "first_name": "Eve"},
        **({"entities": [{"type": "bot_command", "offset": 0, "length": 6}]}
           if text.startswith("/") else {}),
    }}


async def test_webhook_refuses_from_headers_caps_bodies_and_memory_stays_flat(
    upstreams: tuple[FakeTelegram, SimulatorServer], tmp_path: Path
) -> None:
    fake, sim = upstreams
    port = subproc.free_port()
    hook = f"http://127.0.0.1:{port}/tg/hook"
    env = subproc.base_env() | {
        "BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.url,
        "DAISYSIM_BASE_URL": sim.base_url, "FUNDING_MODE": "operator",
        "DAISYSIM_API_KEY": OP_KEY, "DATABASE_PATH": str(tmp_path / "db.sqlite3"),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "WEBHOOK_URL": hook, "WEBHOOK_SECRET": SECRET, "WEBHOOK_LISTEN": "127.0.0.1",
        "WEBHOOK_PORT": str(port), "WEBHOOK_MAX_BODY_BYTES": str(MAX_BODY),
        "LOG_LEVEL": "DEBUG",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out: list[str] = []
    readers = [asyncio.create_task(subproc.drain(proc.stdout, out)),
               asyncio.create_task(subproc.drain(proc.stderr, out))]
    right = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    wrong = {"X-Telegram-Bot-Api-Secret-Token": "whsec_wrong"}
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while fake.webhook_url != hook:
            assert proc.returncode is None and loop.time() < deadline, "".join(out)
            await asyncio.sleep(0.05)
        assert fake.calls_to("setWebhook")[0]["max_connections"] == 40
        # Served before the storm: the bot works.
        status, _ = await _request(port, right, payload=json.dumps(
            _update(1, 11, "/start")).encode())
        assert status == 200
        rss_before, _ = subproc.rss_kib(proc.pid)

        # Headers only, a huge declared body, no body sent: answered at once.
        async def headers_only(headers: dict[str, str]) -> int | None:
            # A huge body is announced, none is sent: only the headers can answer.
            status, sent = await asyncio.wait_for(
                _request(port, headers, 0, declared=BIG), WAIT)
            assert sent == 0
            return status

        assert await headers_only({}) == 403
        assert await headers_only(wrong) == 403
        assert await headers_only({"X-Telegram-Bot-Api-Secret-Token": ""}) == 403
        assert await headers_only(right) == 413
        # Wrong content type / not JSON.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /tg/hook HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     f"X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\nContent-Length: 2\r\n"
                     "\r\n{}".encode())
        assert (await asyncio.wait_for(reader.readline(), WAIT)).split()[1] == b"415"
        writer.close()
        assert (await _request(port, right, payload=b"[1, 2]"))[0] == 400

        # Six 90-MB bodies at once: forged (declared and streamed) and over the cap.
        storm = await asyncio.wait_for(asyncio.gather(
            _request(port, {}, BIG),
            _request(port, wrong, BIG),
            _request(port, {}, BIG, chunked=True),
            _request(port, wrong, BIG, chunked=True),
            _request(port, right, BIG, chunked=True),
            _request(port, right, BIG, chunked=True),
        ), 120)
        for status, sent in storm:
            assert status in (403, 413, None)  # None: the refusal closed the connection
            assert sent < BIG // 4, sent  # the server stopped taking the body early
        assert {s for s, _ in storm[4:]} <= {413, None}
        rss_after, peak = subproc.rss_kib(proc.pid)
        assert peak - rss_before < RSS_BOUND_KIB, (rss_before, rss_after, peak)

        # Still serving: an undecodable update (with a key) is skipped, /start answered.
        bad = _update(2, 12, f"{TEXT} {PASTED_KEY}")
        bad["message"]["date"] = f"never {PASTED_KEY}"
        assert (await _request(port, right, payload=json.dumps(bad).encode()))[0] == 200
        status, _ = await _request(port, right, payload=json.dumps(
            _update(3, 12, "/start")).encode())
        assert status == 200
        deadline = loop.time() + WAIT
        while not any(p.get("chat_id") == 12 for p in fake.calls_to("sendMessage")):
            assert proc.returncode is None and loop.time() < deadline, "".join(out)
            await asyncio.sleep(0.05)
        code = await subproc.terminate(proc, readers, WAIT)
    finally:
        await subproc.reap(proc)
    output = "".join(out)
    assert code == 0, output
    assert "update 2 could not be decoded (TypeError); skipped" in output
    assert "refused a request without the right secret" in output  # DEBUG, no value
    for secret in (TOKEN, OP_KEY, SECRET, PASTED_KEY, TEXT, "whsec_wrong"):
        assert secret not in output, secret
