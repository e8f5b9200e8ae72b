"""Webhook mode: ``daisybot run`` with WEBHOOK_URL, proven end to end.

* ``python -m bot run`` as a subprocess in webhook mode against the in-process fake
  Bot API and DaisySim simulator: it calls setWebhook with the URL and the secret,
  PTB's webhook server refuses requests without the right
  ``X-Telegram-Bot-Api-Secret-Token`` (403, no reply, no user created), the fake
  delivers FakeUser updates to it and /start is answered, no secret reaches the
  output, SIGTERM exits 0.
* The refusals of ``daisybot run`` (no secret, a secret Telegram would refuse, a
  public http:// URL, a port Telegram does not deliver to) and the URL -> path rules.
* The fake's webhook side: setWebhook checks, getUpdates 409, delivery with the
  secret header, retries until a 2xx, getWebhookInfo's last error.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import telegram
from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr
from telegram.error import BadRequest, Conflict

from bot import runner
from bot.config import Settings
from bot.sandbox.fake_telegram import FakeTelegram, WebhookDelivery
from bot.sandbox.simulator import SimulatorServer
from tests import proc as subproc
from tests.texts import button, text

TOKEN = "4343434:WebhookModeSecretTok_q7"
OP_KEY = "sk_webhook_operator_0a1b2c3d4e5f60718293"
SECRET = "whsec_Test-0123456789_abcdefXYZ"
WRONG_SECRET = "whsec_Wrong-9876543210_zyxwvu"
MARKER = "Zed_NotInLogs_4b1f"  # a user's data: must not reach the DEBUG logs
ERROR_500 = "Wrong response from the webhook: 500 Internal Server Error"
WAIT = 20.0  # safety net for bounded waits (seconds)


async def _until(probe: Callable[[], bool], what: str, proc: Any = None,
                 err: list[str] | None = None) -> None:
    """Bounded wait for ``probe()``; fails early if the subprocess died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not probe():
        if proc is not None:
            assert proc.returncode is None, f"daisybot run exited early:\n{''.join(err or [])}"
        assert loop.time() < deadline, f"timed out waiting for {what}:\n{''.join(err or [])}"
        await asyncio.sleep(0.05)


def _start_update(update_id: int, user_id: int, first_name: str) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "from": user,
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "date": 1_700_000_000,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


# --------------------------------------------------------------------------- daisybot run


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[tuple[FakeTelegram, SimulatorServer]]:
    async with subproc.upstreams(TOKEN, OP_KEY, webhook_retry_delay=0.05) as pair:
        yield pair


