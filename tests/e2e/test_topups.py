"""Top-ups with Telegram Stars, end to end: the real PTB application ↔ the strict
fake Bot API (sendInvoice, pre_checkout_query, successful_payment,
refundStarPayment, getStarTransactions) ↔ the DaisySim simulator."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from bot.config import FundingMode
from bot.sandbox.fake_telegram import ChatMessage, FakeUser
from bot.sandbox.fake_telegram.stars import PreCheckout
from bot.services.engine import Engine
from tests.e2e.conftest import ADMIN, ALICE, BOB, WAIT, Harness, HarnessFactory
from tests.texts import button, pattern, service_button, text

FIVE = Decimal("5")
STARS_5 = 385  # $5 at the default 77 Stars per USD


def is_invoice(m: ChatMessage) -> bool:
    return m.from_bot and m.invoice is not None


async def open_invoice(h: Harness, user: FakeUser, amount: Decimal = FIVE) -> ChatMessage:
    """/wallet → Top up → the pack → the invoice message."""
    await user.send("/wallet")
    await user.wait_for(pattern("wallet_title"), WAIT)
    await user.press(button("btn_topup"))
    await user.wait_for(pattern("topup_title"), WAIT)
    stars = int((amount * 77).to_integral_value())
    before = sum(1 for m in user.chat() if is_invoice(m))
    await user.press(button("btn_topup_pack", amount=amount, stars=stars))
    return await user.wait_for(
        lambda m: is_invoice(m) and sum(1 for x in user.chat() if is_invoice(x)) > before, WAIT
    )


async def paid_messages(user: FakeUser) -> list[ChatMessage]:
    return [m for m in user.bot_messages() if pattern("topup_paid").search(m.text)]


async def balance(h: Harness, user_id: int = ALICE) -> Decimal:
    view = await h.engine.wallet(user_id)
    assert view.balance is not None
    return view.balance


def forge_pre_checkout(h: Harness, user_id: int, invoice: ChatMessage, **changes: Any) -> str:
    """A pre_checkout_query Telegram itself would never send (another user, another
    amount), queued like a real one; returns its id."""
    state = h.fake.state
    info = h.fake.invoice(invoice.chat_id, invoice.message_id)
    assert info is not None
    qid = f"9{len(state.stars.queries):08d}"
    q = PreCheckout(
        id=qid, user_id=user_id, chat_id=user_id, message_id=invoice.message_id,
        currency=changes.get("currency", info.currency),
        total_amount=changes.get("total_amount", info.total_amount),
        invoice_payload=changes.get("invoice_payload", info.payload), created=state.now(),
    )
    state.stars.queries[qid] = q
    content = {"pre_checkout_query": {
        "id": qid, "from": state.users[user_id].to_user_json(),
        "currency": q.currency, "total_amount": q.total_amount,
        "invoice_payload": q.invoice_payload,
    }}
    q.update_id = state.push_update(json.loads(json.dumps(content)))
    return qid


# ---------------------------------------------------------------------------- paying
async def test_top_up_happy_path(h: Harness) -> None:
    alice = h.user()
    invoice = await open_invoice(h, alice)
    info = h.fake.invoice(ALICE, invoice.message_id)
    assert info is not None
    assert (info.currency, info.total_amount) == ("XTR", STARS_5)
    assert info.payload.startswith("topup:")  # names the row, carries no amount
    result = await alice.pay(invoice.message_id)
    assert result.paid and result.charge_id is not None
    await alice.wait_for(text("topup_paid", amount=FIVE, balance=Decimal("15"),
                              charge_id=result.charge_id), WAIT)
    assert await balance(h) == Decimal("15")
    # the wallet shows the top-up; its ledger entry names the charge
    await alice.send("/wallet")
    wallet = await alice.wait_for(pattern("wallet_title"), WAIT)
    assert button("ledger_topup_stars") in wallet.text
    engine = h.engine
    assert isinstance(engine, Engine)
    entries = await engine.services.rt.repos.ledger.for_charge(result.charge_id)
    assert [(e.amount, e.charge_entry) for e in entries] == [(FIVE, "topup")]


async def test_duplicate_successful_payment_credits_once(h: Harness) -> None:
    alice = h.user()
    invoice = await open_invoice(h, alice)
    result = await alice.pay(invoice.message_id, duplicate=True)
    assert result.paid and result.duplicate_update_id is not None
    await alice.wait_for(pattern("topup_paid"), WAIT)
    await h.settle()
    # and once more, much later
    h.fake.redeliver(result.payment_update_id)  # type: ignore[arg-type]
    await h.settle()
    assert await balance(h) == Decimal("15")
    assert len(await paid_messages(alice)) == 1  # told once


async def test_crash_between_payment_and_credit_loses_nothing(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The successful_payment update is consumed but the credit never happens (the
    process dies in between); after the restart the bot finds the payment in
    getStarTransactions and credits it, once; a late redelivery changes nothing."""
    alice = h.user()
    invoice = await open_invoice(h, alice)
    engine = h.engine

    async def dies(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process dies between the payment and the credit")

    monkeypatch.setattr(engine, "record_topup_payment", dies)
    result = await alice.pay(invoice.message_id)
    assert result.paid
    await h.settle()
    monkeypatch.undo()
    assert await balance(h) == Decimal("10")  # not credited: the update is gone
    await h.restart_bot()
    await alice.wait_for(pattern("topup_paid"), WAIT)
    assert await balance(h) == Decimal("15")
    h.fake.redeliver(result.payment_update_id)  # type: ignore[arg-type]
    await h.settle()
    await h.restart_bot()  # reconciliation again at start-up: nothing new
    await h.settle()
    assert await balance(h) == Decimal("15")
    assert len(await paid_messages(alice)) == 1


# ---------------------------------------------------------------------------- pre-checkout
async def test_pre_checkout_refuses_an_expired_invoice(h: Harness) -> None:
    alice = h.user()
    invoice = await open_invoice(h, alice)
    h.clock.advance(31 * 60)  # TOPUP_INVOICE_MINUTES = 30
    result = await alice.pay(invoice.message_id)
    assert result.status == "declined"
    assert result.error_message == text("precheckout_expired")
    assert await balance(h) == Decimal("10") and h.fake.charges == {}


async def test_pre_checkout_refuses_another_user_and_another_amount(h: Harness) -> None:
    alice, bob = h.user(), h.user(BOB, "Bob")
    await bob.send("/start")
    await bob.wait_for(pattern("menu_title"), WAIT)
    invoice = await open_invoice(h, alice)
    wrong_user = forge_pre_checkout(h, BOB, invoice)
    outcome = await h.fake.wait_payment(wrong_user)
    assert outcome.ok is False and outcome.error_message == text("precheckout_unknown")
    wrong_amount = forge_pre_checkout(h, ALICE, invoice, total_amount=1)
    outcome = await h.fake.wait_payment(wrong_amount)
    assert outcome.ok is False and outcome.error_message == text("precheckout_amount")
    not_ours = forge_pre_checkout(h, ALICE, invoice, invoice_payload="topup:999999")
    outcome = await h.fake.wait_payment(not_ours)
    assert outcome.ok is False and outcome.error_message == text("precheckout_unknown")
    # the real one still goes through
    assert (await alice.pay(invoice.message_id)).paid
    await alice.wait_for(pattern("topup_paid"), WAIT)
    assert await balance(h) == Decimal("15") and await balance(h, BOB) == Decimal("0")


async def test_own_key_mode_has_no_top_up(make_harness: HarnessFactory) -> None:
    h = await make_harness(FundingMode.OWN_KEY)
    alice = h.user()
    await alice.send("/wallet")
    wallet = await alice.wait_for(pattern("wallet_title"), WAIT)
    assert wallet.find_button(button("btn_topup")) is None
    # an old or forged "top" button says why
    await alice.press_data("top", wallet.message_id)
    await alice.wait_for(text("topup_own_key"), WAIT)


# ---------------------------------------------------------------------------- refunds
async def _paid(h: Harness, alice: FakeUser) -> str:
    invoice = await open_invoice(h, alice)
    result = await alice.pay(invoice.message_id)
    assert result.paid and result.charge_id is not None
    await alice.wait_for(pattern("topup_paid"), WAIT)
    return result.charge_id


async def test_admin_refund(h: Harness) -> None:
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    charge = await _paid(h, alice)
    await admin.send(f"/refund {charge}")
    await admin.wait_for(text("refund_done", amount=FIVE, stars=STARS_5, user_id=ALICE,
                              balance=Decimal("10")), WAIT)
    await alice.wait_for(text("topup_refunded", amount=FIVE, stars=STARS_5,
                              balance=Decimal("10")), WAIT)
    assert h.fake.charges[charge].refunded
    assert await balance(h) == Decimal("10")
    # a second /refund: already refunded, nothing moves
    await admin.send(f"/refund {charge}")
    await admin.wait_for(text("refund_already", charge_id=charge), WAIT)
    assert await balance(h) == Decimal("10")
    await h.settle()
    # Telegram's refunded_payment service message gets no "unknown message" reply
    assert not [m for m in alice.bot_messages() if pattern("unknown_text").search(m.text)]


async def test_refund_refused_when_the_balance_was_spent(make_harness: HarnessFactory) -> None:
    h = await make_harness(FundingMode.OPERATOR)
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    charge = await _paid(h, alice)
    await h.buy(alice, service_button("Signal", "$0.60"))
    assert await balance(h) == Decimal("4.40")
    await admin.send(f"/refund {charge}")
    await admin.wait_for(text("refund_spent", user_id=ALICE, balance=Decimal("4.40"),
                              amount=FIVE), WAIT)
    assert not h.fake.charges[charge].refunded
    assert await balance(h) == Decimal("4.40")


async def test_refund_already_refunded_on_telegram_counts_as_done(h: Harness) -> None:
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    charge = await _paid(h, alice)
    # refunded on Telegram's side already (another tool): CHARGE_ALREADY_REFUNDED
    await h.app.bot.refund_star_payment(ALICE, charge)  # type: ignore[union-attr]
    await admin.send(f"/refund {charge}")
    await admin.wait_for(pattern("refund_done"), WAIT)
    assert await balance(h) == Decimal("10")


async def test_transient_refund_failure_is_retried(h: Harness) -> None:
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    charge = await _paid(h, alice)
    h.fake.inject_error("refundStarPayment", 500, count=1)
    await admin.send(f"/refund {charge}")
    await admin.wait_for(pattern("refund_pending"), WAIT)
    assert await balance(h) == Decimal("10") and not h.fake.charges[charge].refunded
    await h.restart_bot()  # retried at start-up (when due) and by the topup:upkeep job
    h.clock.advance(120)
    from bot.telegram.topup.jobs import JOB_NAME, upkeep

    assert h.app is not None and h.app.job_queue is not None
    assert len(h.app.job_queue.get_jobs_by_name(JOB_NAME)) == 1
    await upkeep(h.app)
    await alice.wait_for(pattern("topup_refunded"), WAIT)
    assert h.fake.charges[charge].refunded and await balance(h) == Decimal("10")


@pytest.mark.parametrize("args", ["", "a b", "bad/id", "x" * 200])
async def test_refund_bad_admin_input(h: Harness, args: str) -> None:
    admin = h.user(ADMIN, "Admin")
    await admin.send(f"/refund {args}".rstrip())
    await admin.wait_for(text("refund_usage"), WAIT)


async def test_refund_unknown_charge_and_non_admin(h: Harness) -> None:
    alice, admin = h.user(), h.user(ADMIN, "Admin")
    await admin.send("/refund stxNOPE")
    await admin.wait_for(text("refund_not_found", charge_id="stxNOPE"), WAIT)
    charge = await _paid(h, alice)
    await alice.send(f"/refund {charge}")
    await alice.wait_for(text("not_allowed"), WAIT)
    assert not h.fake.charges[charge].refunded and await balance(h) == Decimal("15")


async def test_a_payment_telegram_never_delivered_is_credited_by_the_upkeep_job(
    h: Harness,
) -> None:
    """No successful_payment update at all (only getStarTransactions knows): the
    ``topup:upkeep`` job credits it, once, and tells the user."""
    from bot.telegram.topup.jobs import upkeep

    alice = h.user()
    invoice = await open_invoice(h, alice)
    result = await alice.pay(invoice.message_id, lose_update=True)
    assert result.paid and result.payment_update_id is None
    await h.settle()
    assert await balance(h) == Decimal("10")
    assert h.app is not None
    await upkeep(h.app)
    await alice.wait_for(text("topup_paid", amount=FIVE, balance=Decimal("15"),
                              charge_id=result.charge_id), WAIT)
    await upkeep(h.app)
    await h.settle()
    assert await balance(h) == Decimal("15") and len(await paid_messages(alice)) == 1


async def test_a_lost_refund_answer_is_retried_and_counts_once(h: Harness) -> None:
    """refundStarPayment went through but its answer was lost: the retry meets
    CHARGE_ALREADY_REFUNDED, which counts as done; the wallet is debited once."""
    from bot.telegram.topup.jobs import upkeep

    alice, admin = h.user(), h.user(ADMIN, "Admin")
    charge = await _paid(h, alice)
    h.fake.drop_response("refundStarPayment", count=1)
    await admin.send(f"/refund {charge}")
    await admin.wait_for(pattern("refund_pending"), WAIT)
    assert h.fake.charges[charge].refunded and await balance(h) == Decimal("10")
    h.clock.advance(120)
    assert h.app is not None
    await upkeep(h.app)
    await alice.wait_for(pattern("topup_refunded"), WAIT)
    assert await balance(h) == Decimal("10")
    engine = h.engine
    assert isinstance(engine, Engine)
    entries = await engine.services.rt.repos.ledger.for_charge(charge)
    assert [e.charge_entry for e in entries] == ["topup", "refund"]


async def test_a_banned_user_cannot_pay_an_old_invoice(h: Harness) -> None:
    """The pre-checkout runs before the access gate (it has no chat): it refuses a
    banned user itself, so no money is taken from them."""
    alice = h.user()
    invoice = await open_invoice(h, alice)
    before = await balance(h)
    admin = h.user(ADMIN, "Admin")
    await admin.send(f"/ban {ALICE}")
    await admin.wait_for(pattern("ban_done", user_id=ALICE), WAIT)
    result = await alice.pay(invoice.message_id)
    assert not result.paid and result.ok is False
    assert result.error_message == text("precheckout_unavailable")
    assert await balance(h) == before and h.fake.charges == {}
