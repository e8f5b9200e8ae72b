"""What every engine service shares: settings, clock, storage, the funding policy,
the timers and the in-memory tracking maps. One instance per started engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config import Settings
from bot.services.api import Activation, EventKind
from bot.services.events import activation_to_json, to_activation
from bot.services.funding import StoredPolicy
from bot.services.timers import Timers, Waker
from bot.services.tracking import Account, Track
from storage.db import Database
from storage.repositories import Repositories
from storage.rows import ActivationRow

__all__ = ["MIN_PURCHASE_SETTLE", "Runtime"]

# A lost purchase is only written off as "not bought" once /history has shown no order
# for this long after the request was sent (the server may finish it after our timeout).
MIN_PURCHASE_SETTLE = 60.0


@dataclass(eq=False)
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    repos: Repositories
    policy: StoredPolicy
    timers: Timers
    waker: Waker
    tracks: dict[int, Track] = field(default_factory=dict)
    accounts: dict[int, Account] = field(default_factory=dict)
    cancel_inflight: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        s = self.settings
        self.interval = float(s.poll_interval_seconds)
        self.cancel_lock = float(s.cancel_lock_seconds)
        self.give_up = float(s.give_up_seconds)
        self.purchase_settle = max(MIN_PURCHASE_SETTLE, 3.0 * s.daisysim_timeout_seconds)

    def to_activation(self, row: ActivationRow) -> Activation:
        return to_activation(row, cancel_lock=self.cancel_lock, give_up=self.give_up)

    def notify(self) -> None:
        self.waker.notify()

    def events_now(self) -> None:
        self.timers.set(("events",), self.clock.now())

    async def emit(self, activation_id: int, kind: EventKind) -> None:
        """Write an outbox event (inside the caller's transaction)."""
        row = await self.repos.activations.get(activation_id)
        assert row is not None
        await self.repos.events.add(
            activation_id, kind.value, activation_to_json(self.to_activation(row)),
            self.clock.now(),
        )