async def test_daisybot_run_webhook_mode_end_to_end(
    upstreams: tuple[FakeTelegram, SimulatorServer], tmp_path: Path
) -> None:
    fake, sim_server = upstreams
    port, health_port = subproc.free_port(), subproc.free_port()
    hook = f"http://127.0.0.1:{port}/tg/hook"
    fernet = Fernet.generate_key().decode()
    db_path = tmp_path / "daisybot.sqlite3"
    env = subproc.base_env() | {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": fake.url,
        "DAISYSIM_BASE_URL": sim_server.base_url,
        "FUNDING_MODE": "operator",
        "DAISYSIM_API_KEY": OP_KEY,
        "DATABASE_PATH": str(db_path),
        "ENCRYPTION_KEY": fernet,
        "WEBHOOK_URL": hook,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
        "HEALTH_PORT": str(health_port),
        "LOG_LEVEL": "DEBUG",  # the most verbose logs must still carry no secret
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [asyncio.create_task(subproc.drain(proc.stdout, out)),
               asyncio.create_task(subproc.drain(proc.stderr, err))]
    try:
        # PTB's server listens before setWebhook is called.
        await _until(lambda: fake.webhook_url == hook, "setWebhook", proc, err)
        [call] = fake.calls_to("setWebhook")
        assert call["url"] == hook and call["secret_token"] == SECRET
        assert fake.webhook_secret == SECRET
        async with aiohttp.ClientSession() as s:
            # Telegram's rule, enforced by the fake: no getUpdates while a webhook is set.
            async with s.post(f"{fake.api_base}{TOKEN}/getUpdates") as r:
                body = await r.json()
            assert r.status == 409 and body["description"] == (
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first"
            )

            # Forged updates: no secret header, a wrong one -> 403, never processed.
            forged = _start_update(990_001, 2, "Mallory")
            async with s.post(hook, json=forged) as r:
                assert r.status == 403
            async with s.post(
                hook, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": WRONG_SECRET}
            ) as r:
                assert r.status == 403
            async with s.post(
                hook, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": ""}
            ) as r:
                assert r.status == 403
            # Right secret -> 200 and processed (the bot tries to answer chat 3).
            async with s.post(
                hook, json=_start_update(990_002, 3, MARKER),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            ) as r:
                assert r.status == 200
            await _until(
                lambda: any(p.get("chat_id") == 3 for p in fake.calls_to("sendMessage")),
                "the reply to the authentic update", proc, err,
            )

            # The fake delivers FakeUser updates to the webhook, with the secret.
            alice = fake.user(1, "Alice")
            update_id = await alice.send("/start")
            menu = await alice.wait_for(text("menu_title"), WAIT)
            assert text("welcome", name="Alice") in menu.text
            assert button("btn_buy") in menu.button_labels
            assert WebhookDelivery(update_id, 200, None) in fake.webhook_deliveries
            assert fake.pending_updates == []

            async with s.get(f"http://127.0.0.1:{health_port}/healthz") as r:
                health = await r.json()
            assert r.status == 200, health
            assert health["checks"] == {"application": True, "updates": True, "database": True,
                                    "outbox": True}
        await fake.wait_idle()
        assert not any(p.get("chat_id") == 2 for p in fake.calls_to("sendMessage"))
        assert fake.calls_to("getUpdates") == [{}]  # only the test's own call above

        code = await subproc.terminate(proc, readers, WAIT)
    finally:
        await subproc.reap(proc)
    output = "".join(out) + "".join(err)
    assert code == 0, output
    # The logs were captured (the checks below mean something) and filtered.
    assert f"starting (webhook on 127.0.0.1:{port})" in output
    for secret in (TOKEN, "4343434:", OP_KEY, fernet, SECRET, WRONG_SECRET, MARKER):
        assert secret not in output, secret
    assert "webhook server listening on 127.0.0.1:" in output
    with sqlite3.connect(db_path) as db:
        ids = {row[0] for row in db.execute("SELECT id FROM users")}
    assert 1 in ids and 3 in ids and 2 not in ids  # the forged user never reached the bot


async def test_webhook_mode_healthz_follows_telegrams_webhook_info(
    upstreams: tuple[FakeTelegram, SimulatorServer], tmp_path: Path
) -> None:
    """Listening is not enough: when Telegram no longer sends to this bot (another
    instance deleted the webhook to poll) /healthz says 503 (updates); once the
    webhook is ours again, 200. A quiet bot with nothing pending stays 200."""
    fake, sim_server = upstreams
    port, health_port = subproc.free_port(), subproc.free_port()
    hook = f"http://127.0.0.1:{port}/tg/hook"
    env = subproc.base_env() | {
        "BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": fake.url,
        "DAISYSIM_BASE_URL": sim_server.base_url, "FUNDING_MODE": "operator",
        "DAISYSIM_API_KEY": OP_KEY, "DATABASE_PATH": str(tmp_path / "db.sqlite3"),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(), "WEBHOOK_URL": hook,
        "WEBHOOK_SECRET": SECRET, "WEBHOOK_LISTEN": "127.0.0.1", "WEBHOOK_PORT": str(port),
        "HEALTH_PORT": str(health_port), "HEALTH_UPDATES_MAX_AGE_SECONDS": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    err: list[str] = []
    readers = [asyncio.create_task(subproc.drain(proc.stdout, err)),
               asyncio.create_task(subproc.drain(proc.stderr, err))]
    health_url = f"http://127.0.0.1:{health_port}/healthz"
    seen: list[tuple[int, dict[str, Any]]] = []

    async def health_is(s: aiohttp.ClientSession, status: int) -> bool:
        try:
            async with s.get(health_url) as r:
                seen.append((r.status, await r.json()))
        except aiohttp.ClientError:
            return False
        return seen[-1][0] == status

    async def wait_health(s: aiohttp.ClientSession, status: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not await health_is(s, status):
            assert proc.returncode is None, "".join(err)
            assert loop.time() < deadline, f"no {status}: {seen[-1:]}\n{''.join(err)}"
            await asyncio.sleep(0.1)
        return seen[-1][1]

    try:
        async with aiohttp.ClientSession() as s:
            await wait_health(s, 200)
            await asyncio.sleep(1.5)  # no webhook for longer than the bound: still fine
            assert await health_is(s, 200), seen[-1]
            async with s.post(f"{fake.api_base}{TOKEN}/deleteWebhook") as r:
                assert r.status == 200
            body = await wait_health(s, 503)
            assert body["checks"] == {"application": True, "updates": False,
                                      "database": True, "outbox": True}
            async with s.post(f"{fake.api_base}{TOKEN}/setWebhook",
                              json={"url": hook, "secret_token": SECRET}) as r:
                assert r.status == 200
            await wait_health(s, 200)
        code = await subproc.terminate(proc, readers, WAIT)
    finally:
        await subproc.reap(proc)
    output = "".join(err)
    assert code == 0, output
    assert "Telegram's webhook is no longer this bot's URL" in output
    assert SECRET not in output and TOKEN not in output


# --------------------------------------------------------------------------- refusals


@pytest.fixture
def run_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment where only the webhook settings can be wrong (no .env in cwd)."""
    monkeypatch.chdir(tmp_path)
    for name in ("WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_PORT", "WEBHOOK_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_BASE_URL", "http://127.0.0.1:9")  # never contacted
    monkeypatch.setenv("FUNDING_MODE", "operator")
    monkeypatch.setenv("DAISYSIM_API_KEY", OP_KEY)
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "never.sqlite3"))
    return monkeypatch


def test_webhook_mode_refuses_to_start_without_a_secret(
    run_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_env.setenv("WEBHOOK_URL", "https://bot.example.com/telegram")
    assert runner.main([]) == 2
    err = capsys.readouterr().err
    assert "WEBHOOK_SECRET is required" in err and "token_urlsafe" in err
    assert TOKEN not in err and OP_KEY not in err
    assert not (tmp_path / "never.sqlite3").exists()  # refused before anything started
    run_env.setenv("WEBHOOK_SECRET", "")  # empty means unset
    assert runner.main([]) == 2
    assert "WEBHOOK_SECRET is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "secret", "expected"),
    [
        ("http://bot.example.com/telegram", SECRET, "must be an https:// URL"),
        ("http://10.0.0.5:8443/telegram", SECRET, "must be an https:// URL"),
        ("https://bot.example.com:8080/telegram", SECRET, "ports 443, 80, 88 or 8443"),
        ("bot.example.com/telegram", SECRET, "must be a full URL"),
        ("https://bot.example.com/te(le)gram", SECRET, "path may only contain"),
        ("https://bot.example.com/telegram", "has spaces and !", "1-256 characters"),
        ("https://bot.example.com/telegram", "x" * 257, "1-256 characters"),
        ("https://bot.example.com/telegram", "bad:token:like/secret", "1-256 characters"),
    ],
)
def test_webhook_mode_refuses_what_telegram_would_refuse(
    run_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    url: str, secret: str, expected: str,
) -> None:
    run_env.setenv("WEBHOOK_URL", url)
    run_env.setenv("WEBHOOK_SECRET", secret)
    assert runner.main([]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert secret not in err and TOKEN not in err


def _settings(url: str | None, secret: str | None = SECRET, port: int = 8443) -> Settings:
    values: dict[str, Any] = {
        name: info.get_default(call_default_factory=True)
        for name, info in Settings.model_fields.items()
    }
    values.update(webhook_url=url, webhook_secret=secret and SecretStr(secret),
                  webhook_port=port)
    return Settings(_env_file=None, **values)


def test_webhook_url_path_and_accepted_settings() -> None:
    polling = _settings(None, None)
    assert polling.webhook_public_url is None and polling.webhook_problem() is None
    s = _settings("https://bot.example.com/tg/hook/")
    assert s.webhook_path == "tg/hook" and s.webhook_public_url == "https://bot.example.com/tg/hook/"
    assert s.webhook_problem() is None
    bare = _settings("https://bot.example.com")
    assert bare.webhook_path == "telegram"
    assert bare.webhook_public_url == "https://bot.example.com/telegram"
    assert _settings("https://bot.example.com/").webhook_public_url == (
        "https://bot.example.com/telegram"
    )
    for ok in ("https://bot.example.com:8443/x", "https://bot.example.com:88/x",
               "http://127.0.0.1:5000/hook", "http://localhost:5000/a/b"):
        assert _settings(ok).webhook_problem() is None, ok
    assert _settings("https://bot.example.com/x", "A" * 256).webhook_problem() is None
    assert "WEBHOOK_PORT" in (_settings("https://b.example.com/x", port=0).webhook_problem()
                              or "")


# --------------------------------------------------------------------------- the fake's side


@pytest_asyncio.fixture
async def fake_bot() -> AsyncIterator[tuple[FakeTelegram, telegram.Bot]]:
    fake = FakeTelegram(TOKEN, webhook_retry_delay=0.02)
    await fake.start()
    bot = telegram.Bot(TOKEN, base_url=fake.api_base)
    await bot.initialize()
    try:
        yield fake, bot
    finally:
        await bot.shutdown()
        await fake.close()


async def test_fake_set_webhook_checks_like_telegram(
    fake_bot: tuple[FakeTelegram, telegram.Bot],
) -> None:
    fake, bot = fake_bot
    for url, secret, description in [
        ("http://example.com/hook", None, "An HTTPS URL must be provided"),
        ("https://example.com:8080/hook", None, "only on ports 80, 88, 443 or 8443"),
        ("https://example.com/hook", "a" * 257, "secret token is too long"),
        ("https://example.com/hook", "not allowed!", "secret token contains unallowed"),
    ]:
        with pytest.raises(BadRequest, match="(?i)" + re.escape(description)):
            await bot.set_webhook(url, secret_token=secret)
    assert fake.webhook_url == ""
    # A remote webhook is stored but never contacted: its updates stay pending.
    assert await bot.set_webhook("https://example.com/hook", secret_token="s3cret_-X")
    uid = await fake.user(7, "Remote").send("hello")
    info = await bot.get_webhook_info()
    assert info.url == "https://example.com/hook" and info.pending_update_count == 1
    assert info.max_connections == 40 and info.last_error_message is None
    assert "s3cret_-X" not in str(info.to_dict())  # Telegram never shows the secret
    assert fake.webhook_secret == "s3cret_-X" and fake.webhook_deliveries == []
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert fake.webhook_secret is None
    assert [u.update_id for u in await bot.get_updates()] == [uid]


async def test_fake_delivers_with_secret_and_retries_until_2xx(
    fake_bot: tuple[FakeTelegram, telegram.Bot],
) -> None:
    fake, bot = fake_bot
    received: list[tuple[str | None, str, dict[str, Any]]] = []
    state = {"fail": 2}

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                         request.content_type, await request.json()))
        if state["fail"] > 0:
            state["fail"] -= 1
            return web.Response(status=500, reason="Internal Server Error")
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/wh/path", hook)
    runner_ = web.AppRunner(app, access_log=None)
    await runner_.setup()
    site = web.TCPSite(runner_, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner_.addresses[0][1]}/wh/path"
    try:
        alice = fake.user(8, "Alice")
        first = await alice.send("one")  # pending before the webhook: delivered first
        assert await bot.set_webhook(url, secret_token="sec_ret-1")
        second = await alice.send("two")
        await _until(lambda: fake.pending_updates == [], "the deliveries")
        # 2 failures of the first update, then both in order; every request had the secret.
        assert [r[2]["update_id"] for r in received] == [first, first, first, second]
        assert {(r[0], r[1]) for r in received} == {("sec_ret-1", "application/json")}
        assert received[-1][2]["message"]["text"] == "two"
        assert fake.webhook_deliveries == [
            WebhookDelivery(first, 500, ERROR_500),
            WebhookDelivery(first, 500, ERROR_500),
            WebhookDelivery(first, 200, None),
            WebhookDelivery(second, 200, None),
        ]
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0
        assert info.last_error_message == ERROR_500
        assert info.last_error_date is not None
    finally:
        await runner_.cleanup()
    # Nobody listens any more: the update stays pending, the error says why.
    third = await alice.send("three")
    await _until(
        lambda: fake.webhook_deliveries[-1].update_id == third
        and fake.webhook_deliveries[-1].status is None, "a failed delivery",
    )
    assert fake.webhook_deliveries[-1].error == "Connection refused"
    assert [u["update_id"] for u in fake.pending_updates] == [third]
    # deleteWebhook stops the deliveries; getUpdates gets what is pending.
    assert await bot.delete_webhook()
    attempts = len(fake.webhook_deliveries)
    assert [u.update_id for u in await bot.get_updates()] == [third]
    assert len(fake.webhook_deliveries) == attempts
