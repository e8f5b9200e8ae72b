"""Every repository's statements on both backends (``repos``: tests/storage/conftest.py):
upserts, guarded updates, NULL parameters, UNIONs, aggregates, LIMIT/OFFSET and the
values read back (ints, floats, Decimals with their scale, booleans as 0/1). A
statement that only SQLite accepts (or that PostgreSQL reads differently) fails
here first, before the services and end-to-end suites find it."""

from __future__ import annotations

from decimal import Decimal

from storage.health import HealthRepo
from storage.quotes import QuoteRepo
from storage.reports import ReportRepo
from storage.repositories import Repositories

NOW = 1_767_225_600.0


async def _operator(r: Repositories) -> int:
    return await r.accounts.insert(
        kind="operator", owner_user_id=None, key_hash="op", key_encrypted=None,
        key_masked="op…", email=None, now=NOW,
    )


async def _bought(r: Repositories, account: int, n: int, *, user: int = 1,
                  price: str = "1.0830", service: str = "sb_wa") -> int:
    act = await r.activations.insert_purchasing(
        user_id=user, account_id=account, service_code=service, service_name=f"{service} 3",
        provider_id="3109", price=Decimal(price), request_id=f"r{n}", sent_at=NOW + n,
        chat_id=10, message_id=20 + n,
    )
    assert await r.activations.transition(
        act, ["purchasing"], "waiting", remote_id=f"remote-{n}", phone="+1555",
        cost=Decimal("0.90"), purchased_at=NOW + n, cancel_available_emitted=True,
    )
    return act


async def test_users(repos: Repositories) -> None:
    users = repos.users
    row = await users.ensure(1, NOW, "pt-br", seen=True)
    assert (row.id, row.role, row.locale, row.settings) == (1, "user", "pt-br", "{}")
    assert row.created_at == NOW
    assert (await users.ensure(1, NOW + 1, "en")).locale == "en"  # not chosen: follows
    assert (await users.ensure(1, NOW + 1, None)).locale == "en"  # None keeps it
    await users.choose_locale(1, NOW, "es")
    assert (await users.ensure(1, NOW + 2, "fa")).locale == "es"  # chosen: kept
    await users.choose_locale(2, NOW, "ru")  # an unknown user is registered
    assert await users.locale(2) == "ru" and await users.locale(3) is None
    assert await users.count() == 2
    assert await users.ban(2, NOW, 1, "spam") and not await users.ban(2, NOW, 1, "again")
    assert await users.banned_ids() == {2}
    assert await users.ban_reason(2) == (True, "spam")
    assert await users.ban_reason(1) == (False, None)
    assert await users.ban(1, NOW, 9, "") and await users.ban_reason(1) == (True, None)
    assert await users.unban(2) and not await users.unban(2)
    assert await users.set_blocked(1, NOW) and not await users.set_blocked(1, NOW + 1)
    assert await users.blocked_at(1) == NOW
    await users.ensure(1, NOW + 5, seen=True)  # writing again unblocks
    assert await users.blocked_at(1) is None
    assert await users.set_blocked(1, NOW) and await users.set_blocked(1, None)
    await users.seen(1, NOW + 9)
    assert await users.blocked_at(1) is None


async def test_accounts(repos: Repositories) -> None:
    accounts = repos.accounts
    await repos.users.ensure(1, NOW)
    op = await _operator(repos)
    key = await accounts.insert(
        kind="user", owner_user_id=1, key_hash="k1", key_encrypted="tok", key_masked="m",
        email=None, now=NOW,
    )
    assert [a.id for a in await accounts.many([key, op, 999, key])] == [op, key]
    assert (await accounts.by_hash("k1")) is not None and await accounts.by_hash("no") is None
    assert (await accounts.active_operator()) is not None
    await accounts.set_email(key, "a@b")
    assert (await accounts.get(key)).email == "a@b"  # type: ignore[union-attr]
    act = await _bought(repos, key, 1)
    assert await accounts.remove(key, NOW) and not await accounts.remove(key, NOW)
    assert await accounts.removed_keys_without_open_activations(NOW) == []  # still open
    await repos.activations.transition(act, ["waiting"], "completed", code="1")
    await repos.activations.update(act, watch_until=NOW + 100)
    assert await accounts.removed_keys_without_open_activations(NOW) == []  # watched
    assert [a.id for a in await accounts.removed_keys_without_open_activations()] == [key]
    assert [a.id for a in await accounts.removed_keys_without_open_activations(NOW + 200)] == [
        key
    ]
    assert await accounts.relink(key, owner_user_id=1, key_encrypted="tok2", key_masked="m2",
                                 email=None)
    row = await accounts.active_for_user(1)
    assert row is not None and row.id == key and row.removed_at is None


