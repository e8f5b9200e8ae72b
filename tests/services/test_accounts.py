"""Own keys (validation, encryption at rest, unlink while in use, never logged),
operator wallets (admin adjustments), views (history, wallet, stats)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from bot.services.api import (
    AccountUnavailable,
    ActivationState,
    EventKind,
    InsufficientFunds,
    InvalidKey,
    KeyRequired,
    NotAllowed,
)
from bot.services.crypto import ConfigurationError
from bot.services.engine import Engine
from tests.services.conftest import ADMIN, ALICE, BOB, FERNET, USER_KEY, USER_KEY_B, Harness


def test_configuration_is_checked(h: Harness) -> None:
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEY"):
        Engine(h.settings("own_key", encryption_key=None), clock=h.clock)
    with pytest.raises(ConfigurationError, match="DAISYSIM_API_KEY"):
        Engine(h.settings("operator", daisysim_api_key=None), clock=h.clock)
    with pytest.raises(ConfigurationError, match="Fernet"):
        Engine(h.settings("own_key", encryption_key="nope"), clock=h.clock)
    Engine(h.settings("operator", encryption_key=None), clock=h.clock)  # fine


async def test_link_key_validation(h: Harness) -> None:
    eng = await h.engine("own_key")
    with pytest.raises(KeyRequired):
        await eng.list_services(ALICE)
    with pytest.raises(KeyRequired):
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="x")
    with pytest.raises(InvalidKey):
        await eng.link_key(ALICE, "bad key with spaces")
    assert h.transport.count("/balance") == 0
    with pytest.raises(InvalidKey):
        await eng.link_key(ALICE, "sk_unknown_key_0000000000000")
    h.sim.add_account("sk_suspended_000000000000000", "1", state="suspended")
    h.sim.add_account("sk_locked_000000000000000000", "1", state="locked")
    with pytest.raises(AccountUnavailable) as suspended:
        await eng.link_key(ALICE, "sk_suspended_000000000000000")
    assert suspended.value.locked is False
    with pytest.raises(AccountUnavailable) as locked:
        await eng.link_key(ALICE, "sk_locked_000000000000000000")
    assert locked.value.locked is True
    assert await eng.key_info(ALICE) is None
    wallet = await eng.wallet(ALICE)
    assert wallet.mode == "own_key" and wallet.balance is None

    info = await eng.link_key(ALICE, f"  {USER_KEY}\n")
    assert info.masked == f"{USER_KEY[:4]}…{USER_KEY[-4:]}"
    assert info.balance == Decimal("20.0000") and info.email == "alice@example.com"
    assert await eng.key_info(ALICE) == info.masked
    wallet = await eng.wallet(ALICE)
    assert wallet.balance == Decimal("20.0000") and wallet.email == "alice@example.com"
    with pytest.raises(NotAllowed):  # someone else's linked key
        await eng.link_key(BOB, USER_KEY)


async def _stored_bytes(h: Harness) -> bytes:
    """Everything the database holds: the SQLite files, or every row of every table."""
    if h.database_url is None:
        return b"".join(p.read_bytes() for p in h.db_path.parent.iterdir() if p.is_file())
    from storage import open_database

    db = await open_database(h.database_url, migrate=False)
    try:
        tables = [r[0] for r in await db.fetchall(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )]
        rows = [str(dict(r)) for t in tables for r in await db.fetchall(f'SELECT * FROM "{t}"')]
    finally:
        await db.close()
    return "\n".join(rows).encode()


async def test_key_encrypted_at_rest_and_never_logged(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    eng = await h.engine("own_key")
    await eng.link_key(ALICE, USER_KEY)
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="k")
    h.sms(act, "121212")
    await h.run_for(eng, 30)
    assert h.kinds(act.id) == [EventKind.CODE_RECEIVED]
    await eng.close()
    h.engines.remove(eng)
    raw = await _stored_bytes(h)
    assert b"key_hash" in raw or b"sk_" in raw  # the accounts row is in what was read
    assert USER_KEY.encode() not in raw
    assert FERNET.encode() not in raw
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        assert USER_KEY not in text
        assert USER_KEY[4:-4] not in text


async def test_unlink_while_in_use_then_wipe(h: Harness) -> None:
    eng = await h.engine("own_key")
    await eng.link_key(ALICE, USER_KEY)
    act = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="u1")
    assert await eng.unlink_key(ALICE) is True
    assert await eng.unlink_key(ALICE) is False
    assert await eng.key_info(ALICE) is None
    with pytest.raises(KeyRequired):
        await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="u2")
    account_id = (await eng.inspect.repos.activations.get(act.id)).account_id  # type: ignore[union-attr]
    row = await eng.inspect.repos.accounts.get(account_id)
    assert row is not None and row.removed_at is not None and row.key_encrypted is not None

    # The number bought with the unlinked key is still polled with it.
    h.sms(act, "343434")
    await h.run_for(eng, 30)
    assert (await eng.get_activation(ALICE, act.id)).state is ActivationState.COMPLETED
    row = await eng.inspect.repos.accounts.get(account_id)
    assert row is not None and row.key_encrypted is None  # wiped once unused

    # Linking the same key again brings the account back.
    info = await eng.link_key(ALICE, USER_KEY)
    assert await eng.key_info(ALICE) == info.masked
    again = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="u3")
    row = await eng.inspect.repos.accounts.get(account_id)
    assert row is not None and row.removed_at is None
    assert (await eng.inspect.repos.activations.get(again.id)).account_id == account_id  # type: ignore[union-attr]


async def test_replacing_a_key(h: Harness) -> None:
    eng = await h.engine("own_key")
    await eng.link_key(ALICE, USER_KEY)
    first = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="r1")
    info = await eng.link_key(ALICE, USER_KEY_B)
    assert await eng.key_info(ALICE) == info.masked
    second = await eng.buy(ALICE, "Signal", None, Decimal("1"), request_id="r2")
    assert h.sim.activation(first.remote_id or "").account == USER_KEY
    assert h.sim.activation(second.remote_id or "").account == USER_KEY_B
    # Both keep working until done: codes for both are delivered.
    h.sms(first, "1")
    h.sms(second, "2")
    await h.run_for(eng, 30)
    assert {e.activation.code for e in h.events} == {"1", "2"}


async def test_admin_adjust(h: Harness) -> None:
    eng = await h.engine("operator")
    with pytest.raises(NotAllowed):
        await eng.admin_adjust(ALICE, ALICE, Decimal("100"), "self-service")
    assert await eng.admin_adjust(ADMIN, ALICE, Decimal("10.5"), "paid by card") == Decimal(
        "10.5"
    )
    with pytest.raises(InsufficientFunds):
        await eng.admin_adjust(ADMIN, ALICE, Decimal("-11"), "too much")
    assert await eng.admin_adjust(ADMIN, ALICE, Decimal("-0.5"), "fee") == Decimal("10.0")
    wallet = await eng.wallet(ALICE)
    assert wallet.balance == Decimal("10.0")
    assert [(e.kind, e.amount, e.note) for e in wallet.ledger] == [
        ("debit", Decimal("-0.5"), "fee"),
        ("credit", Decimal("10.5"), "paid by card"),
    ]
    entries = await eng.inspect.repos.ledger.entries(ALICE)
    assert {e.actor_id for e in entries} == {ADMIN}


async def test_admin_adjust_refused_in_own_key_mode(h: Harness) -> None:
    eng = await h.engine("own_key")
    with pytest.raises(NotAllowed):
        await eng.admin_adjust(ADMIN, ALICE, Decimal("1"), "x")


async def test_admin_rights_are_decided_by_the_engine(h: Harness) -> None:
    """One decision (ADMIN_IDS), asked by the UI and re-checked by admin calls."""
    eng = await h.engine("operator")
    assert eng.is_admin(ADMIN) and not eng.is_admin(ALICE)
    with pytest.raises(NotAllowed):
        await eng.stats(ALICE)
    assert (await eng.stats(ADMIN)).users >= 0


async def test_views_history_wallet_stats(h: Harness) -> None:
    eng = await h.engine("operator")
    await eng.admin_adjust(ADMIN, ALICE, Decimal("20"), "top-up")
    t0 = h.clock.now()
    apps = ["Signal", "Telegram", "Signal", "WhatsApp", "sb_tg", "Signal", "Telegram"]
    acts = [
        await eng.buy(ALICE, app, None, Decimal("5"), request_id=f"h{i}")
        for i, app in enumerate(apps)
    ]
    assert await eng.recent_services(ALICE) == ["Telegram", "Signal", "sb_tg"]
    h.sms(acts[0], "1")
    h.sms(acts[1], "2")
    await h.run_until(eng, t0 + 181)
    assert (await eng.cancel(ALICE, acts[2].id)).outcome == "refunded"

    page1 = await eng.history(ALICE, "all", page=1, per_page=5)
    assert (page1.total, page1.pages, page1.page) == (7, 2, 1)
    assert [a.id for a in page1.items] == [a.id for a in reversed(acts)][:5]  # newest first
    page2 = await eng.history(ALICE, "all", page=9, per_page=5)
    assert page2.page == 2 and len(page2.items) == 2
    assert {a.id for a in (await eng.history(ALICE, "completed")).items} == {
        acts[0].id, acts[1].id,
    }
    assert {a.id for a in (await eng.history(ALICE, "cancelled")).items} == {acts[2].id}
    assert (await eng.history(ALICE, "waiting")).total == 4
    assert len(await eng.active(ALICE)) == 4

    wallet = await eng.wallet(ALICE)
    prices = [a.price for i, a in enumerate(acts) if i != 2]
    assert wallet.spent_this_month == sum(prices, Decimal(0))
    assert wallet.balance == Decimal("20") - sum(prices, Decimal(0))
    assert wallet.active_count == 4
    assert any(e.kind == "refund" for e in wallet.ledger)

    with pytest.raises(NotAllowed):
        await eng.stats(ALICE)
    stats = await eng.stats(ADMIN)
    assert stats.users == 1
    assert stats.activations_by_state == {"completed": 2, "refunded": 1, "waiting": 4}
    assert stats.spend == sum(prices, Decimal(0))
    signal = next(s for s in stats.per_service if s.service_name == "Signal")
    assert (signal.total, signal.completed) == (3, 1)
    assert signal.success_rate == pytest.approx(1 / 3)
