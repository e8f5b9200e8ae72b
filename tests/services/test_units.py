"""Pure pieces of the core: poll planning, the timer heap, pricing, key handling,
event snapshots."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography.fernet import Fernet

from bot.domain.funding import user_price
from bot.services.api import Activation, ActivationState, RefundReason
from bot.services.crypto import ConfigurationError, KeyVault, key_hash, mask_key, valid_key_format
from bot.services.events import activation_from_json, activation_to_json
from bot.services.poller import PollSlot, due_slots, next_round_time, round_gap, split_batches
from bot.services.timers import Timers


def test_round_gap_fits_the_budget() -> None:
    # 300 ids need 15 full requests per 15 s: one round per interval.
    assert round_gap(300, 15.0, 60) == 15.0
    assert round_gap(400, 15.0, 60) == 15.0  # overloaded: stretch, never more rounds
    # Few ids: rounds may be frequent (each costs one request).
    assert round_gap(1, 15.0, 60) == pytest.approx(15.0 / 14)
    # Rounds per interval * (partial batch) + full batches never exceed the budget.
    for n in range(1, 301):
        gap = round_gap(n, 15.0, 60)
        rounds = 15.0 / gap
        assert n / 20 + rounds <= 15 + 1e-9 or gap == 15.0


def test_due_slots_least_recently_polled_first_and_batches() -> None:
    slots = [PollSlot(i, str(1000 + i), due=float(100 - i % 7)) for i in range(45)]
    due = due_slots(slots, now=99.0)
    assert [s.due for s in due] == sorted(s.due for s in due)
    assert all(s.due <= 99.0 for s in due)
    batches = split_batches(due, available_requests=10)
    assert [len(b) for b in batches] == [20, 18]
    assert split_batches(due, available_requests=1) == [due[:20]]
    assert split_batches(due, available_requests=0) == []


def test_next_round_time() -> None:
    slots = [PollSlot(1, "1", 115.0), PollSlot(2, "2", 120.0)]
    assert next_round_time([], last_round=None, gap=5, now=100, budget_wait=0) is None
    assert next_round_time(slots, last_round=None, gap=5, now=100, budget_wait=0) == 115.0
    assert next_round_time(slots, last_round=112, gap=5, now=100, budget_wait=0) == 117.0
    # Due now but the budget is empty: when the budget frees a slot.
    assert next_round_time(slots, last_round=None, gap=5, now=130, budget_wait=2.5) == 132.5
    assert next_round_time(
        slots, last_round=None, gap=5, now=100, budget_wait=0, backoff_until=200
    ) == 200


def test_timer_heap_lazy_invalidation() -> None:
    timers = Timers()
    timers.set("a", 10.0)
    timers.set("b", 5.0)
    timers.set("a", 3.0)  # moved earlier
    timers.set("b", 20.0)  # moved later
    assert timers.peek() == 3.0
    assert timers.pop_due(4.0) == ["a"]
    assert timers.peek() == 20.0
    timers.set("b", None)
    assert timers.peek() is None
    for i in range(1000):  # the heap compacts itself
        timers.set("c", float(i))
    assert timers.peek() == 999.0
    assert timers.pop_due(1e9) == ["c"]


def test_user_price_rounding() -> None:
    assert user_price(Decimal("1.0830"), Decimal("0")) == Decimal("1.0830")
    assert user_price(Decimal("1.0830"), Decimal("10")) == Decimal("1.20")  # up to the cent
    assert user_price(Decimal("0.0001"), Decimal("50")) == Decimal("0.01")  # never below a cent
    assert user_price(Decimal("1.8500"), Decimal("12.5")) == Decimal("2.09")  # 2.08125


def test_key_vault_and_masking() -> None:
    vault = KeyVault(Fernet.generate_key().decode())
    token = vault.encrypt("sk_live_abcdef0123456789")
    assert "abcdef" not in token
    assert vault.decrypt(token) == "sk_live_abcdef0123456789"
    assert KeyVault(Fernet.generate_key()).decrypt(token) is None  # another key
    assert mask_key("sk_live_abcdef0123456789") == "sk_l…6789"
    assert mask_key("short123") == "sh…23"
    assert key_hash("a" * 20) != key_hash("b" * 20)
    assert "a" * 20 not in key_hash("a" * 20)
    assert valid_key_format("sk_live_abcdef0123456789")
    assert not valid_key_format("has space inside key")
    assert not valid_key_format("short")
    with pytest.raises(ConfigurationError):
        KeyVault("not-a-fernet-key")


def test_event_snapshot_roundtrip() -> None:
    act = Activation(
        id=5, user_id=7, remote_id="32886", service_code="sb_wa", service_name="WhatsApp 3",
        provider_id="3109", phone="+19401234567", price=Decimal("1.0830"),
        state=ActivationState.REFUNDED, code=None, purchased_at=100.5, cancel_after=280.5,
        expires_at=1300.5, chat_id=9, message_id=10, refund_amount=Decimal("1.0830"),
        refund_reason=RefundReason.EXPIRED, finished_at=1301.0,
    )
    assert activation_from_json(activation_to_json(act)) == act