async def test_activations(repos: Repositories) -> None:
    acts = repos.activations
    await repos.users.ensure(1, NOW)
    account = await _operator(repos)
    ids = [await _bought(repos, account, n, service="sb_tg" if n == 2 else "sb_wa")
           for n in range(1, 5)]
    row = await acts.get(ids[0])
    assert row is not None
    assert row.price == Decimal("1.0830") and str(row.price) == "1.0830"  # scale kept
    assert row.cost == Decimal("0.90") and row.cancel_available_emitted is True
    assert (row.chat_id, row.message_id, row.cancel_attempts) == (10, 21, 0)
    assert isinstance(row.purchase_sent_at, float) and row.refund_amount is None
    assert [r.id for r in await acts.list_open()] == ids
    page = await acts.list_for_user(1, limit=2, offset=1)
    assert [r.id for r in page] == [ids[2], ids[1]]
    oldest = await acts.list_for_user(1, ["waiting"], limit=1, newest_first=False)
    assert [r.id for r in oldest] == [ids[0]]
    assert await acts.count_for_user(1) == 4 and await acts.count_for_user(1, ["failed"]) == 0
    assert await acts.recent_service_codes(1, 5) == ["sb_wa", "sb_tg"]
    assert sorted(await acts.known_remote_ids(account, NOW + 3)) == ["remote-3", "remote-4"]
    assert await acts.count_open_for_account(account) == 4
    # update: only while in the given states; booleans and Decimals bound as the schema wants
    assert not await acts.update(ids[0], only_states=["cancelling"], cancel_attempts=3)
    assert await acts.update(ids[0], only_states=["waiting"], cancel_attempts=3,
                             cancel_available_emitted=False, refund_amount=Decimal("0.50"),
                             next_cancel_at=None)
    row = await acts.get(ids[0])
    assert row is not None and row.cancel_attempts == 3 and not row.cancel_available_emitted
    assert row.refund_amount == Decimal("0.50")
    assert await acts.transition(ids[1], ["waiting"], "cancelling")
    assert await acts.transition(ids[1], ["cancelling"], "refunded", refund_reason="user_cancel",
                                 refund_amount=Decimal("1.0830"), finished_at=NOW)
    assert await acts.transition(ids[2], ["waiting"], "completed", code="42")
    assert await acts.counts_by_state() == {"completed": 1, "refunded": 1, "waiting": 2}
    assert sorted(await acts.prices_between(1, NOW + 1, NOW + 4)) == [Decimal("1.0830")] * 2
    assert sum(await acts.settled_prices(), Decimal(0)) == Decimal("3.2490")
    assert await acts.get_for_user(2, ids[0]) is None
    assert (await acts.by_request_id("r1")) is not None


async def test_ledger_and_reports(repos: Repositories) -> None:
    led = repos.ledger
    await repos.users.ensure(1, NOW)
    account = await _operator(repos)
    act = await _bought(repos, account, 1)
    await led.add(user_id=1, amount=Decimal("10.00"), kind="credit", now=NOW, actor_id=7,
                  note="admin")
    await led.add(user_id=1, amount=Decimal("-1.0830"), kind="hold", activation_id=act, now=NOW)
    await led.add(user_id=1, amount=Decimal("-1.0830"), kind="charge", activation_id=act,
                  now=NOW)
    await led.add(user_id=1, amount=Decimal("1.0830"), kind="release", activation_id=act,
                  now=NOW)
    assert await led.balance(1) == Decimal("8.9170") and await led.balance(2) == 0
    entries = await led.entries(1, limit=2)
    assert [e.kind for e in entries] == ["release", "charge"]
    assert [e.kind for e in await led.entries(1)] == ["release", "charge", "hold", "credit"]
    lines = await led.lines(1, 10)
    assert [(x.entry.kind, x.service_name) for x in lines][-1] == ("credit", None)
    assert lines[0].service_name == "sb_wa 3" and lines[0].refund_reason is None
    hold = await led.get(act, "hold")
    assert hold is not None and hold.amount == Decimal("-1.0830") and hold.actor_id is None
    assert await led.get(act, "refund") is None
    assert len(await led.all()) == 4 and len(await led.for_activation(act)) == 3

    reports = ReportRepo(repos.db)
    counts = await reports.service_state_counts()
    assert [(c.service_name, c.state, c.count, c.multi_pool) for c in counts] == [
        ("sb_wa 3", "waiting", 1, True)
    ]
    assert await reports.spend_by_state() == [("waiting", Decimal("1.0830"))]
    figures = await reports.wallet_figures(1, NOW, NOW + 10)
    assert figures.active_count == 1 and figures.spent == Decimal("1.0830")
    empty = await reports.wallet_figures(1, NOW + 10, NOW + 20)
    assert empty.active_count == 1 and empty.spent == 0


