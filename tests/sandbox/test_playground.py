"""``daisybot playground``: everything starts in one process, the real bot answers
through the fake Bot API, the side panel reflects the simulator, and the data dir
persists across restarts.

The playground runs on the system clock (as a newcomer runs it); the waits below
are bounded event-driven waits, not timing assertions. The simulator's 15-s
"Waiting" cache is shortened so a delivered code shows up within a poll or two.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.config import FundingMode
from bot.sandbox import sim_state
from bot.sandbox.playground import (
    PLAYGROUND_TOKEN,
    Playground,
    PlaygroundOptions,
    start_playground,
)
from bot.sandbox.playground_cli import options_from_args
from bot.services.api import ActivationState
from tests.texts import button, pattern, service_button, text

WAIT = 15.0
ALICE, BOB = 1001, 1002

Factory = Callable[..., Awaitable[Playground]]


@pytest_asyncio.fixture
async def playground(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Factory]:
    monkeypatch.setattr(sim_state, "WAITING_CACHE_SECONDS", 0.2)
    started: list[Playground] = []

    async def factory(**overrides: object) -> Playground:
        values: dict[str, object] = {
            "port": 0,
            "data_dir": tmp_path / "data",
            "auto_sms": None,
            "poll_interval": 0.5,
            "cancel_lock": 1.0,
        }
        values.update(overrides)
        pg = await start_playground(PlaygroundOptions(**values))  # type: ignore[arg-type]
        started.append(pg)
        return pg

    yield factory
    for pg in started:
        await pg.close()


async def _get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _buy_signal(pg: Playground, user_id: int) -> str:
    """/start → Buy → Signal → Confirm through the buttons; returns the phone number."""
    user = pg.fake.user(user_id)
    await user.send("/start")
    await user.wait_for(text("menu_title"), WAIT)
    await user.press(button("btn_buy"))
    await user.wait_for(text("buy_list_title"), WAIT)
    await user.press(service_button("Signal", "$0.60"))
    confirm = await user.wait_for(pattern("buy_confirm"), WAIT)
    await user.press(pattern("btn_confirm"), message_id=confirm.message_id)
    number = pattern("order_number")
    order = await user.wait_for(
        lambda m: m.message_id == confirm.message_id and number.search(m.text) is not None, WAIT
    )
    [phone] = [p for p in order.entity_texts("code") if p.startswith("+1")]
    return phone


async def test_own_key_playground_end_to_end(
    playground: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A developer's environment must not leak into the playground's settings.
    monkeypatch.setenv("ALLOWED_USER_IDS", "5")
    monkeypatch.setenv("WEBHOOK_URL", "https://example.invalid/hook")
    pg = await playground(mode=FundingMode.OWN_KEY)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", pg.url) and not pg.url.endswith(":0")
    assert pg.settings.funding_mode is FundingMode.OWN_KEY
    assert pg.settings.allowed_user_ids == [] and pg.settings.webhook_url is None
    assert pg.settings.telegram_base_url == pg.fake.url
    assert pg.settings.bot_token is not None
    assert pg.settings.bot_token.get_secret_value() == PLAYGROUND_TOKEN
    assert not re.fullmatch(r"\d{8,10}:[A-Za-z0-9_-]{35}", PLAYGROUND_TOKEN)
    assert pg.app.running and pg.app.updater is not None and pg.app.updater.running

    # The page and its API are served; three chat users by default.
    async with aiohttp.ClientSession() as s, s.get(pg.url + "/") as r:
        assert r.status == 200 and 'id="composer"' in await r.text()
    users = await _get_json(pg.url + "/api/users")
    assert [u["name"] for u in users["users"]] == ["Alice", "Bob", "Carol"]

    # The panel shows the demo wallets, the demo keys and the demo-timing notes.
    panel = (await _get_json(pg.url + "/api/panel"))["panel"]
    assert isinstance(panel, dict)
    assert panel["wallet"] == "Alice: $25.00 · Bob: $25.00 · Carol: $25.00"
    alice_key = pg.demo_keys["Alice"]
    assert panel["Alice's demo key"] == alice_key
    notes = " ".join(panel["notes"])
    assert "opens 1 s after purchase" in notes and "after 3 min" in notes
    assert alice_key in notes and panel["numbers"] == []

    # Alice links her demo key with /key, then buys through the buttons.
    alice = pg.fake.user(ALICE)
    await alice.send("/key")
    await alice.wait_for(text("key_prompt"), WAIT)
    await alice.send(alice_key)
    await alice.wait_for(pattern("key_linked"), WAIT)
    assert all(alice_key not in m.text for m in alice.chat())  # the key message is deleted
    phone = await _buy_signal(pg, ALICE)

    panel = (await _get_json(pg.url + "/api/panel"))["panel"]
    assert isinstance(panel, dict)
    [number] = panel["numbers"]
    assert number["phone"] == phone and number["status"] == "waiting"
    assert number["can_deliver"] is True and number["service"] == "Signal · Alice"
    assert panel["wallet"].startswith("Alice: $24.40 · ")

    # "Deliver SMS now" (the panel's button → POST /api/panel/sms): the code is pushed.
    mark = alice.mark()
    async with aiohttp.ClientSession() as s, s.post(
        pg.url + "/api/panel/sms", json={"activation_id": number["activation_id"]}
    ) as r:
        body = await r.json()
    assert r.status == 200 and body["ok"], body
    code = re.search(r"SMS (\d{6}) reached", body["result"])
    assert code is not None
    pushed = await alice.wait_for(lambda m: code.group(1) in m.text, WAIT, since=mark)
    assert pattern("otp_message", code=code.group(1)).search(pushed.text) or (
        text("order_code", code=code.group(1)) in pushed.text
    )
    [act] = (await pg.app.bot_data.engine.history(ALICE)).items
    assert act.state is ActivationState.COMPLETED and act.code == code.group(1)
    # A second delivery for the same number is refused with a clear message.
    async with aiohttp.ClientSession() as s, s.post(
        pg.url + "/api/panel/sms", json={"activation_id": number["activation_id"]}
    ) as r:
        assert r.status == 400 and "already has a code" in (await r.json())["error"]

    await pg.close()
    assert not pg.app.running
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get_json(pg.url + "/api/users")


async def test_operator_mode_credit_restart_and_fresh(playground: Factory, tmp_path: Path) -> None:
    pg = await playground(users=2)  # operator mode is the default
    assert pg.options.mode is FundingMode.OPERATOR
    engine = pg.app.bot_data.engine
    assert (await engine.wallet(ALICE)).balance == Decimal("10.00")
    assert (await engine.wallet(BOB)).balance == Decimal("10.00")
    assert pg.settings.admin_ids == [ALICE]
    assert pg.panel_provider is not None
    panel = await pg.panel_provider.panel()
    assert panel["wallet"] == "Alice: $10.00 · Bob: $10.00"
    assert panel["operator's DaisySim wallet"] == "$1,000.00"  # Babel groups thousands (issue 12)
    assert "Alice is an admin" in " ".join(panel["notes"])
    await _buy_signal(pg, ALICE)
    first_remote = pg.sim.state()["activations"][0]["id"]
    [number] = (await pg.panel_provider.panel())["numbers"]
    assert number["service"] == "Signal · Alice" and number["activation_id"] == first_remote
    assert (await engine.wallet(ALICE)).balance == Decimal("9.40")
    await pg.close()

    # Restart on the same data dir: no second starting credit, the simulator continues
    # the activation ids (UNIQUE per account in the database), buying works again.
    # The number left waiting vanished with the old simulator: the bot finds it
    # "Not Found", marks it failed and refunds Alice's wallet (once).
    pg2 = await playground(mode=FundingMode.OPERATOR, users=2)
    engine2 = pg2.app.bot_data.engine
    wallet = await engine2.wallet(ALICE)
    assert [e.kind for e in wallet.ledger].count("credit") == 1
    for _ in range(int(WAIT / 0.1)):
        [old] = (await engine2.history(ALICE)).items
        if old.state.is_final:
            break
        await asyncio.sleep(0.1)
    assert old.state is ActivationState.FAILED and old.message_id is not None
    assert (await engine2.wallet(ALICE)).balance == Decimal("10.00")
    await _buy_signal(pg2, ALICE)
    assert int(pg2.sim.state()["activations"][0]["id"]) > int(first_remote)
    for _ in range(int(WAIT / 0.1)):  # the order message id is stored just after the edit
        history = (await engine2.history(ALICE, "all", 1, 10)).items
        if history[0].message_id is not None:
            break
        await asyncio.sleep(0.1)
    assert len(history) == 2 and history[0].message_id is not None
    assert history[0].message_id > old.message_id  # no message id reused in the chat
    assert (await engine2.wallet(ALICE)).balance == Decimal("9.40")
    await pg2.close()

    # --fresh: a new database, the starting credit again.
    pg3 = await playground(mode=FundingMode.OPERATOR, users=2, fresh=True)
    engine3 = pg3.app.bot_data.engine
    assert (await engine3.wallet(ALICE)).balance == Decimal("10.00")
    assert (await engine3.history(ALICE)).total == 0
    assert (tmp_path / "data" / "encryption.key").stat().st_mode & 0o077 == 0


def test_cli_options() -> None:
    o = options_from_args([])
    assert (o.host, o.port, o.mode, o.users) == ("127.0.0.1", 8080, FundingMode.OPERATOR, 3)
    assert o.cancel_lock == 30.0 and o.give_up_minutes == 3.0
    assert o.auto_sms == (8.0, 40.0) and o.auto_sms_ratio == 0.75
    assert o.data_dir.is_absolute() and o.data_dir.name == "playground-data"
    o = options_from_args(
        ["--mode", "own_key", "--users", "5", "--port", "0", "--host", "0.0.0.0", "--fresh",
         "--data", "x", "--cancel-lock", "5", "--give-up-minutes", "1.5", "--auto-sms", "off"]
    )
    assert o.mode is FundingMode.OWN_KEY and o.users == 5 and o.port == 0 and o.fresh
    assert o.cancel_lock == 5.0 and o.give_up_minutes == 1.5 and o.auto_sms is None
    assert o.host == "0.0.0.0" and o.data_dir.name == "x"
    assert options_from_args(["--auto-sms", "2-3"]).auto_sms == (2.0, 3.0)
    for bad in (["--users", "0"], ["--users", "99"], ["--mode", "x"], ["--auto-sms", "9-1"],
                ["--cancel-lock", "0"], ["--auto-sms-ratio", "2"]):
        with pytest.raises(SystemExit):
            options_from_args(bad)


async def test_the_panel_shows_balances_as_precisely_as_the_bot(playground: Factory) -> None:
    """Issue 9.8: the panel said $10.92 (rounded to cents) while the bot said $10.917."""
    pg = await playground(users=2)
    engine = pg.app.bot_data.engine
    await engine.admin_adjust(ALICE, ALICE, Decimal("0.917"), "test")
    assert pg.operator_key is not None
    pg.sim.core.accounts[pg.operator_key].balance = Decimal("998.9170")
    assert pg.panel_provider is not None
    panel = await pg.panel_provider.panel()
    assert panel["wallet"] == "Alice: $10.917 · Bob: $10.00"
    assert panel["operator's DaisySim wallet"] == "$998.917"
    alice = pg.fake.user(ALICE)
    await alice.send("/wallet")
    wallet = await alice.wait_for(text("wallet_title"), WAIT)
    assert "$10.917" in wallet.text  # the same figure in the chat


async def test_after_a_restart_the_failure_notice_reaches_the_chat(
    playground: Factory, tmp_path: Path
) -> None:
    """Issue 9.8: after a restart, numbers that failed upstream were refunded without
    a word: the stand-in's chats were wiped, so the notice was refused (403: chat not
    started) and the order message could not be edited. The chats are kept now."""
    pg = await playground(users=2)
    phone = await _buy_signal(pg, ALICE)
    for _ in range(int(WAIT / 0.1)):  # the order message id is stored just after the edit
        [act] = (await pg.app.bot_data.engine.history(ALICE)).items
        if act.message_id is not None:
            break
        await asyncio.sleep(0.1)
    assert act.message_id is not None
    before = [(m.message_id, m.text) for m in pg.fake.user(ALICE).chat()]
    await pg.close()
    assert (tmp_path / "data" / "telegram.json").stat().st_mode & 0o077 == 0

    pg2 = await playground(users=2)  # same --data
    alice = pg2.fake.user(ALICE)
    assert [(m.message_id, m.text) for m in alice.chat()][: len(before)] == before
    notice = await alice.wait_for(pattern("notify_failed", name="Signal"), WAIT, since=0)
    refunded = text("notify_failed_refunded", amount="$0.60")
    assert pattern("notify_failed", name="Signal", outcome=refunded).search(notice.text)
    order = alice.message(act.message_id)  # the old order message, edited in place
    assert phone in order.text, order.describe()
    assert pattern("status_failed_refunded").search(order.text), order.describe()
    assert notice.message_id > max(mid for mid, _ in before)
    assert (await pg2.app.bot_data.engine.wallet(ALICE)).balance == Decimal("10.00")
    await pg2.close()

    # --fresh forgets the chats with the database.
    pg3 = await playground(users=2, fresh=True)
    assert pg3.fake.user(ALICE).chat() == []


async def test_own_key_playground_admin_gets_the_own_key_answer_to_credit(
    playground: Factory,
) -> None:
    """Issue 9: in the own-key playground, /credit by its admin said "not allowed"
    (nobody was an admin there); it must say why wallets cannot be adjusted."""
    pg = await playground(mode=FundingMode.OWN_KEY, users=2)
    assert pg.settings.admin_ids == [ALICE]
    assert pg.panel_provider is not None
    assert "Alice is an admin: try /admin." in " ".join((await pg.panel_provider.panel())["notes"])
    alice, bob = pg.fake.user(ALICE), pg.fake.user(BOB)
    await alice.send(f"/credit {BOB} 5")
    reply = await alice.wait_for(text("admin_operator_only"), WAIT)
    assert reply.text == text("admin_operator_only")
    await alice.send("/admin")
    await alice.wait_for(pattern("admin_stats"), WAIT)
    await bob.send(f"/credit {ALICE} 5")
    assert text("not_allowed") in (await bob.wait_for(text("not_allowed"), WAIT)).text
