"""Broadcasts and bans below the UI (issue 13): who is a recipient, claims that are
never handed out twice (also across a restart), outcomes, the "active" audience;
bans (admins only, not of admins, unknown users) and blocked users."""

from __future__ import annotations

import pytest

from bot.services.api import CannotBanAdmin, NotAllowed, UnknownUser
from tests.services.conftest import ADMIN, ALICE, BOB, Harness

CAROL = 3


async def test_recipients_claims_outcomes_and_restart(h: Harness) -> None:
    eng = await h.engine()
    for uid in (ALICE, BOB, CAROL, ADMIN):
        await eng.ensure_user(uid)
    await eng.ban(ADMIN, CAROL, "spam")
    await eng.set_blocked(BOB, True)

    draft = await eng.broadcast_draft(ADMIN, "all", "<b>hi</b>", ADMIN)
    assert (draft.state, draft.recipients) == ("draft", 2)  # Alice and the admin
    with pytest.raises(NotAllowed):
        await eng.broadcast_start(ALICE, draft.id, 1)  # not an admin
    started = await eng.broadcast_start(ADMIN, draft.id, 7)
    assert started is not None and started.recipients == 2 and started.message_id == 7
    assert await eng.broadcast_start(ADMIN, draft.id, 7) is None  # a second Send

    first = await eng.broadcast_claim(draft.id, 1)
    second = await eng.broadcast_claim(draft.id, 5)
    assert first == [ALICE] and second == [ADMIN]  # each handed out once
    await eng.broadcast_record(draft.id, {ALICE: "pending"})  # flood: again later
    assert await eng.broadcast_claim(draft.id, 5) == [ALICE]
    await eng.broadcast_record(draft.id, {ALICE: "blocked"})
    assert await eng.inspect.repos.users.blocked_at(ALICE) is not None
    assert await eng.broadcast_finish(draft.id) is None  # the admin's is still in flight

    # A restart with the admin's message in doubt: failed, never handed out again.
    await eng.close()
    eng = await h.engine()
    [running] = await eng.broadcasts_running()
    assert (running.id, running.failed, running.blocked) == (draft.id, 1, 1)
    assert await eng.broadcast_claim(draft.id, 5) == []
    done = await eng.broadcast_finish(draft.id)
    assert done is not None and (done.state, done.processed) == ("done", 2)
    assert await eng.broadcasts_running() == []

    # Alice writes again: no longer blocked
    await eng.user_seen(ALICE)
    assert await eng.inspect.repos.users.blocked_at(ALICE) is None


async def test_active_audience_and_stop(h: Harness) -> None:
    eng = await h.engine(broadcast_active_days=7)
    for uid in (ALICE, BOB):
        await eng.ensure_user(uid)
    await eng.user_seen(ALICE)
    h.clock.advance(8 * 86400)
    await eng.user_seen(BOB)
    active = await eng.broadcast_draft(ADMIN, "active", "hi", ADMIN)
    assert active.recipients == 1  # Bob: Alice was last seen 8 days ago
    everyone = await eng.broadcast_draft(ADMIN, "all", "hi", ADMIN)
    assert everyone.recipients == 2
    assert await eng.broadcast_cancel(ADMIN, active.id)
    assert not await eng.broadcast_cancel(ADMIN, active.id)
    await eng.broadcast_start(ADMIN, everyone.id, 1)
    assert await eng.broadcast_stop(ADMIN, everyone.id)
    assert await eng.broadcast_claim(everyone.id, 5) == []  # a stopped one sends nothing


async def test_ban_rules(h: Harness) -> None:
    eng = await h.engine()
    await eng.ensure_user(ALICE)
    with pytest.raises(NotAllowed):
        await eng.ban(BOB, ALICE, "")
    with pytest.raises(CannotBanAdmin):
        await eng.ban(ADMIN, ADMIN, "")
    with pytest.raises(UnknownUser):
        await eng.ban(ADMIN, 424242, "")
    assert await eng.ban(ADMIN, ALICE, "  too   many\nchargebacks ")
    assert not await eng.ban(ADMIN, ALICE, "again")
    assert await eng.inspect.repos.users.ban_reason(ALICE) == (True, "too many chargebacks")
    assert await eng.banned_users() == {ALICE}
    assert await eng.unban(ADMIN, ALICE)
    assert not await eng.unban(ADMIN, ALICE)
    assert await eng.banned_users() == set()