async def test_events_and_health(repos: Repositories) -> None:
    events = repos.events
    await repos.users.ensure(1, NOW)
    account = await _operator(repos)
    act = await _bought(repos, account, 1)
    first = await events.add(act, "code_received", '{"a": 1}', NOW)
    second = await events.add(act, "purchased", "{}", NOW + 1)
    assert first is not None and second is not None and second > first
    health = HealthRepo(repos.db)
    assert await health.oldest_undelivered_event() == NOW
    await events.mark_failed(first, NOW + 30, "x" * 600)
    await events.mark_dispatching(first)
    await events.mark_dispatching(first)
    await events.mark_deferred(first, NOW + 60, "flood")  # dispatches 2 -> 1 (> attempts)
    row = await events.get(first)
    assert row is not None and (row.attempts, row.dispatches) == (1, 1)
    assert row.next_attempt_at == NOW + 60
    await events.mark_deferred(first, NOW + 61, "flood")  # never below attempts
    row = await events.get(first)
    assert row is not None and row.dispatches == 1
    assert await events.next_attempt() == NOW + 1  # the second one, never tried
    assert await events.mark_delivered(second, NOW)
    assert await events.next_attempt() == NOW + 61
    assert [e.id for e in await events.pending()] == [first]
    assert [e.kind for e in await events.for_activation(act)] == ["code_received", "purchased"]
    assert len(await events.all()) == 2
    await health.write_probe(NOW)
    assert await repos.db.fetchval("SELECT probed_at FROM health_probe WHERE id = 1") == NOW


async def test_strays(repos: Repositories) -> None:
    strays = repos.strays
    await repos.users.ensure(1, NOW)
    account = await _operator(repos)
    watched = await repos.activations.insert_purchasing(
        user_id=1, account_id=account, service_code="sb_wa", service_name="WA",
        provider_id=None, price=Decimal("1"), request_id="w", sent_at=NOW,
    )
    await repos.activations.transition(watched, ["purchasing"], "failed")
    await repos.activations.update(watched, watch_until=NOW + 100)
    await repos.activations.insert_purchasing(
        user_id=1, account_id=account, service_code="sb_tg", service_name="TG",
        provider_id=None, price=Decimal("1"), request_id="p", sent_at=NOW + 5,
    )
    assert [r.id for r in await strays.watches(account, NOW)] == [watched]
    assert await strays.accounts_to_sweep(NOW) == [account]
    assert await strays.accounts_to_sweep(NOW + 200) == []
    assert await strays.purchasing_labels(account) == {"sb_tg": NOW + 5, "TG": NOW + 5}
    first = await strays.insert(
        account_id=account, remote_id="s1", activation_id=watched, service="wa", phone=None,
        amount=Decimal("0.50"), ordered_at=NOW, now=NOW, state="cancelling",
        next_attempt_at=NOW + 1,
    )
    assert first is not None
    assert await strays.insert(  # the same order again: nothing
        account_id=account, remote_id="s1", activation_id=None, service="wa", phone=None,
        amount=Decimal("0.50"), ordered_at=NOW, now=NOW, state="cancelling",
    ) is None
    lost = await strays.insert(
        account_id=account, remote_id="s2", activation_id=None, service="tg", phone="+1",
        amount=Decimal("0.25"), ordered_at=NOW, now=NOW, state="lost", code="77",
    )
    assert lost is not None
    assert await strays.watches(account, NOW) == []  # matched to its stray order
    assert await strays.accounts_to_sweep(NOW + 200) == [account]  # an order to cancel
    assert await strays.known_ids(account) == {"s1", "s2"}
    assert sorted(await strays.ids(account)) == ["s1", "s2"]
    assert [s.id for s in await strays.open()] == [first]
    assert [s.id for s in await strays.open(account + 1)] == []
    assert await strays.transition(first, ["cancelling"], "refunded", refund=Decimal("0.50"),
                                   finished_at=NOW, attempts=2)
    assert not await strays.transition(first, ["cancelling"], "refunded")
    row = await strays.get(first)
    assert row is not None and row.state == "refunded"
    assert await strays.summary() == {
        "refunded": (1, Decimal("0.50")), "lost": (1, Decimal("0.25"))
    }
    assert len(await strays.all()) == 2


