"""Several ``daisybot run`` processes on one database (issue 15.2), as real
subprocesses against the in-process fake Bot API and simulator.

* PostgreSQL (the ``postgres_url`` fixture; skipped without PostgreSQL binaries):
  two processes, exactly one long-polls (the fake would 409 a second getUpdates);
  ``kill -9`` of the leader → the follower takes over and serves a user's /start
  and a purchase end to end; a graceful stop hands over too; a terminated database
  connection makes that process exit 75 at once and write nothing more; webhook
  mode: only the leader's port answers, the takeover re-points the webhook and the
  updates sent in the gap arrive after it, in order.
* SQLite: a second process on the same file waits hot (an flock) and takes over.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from bot.sandbox.fake_telegram import FakeUser
from tests.bench.harness import TimedFakeTelegram
from tests.bench.takeover import WAIT, Fleet, Member, health, until, upstreams
from tests.texts import pattern, service_button, text

ADMIN = 1000
ALICE = 1


def _conflicts(fake: TimedFakeTelegram) -> int:
    """getUpdates answered 409: two pollers at once (or a webhook set)."""
    return sum(1 for c in fake.calls if c.method == "getUpdates" and c.status == 409)


async def _buy_signal(user: FakeUser) -> None:
    await user.send("/buy")
    await user.wait_for(text("buy_list_title"), WAIT)
    await user.press(service_button("Signal", "$0.60"))
    confirm = await user.wait_for(pattern("buy_confirm"), WAIT)
    await user.press(pattern("btn_confirm"), message_id=confirm.message_id)
    number = pattern("order_number")
    await user.wait_for(
        lambda m: m.message_id == confirm.message_id and number.search(m.text) is not None,
        WAIT,
    )


async def _follower_health(member: Member) -> dict[str, object]:
    status, body = await health(member.health_port)
    assert status == 200, body
    assert body["role"] == "follower"
    assert body["checks"] == {"database": True, "standby": True}
    return body


async def test_sqlite_a_second_process_on_the_same_file_waits_hot_then_takes_over(
    tmp_path: Path,
) -> None:
    async with upstreams() as (fake, server):
        fleet = Fleet.configure(
            tmp_path, size=2, telegram_url=fake.url, daisysim_url=server.base_url,
            db_path=tmp_path / "bot.sqlite3",
        )
        first, second = fleet.members
        try:
            first.bot.start()
            assert (await fleet.settled())[0] is first
            second.bot.start()
            leader, [follower] = await fleet.settled()
            assert (leader, follower) == (first, second)
            await _follower_health(second)
            assert "waiting as follower" in second.bot.log_text()
            assert _conflicts(fake) == 0

            fake.first_get_updates = None
            first.bot.kill9()
            leader, followers = await fleet.settled()
            assert leader is second and followers == []
            await until(lambda: fake.first_get_updates is not None, "the new leader polls")
            alice = fake.user(ALICE, first_name="Alice")
            await alice.send("/start")
            await alice.wait_for(text("menu_title"), WAIT)
            # At most the dead leader's abandoned long poll, superseded by the new one.
            assert _conflicts(fake) <= 1
        finally:
            fleet.stop()


async def _no_second_poller(fake: TimedFakeTelegram, seconds: float) -> None:
    """For ``seconds``, no getUpdates is refused as a second poller's."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert _conflicts(fake) == 0
        await asyncio.sleep(0.1)


async def test_pg_one_leader_polls_kill9_hands_over_and_the_new_leader_serves_a_purchase(
    tmp_path: Path, postgres_url: str,
) -> None:
    async with upstreams() as (fake, server):
        fleet = Fleet.configure(
            tmp_path, size=2, telegram_url=fake.url, daisysim_url=server.base_url,
            database_url=postgres_url, admin_ids=[ADMIN],
        )
        try:
            fleet.start()
            leader, [follower] = await fleet.settled()
            await until(lambda: fake.first_get_updates is not None, "the leader polls")
            await _follower_health(follower)
            status, body = await health(leader.health_port)
            assert status == 200 and body["role"] == "leader", body
            # The follower keeps trying the lock (every 0.5 s) but never polls.
            await _no_second_poller(fake, 2.0)
            assert "waiting as follower" in follower.bot.log_text()
            assert "leading" not in follower.bot.log_text()

            admin, alice = fake.user(ADMIN, first_name="Admin"), fake.user(ALICE, "Alice")
            await alice.send("/start")
            await alice.wait_for(text("menu_title"), WAIT)
            await admin.send(f"/credit {ALICE} 10")
            await admin.wait_for(pattern("admin_credited", user_id=ALICE), WAIT)

            fake.first_get_updates = None
            leader.bot.kill9()
            new, rest = await fleet.settled()
            assert new is follower and rest == []
            await until(lambda: fake.first_get_updates is not None, "the new leader polls")
            await alice.send("/start")
            await alice.wait_for(text("menu_title"), WAIT)
            await _buy_signal(alice)
            [bought] = server.sim.state()["activations"]
            code = "551177"
            server.sim.deliver_sms(bought["id"], code)
            otp = await alice.wait_for(pattern("otp_message"), WAIT)
            assert code in otp.text
            # The killed one comes back as a follower; still one poller.
            leader.bot.start()
            again, [back] = await fleet.settled()
            assert again is follower and back is leader
            await _no_second_poller(fake, 1.0)
            assert server.sim.invariant_violations() == []
            assert len(server.sim.state()["activations"]) == 1  # bought once
        finally:
            fleet.stop()


