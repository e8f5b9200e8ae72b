"""Issue 10 item 4: ``daisybot run`` stops within Docker's grace period even while
Telegram is answering 429 to everything, and loses nothing: the code push that
could not go out is delivered (once) by the next run.

The one wall-clock bound in the suite: Docker sends SIGKILL 10 s after SIGTERM;
the bot must be gone well before (``EXIT_BOUND``)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from cryptography.fernet import Fernet

from bot.sandbox.fake_telegram import FakeTelegram, FakeUser
from bot.telegram.texts import strip_html
from tests import proc as subproc
from tests.texts import pattern, service_button, text

TOKEN = "4343434:ShutdownSecretTok_q7"
OP_KEY = "sk_shutdown_operator_0a1b2c3d4e5f60718293"
ADMIN = 1000
WAIT = 30.0  # safety net for bounded waits (seconds)
EXIT_BOUND = 5.0  # seconds from SIGTERM to exit (Docker waits 10)
CODE = "913377"


async def _start(env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process,
                                                          list[str], list[asyncio.Task[None]]]:
    proc = await asyncio.create_subprocess_exec(
        *subproc.daisybot_command(), "run", env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []
    readers = [asyncio.create_task(subproc.drain(proc.stdout, lines)),
               asyncio.create_task(subproc.drain(proc.stderr, lines))]
    return proc, lines, readers


async def _buy(user: FakeUser) -> None:
    await user.send("/buy")
    await user.wait_for(text("buy_list_title"), WAIT)
    await user.press(service_button("Signal", "$0.60"))
    confirm = await user.wait_for(pattern("buy_confirm"), WAIT)
    await user.press(pattern("btn_confirm"), message_id=confirm.message_id)
    number = pattern("order_number")
    await user.wait_for(
        lambda m: m.message_id == confirm.message_id and number.search(m.text) is not None, WAIT
    )


OTP = pattern("otp_message")  # "🔑 Code for …"


def _code_pushes(fake: FakeTelegram, chat_id: int, status: int) -> int:
    return sum(1 for c in fake.calls
               if c.method == "sendMessage" and c.params.get("chat_id") == chat_id
               and c.status == status and OTP.match(strip_html(str(c.params.get("text", "")))))


async def test_sigterm_during_a_429_storm_exits_within_5_s_and_the_code_comes_after_restart(
    tmp_path: Path,
) -> None:
    async with subproc.upstreams(TOKEN, OP_KEY) as (fake, sim_server):
        env = subproc.base_env() | {
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": fake.url,
            "DAISYSIM_BASE_URL": sim_server.base_url,
            "FUNDING_MODE": "operator",
            "DAISYSIM_API_KEY": OP_KEY,
            "DATABASE_PATH": str(tmp_path / "daisybot.sqlite3"),
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "ADMIN_IDS": str(ADMIN),
            "POLL_INTERVAL_SECONDS": "1",
            "LOG_LEVEL": "INFO",
        }
        proc, lines, readers = await _start(env, tmp_path)
        try:
            admin, alice, bob = fake.user(ADMIN, "Admin"), fake.user(1, "Alice"), fake.user(
                2, "Bob")
            for user in (admin, alice):
                await user.send("/start")
                await user.wait_for(text("menu_title"), WAIT)
            await admin.send("/credit 1 10")
            await admin.wait_for(pattern("admin_credited", user_id=1), WAIT)
            await _buy(alice)
            [act] = list(sim_server.sim.state()["activations"])
            # The storm: every chat answers 429 "retry after 7" for the next 5 minutes.
            fake.inject_error("*", 429, retry_after=7, for_seconds=300)
            sim_server.sim.deliver_sms(act["id"], CODE)
            await bob.send("/start")  # a user's reply now waits out the pause
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while _code_pushes(fake, alice.id, 429) == 0 or not any(
                    c.params.get("chat_id") == bob.id and c.status == 429 for c in fake.calls):
                assert proc.returncode is None, "".join(lines)
                assert loop.time() < deadline, "the code push was never tried:\n" + "".join(
                    lines)
                await asyncio.sleep(0.1)

            proc.send_signal(signal.SIGTERM)
            sent = loop.time()
            code = await asyncio.wait_for(proc.wait(), WAIT)
            elapsed = loop.time() - sent
            await asyncio.wait_for(asyncio.gather(*readers), WAIT)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        output = "".join(lines)
        assert code == 0, output
        assert elapsed < EXIT_BOUND, f"exit took {elapsed:.1f} s after SIGTERM:\n{output}"
        assert "Flood control" in output or "flood control" in output
        assert "Traceback" not in output, output
        assert _code_pushes(fake, alice.id, 200) == 0  # not delivered yet...

        # ... and not lost: the next run delivers it, once.
        fake.clear_injected()
        proc, lines, readers = await _start(env, tmp_path)
        try:
            got = await alice.wait_for(lambda m: OTP.match(m.text) is not None, WAIT, since=0)
            assert CODE in got.text
            await fake.wait_idle(quiet=1.5, timeout=WAIT)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), WAIT) == 0
            await asyncio.wait_for(asyncio.gather(*readers), WAIT)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert _code_pushes(fake, alice.id, 200) == 1
        assert len([m for m in alice.bot_messages() if OTP.match(m.text)]) == 1