async def test_quotes_and_topups(repos: Repositories) -> None:
    await repos.users.ensure(1, NOW)
    quotes = QuoteRepo(repos.db)
    q = await quotes.insert(user_id=1, service_code="sb_wa", provider_id=None, pool="3",
                            price=Decimal("0.7500"), now=NOW, expires_at=NOW + 60)
    row = await quotes.get(q)
    assert row is not None and str(row.price) == "0.7500" and not row.consumed
    assert await quotes.withdraw(1, NOW + 1) == 1 and await quotes.withdraw(1, NOW + 2) == 0
    assert await quotes.prune(NOW + 2) == 1 and await quotes.get(q) is None

    topups = repos.topups
    t = await topups.create(user_id=1, method="stars", currency="XTR", amount=Decimal("5.00"),
                            price=385, now=NOW, expires_at=NOW + 1800)
    await topups.set_message(t, 10, 11)
    await topups.set_amount(t, Decimal("4.50"))
    row2 = await topups.get(t)
    assert row2 is not None and (row2.chat_id, row2.message_id) == (10, 11)
    assert row2.amount == Decimal("4.50") and row2.price == 385 and row2.refund_attempts == 0
    paid = await topups.create_paid(user_id=1, method="stars", currency="XTR",
                                    amount=Decimal("1"), price=77, now=NOW, charge_id="c9",
                                    provider_charge_id="p9")
    assert paid is not None and (await topups.by_charge("c9")).paid_price == 77  # type: ignore[union-attr]
    assert [x.id for x in await topups.for_user(1, limit=1)] == [paid]
    assert [x.id for x in await topups.all()] == [t, paid]
    assert await topups.begin_refund(paid, actor_id=5, now=NOW, retry_at=NOW + 30)
    await topups.refund_retry(paid, at=NOW + 90, error="e" * 300)
    assert [x.id for x in await topups.refunding(NOW + 90)] == [paid]
    assert await topups.finish_refund(paid, "refund_failed", now=NOW, error=None)
    row3 = await topups.get(paid)
    assert row3 is not None and row3.refund_error == "e" * 200 and row3.next_refund_at is None


async def test_prices_and_alerts(repos: Repositories) -> None:
    prices = repos.prices
    await prices.put(service_key="wa", service_code="WA", rule="+20%", admin_id=1, now=NOW)
    await prices.put(service_key="wa", service_code="Wa", rule="0.75", admin_id=2, now=NOW + 1)
    [rule] = await prices.all()
    assert (rule.service_code, rule.rule, rule.admin_id, rule.updated_at) == (
        "Wa", "0.75", 2, NOW + 1
    )
    assert await prices.delete("wa") and not await prices.delete("wa")

    alerts = repos.alerts
    assert not await alerts.fired("low")
    assert await alerts.fire("low", Decimal("1.50"), NOW)
    assert not await alerts.fire("low", Decimal("1.40"), NOW)
    assert await alerts.fired("low")
    await alerts.add_delivery(kind="low", admin_id=1, balance=Decimal("1.50"),
                              threshold=Decimal("2"), now=NOW)
    await alerts.add_delivery(kind="low", admin_id=2, balance=None, threshold=None, now=NOW)
    first, second = await alerts.unsent()
    assert first.balance == Decimal("1.50") and first.threshold == Decimal("2")
    assert second.balance is None and second.attempts == 0
    await alerts.mark_failed(first.id, give_up=False, now=NOW)
    await alerts.mark_failed(second.id, give_up=True, now=NOW)  # no more tries
    assert [(d.id, d.attempts) for d in await alerts.unsent()] == [(first.id, 1)]
    await alerts.mark_sent(first.id, NOW)
    assert await alerts.unsent() == []
    assert await alerts.rearm("low", None, NOW) and not await alerts.rearm("low", None, NOW)


async def test_broadcasts(repos: Repositories) -> None:
    for user in (1, 2, 3, 4):
        await repos.users.ensure(user, NOW, seen=user in (1, 2))
    await repos.users.ban(3, NOW, 1, "x")
    account = await _operator(repos)
    await _bought(repos, account, 1, user=4)  # active by a purchase, not a sighting
    casts = repos.broadcasts
    assert await casts.audience_size(None) == 3
    assert await casts.audience_size(NOW) == 3
    assert await casts.audience_size(NOW + 2) == 0
    draft = await casts.create(1, "active", "<b>hi</b>", 1, NOW)
    row = await casts.get(draft)
    assert row is not None and row.state == "draft" and row.message_id is None
    assert await casts.start(draft, 99, NOW, NOW) and not await casts.start(draft, 99, NOW, NOW)
    assert [b.id for b in await casts.running()] == [draft]
    assert await casts.claim(draft, 2, NOW) == [1, 2]
    assert await casts.record(draft, 1, "delivered", NOW)
    assert not await casts.record(draft, 1, "failed", NOW)  # not claimed any more
    assert await casts.fail_in_doubt(draft, NOW) == 1  # user 2 was left in flight
    assert await casts.claim(draft, 5, NOW) == [4]
    assert await casts.record(draft, 4, "blocked", NOW)
    assert await casts.counts(draft) == {"delivered": 1, "failed": 1, "blocked": 1}
    assert await casts.end(draft, NOW, from_state="running", to_state="done")
    assert not await casts.end(draft, NOW, from_state="running", to_state="stopped")
    assert await casts.running() == []