async def test_pg_graceful_stop_hands_over_and_a_lost_connection_exits_75(
    tmp_path: Path, postgres_url: str,
) -> None:
    import asyncpg

    from storage.leader import LEADER_LOCK_KEY

    async with upstreams() as (fake, server):
        fleet = Fleet.configure(
            tmp_path, size=2, telegram_url=fake.url, daisysim_url=server.base_url,
            database_url=postgres_url,
        )
        try:
            fleet.start()
            leader, [follower] = await fleet.settled()
            fake.first_get_updates = None
            assert leader.bot.stop() == 0  # SIGTERM: gives leadership up on the way out
            new, _ = await fleet.settled()
            assert new is follower
            await until(lambda: fake.first_get_updates is not None, "the new leader polls")
            leader.bot.start()
            leader_now, [standby] = await fleet.settled()
            assert leader_now is follower and standby is leader

            # The leader's database connection is terminated: it exits 75 at once.
            conn = await asyncpg.connect(postgres_url)
            try:
                pid = await conn.fetchval(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = $1 AND objid = $2 AND objsubid = 1",
                    LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFF_FFFF,
                )
                assert pid is not None
                fake.first_get_updates = None
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
                proc = leader_now.bot.proc
                assert proc is not None
                await until(lambda: proc.poll() is not None, "the leader exits")
                assert proc.returncode == 75, leader_now.bot.log_text()[-3000:]
                assert "connection was lost" in leader_now.bot.log_text()
                # The other one takes over; no connection of the dead one remains.
                new, _ = await fleet.settled()
                assert new is standby
                await until(lambda: fake.first_get_updates is not None, "a new poller")
                assert await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid) == 0
            finally:
                await conn.close()
            alice = fake.user(ALICE, first_name="Alice")
            await alice.send("/start")
            await alice.wait_for(text("menu_title"), WAIT)
        finally:
            fleet.stop()


async def _answers(port: int) -> bool:
    """Something listens on 127.0.0.1:port."""
    try:
        async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/hook", json={}
        ) as response:
            return response.status in (200, 400, 403)
    except (aiohttp.ClientError, OSError):
        return False


async def test_pg_webhook_only_the_leader_listens_and_a_takeover_repoints_the_webhook(
    tmp_path: Path, postgres_url: str,
) -> None:
    async with upstreams(webhook_retry_delay=0.1) as (fake, server):
        fleet = Fleet.configure(
            tmp_path, size=2, telegram_url=fake.url, daisysim_url=server.base_url,
            database_url=postgres_url, webhook=True,
        )
        try:
            fleet.start()
            leader, [follower] = await fleet.settled()
            await until(lambda: fake.webhook_url == leader.bot.env["WEBHOOK_URL"],
                        "the leader's setWebhook")
            assert await _answers(int(leader.bot.env["WEBHOOK_PORT"]))
            assert not await _answers(int(follower.bot.env["WEBHOOK_PORT"]))
            users = [fake.user(uid, first_name=f"U{uid}") for uid in (1, 2)]
            for u in users:
                await u.send("/start")
                await u.wait_for(text("menu_title"), WAIT)

            leader.bot.kill9()
            # Sent in the gap: Telegram keeps them (deliveries to the dead port fail).
            for u in users:
                await u.send("/help")
                await u.send("/wallet")
            new, _ = await fleet.settled()
            assert new is follower
            await until(lambda: fake.webhook_url == follower.bot.env["WEBHOOK_URL"],
                        "the new leader's setWebhook")
            info = await _webhook_info(fake)
            assert info["url"] == follower.bot.env["WEBHOOK_URL"]
            for u in users:
                await u.wait_for(pattern("help"), WAIT)
                await u.wait_for(pattern("wallet_title"), WAIT)
            # In order per user: the /help reply came before the /wallet one.
            for u in users:
                replies = u.bot_messages()
                helps = [i for i, m in enumerate(replies) if pattern("help").search(m.text)]
                wallets = [i for i, m in enumerate(replies)
                           if pattern("wallet_title").search(m.text)]
                assert helps and wallets and helps[-1] < wallets[-1]
            assert not await _answers(int(leader.bot.env["WEBHOOK_PORT"]))
            assert fake.pending_updates == []
        finally:
            fleet.stop()


async def _webhook_info(fake: TimedFakeTelegram) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{fake.api_base}{fake.token}/getWebhookInfo"
    ) as response:
        body = await response.json()
    assert body["ok"], body
    result: dict[str, object] = body["result"]
    return result
