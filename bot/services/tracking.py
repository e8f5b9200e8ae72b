"""The engine's in-memory view of what it works on (the database is the truth):
one :class:`Track` per open activation, one :class:`Account` per DaisySim key."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.daisysim.client import DaisySimClient
from bot.daisysim.models import App, Purchase
from bot.domain.activation import ActivationState
from bot.services.poller import PollSlot
from storage.rows import AccountRow

__all__ = ["Account", "Track"]


@dataclass(slots=True)
class Track:
    """In-memory scheduling view of one open activation."""

    id: int
    user_id: int
    account_id: int
    remote_id: str | None
    state: ActivationState
    purchase_sent_at: float
    cancel_after: float
    expires_at: float
    unlock_emitted: bool
    next_cancel_at: float | None
    cancel_attempts: int
    reconcile_at: float | None = None
    reconcile_failures: int = 0
    poll_stopped: bool = False  # Not Found while cancelling: the cancel resolves it
    # A purchase DaisySim confirmed but that could not be written yet (database
    # error): settled from memory on the next attempt, never "reconciled" away.
    unrecorded: Purchase | None = None


class Account:
    """Runtime of one DaisySim account: client, poll slots, locks, caches."""

    def __init__(self, row: AccountRow, client: DaisySimClient | None) -> None:
        self.id = row.id
        self.row = row
        self.client = client
        # One lock per service name: purchases that reconciliation could confuse
        # (same service) are serialised; other services go ahead.
        self._purchase_locks: dict[str, asyncio.Lock] = {}
        self.slots: dict[int, PollSlot] = {}
        self.last_round: float | None = None  # the last fresh round that covered every due id
        self.last_extra: float | None = None  # the last spare (adaptive) poll
        self.extra_not_before = 0.0  # no spare poll before (the global spare rate said so)
        self.poll_backoff_until = 0.0
        self.poll_failures = 0
        self.catalogue: tuple[float, list[App]] | None = None

    def purchase_lock(self, service_name: str) -> asyncio.Lock:
        lock = self._purchase_locks.get(service_name)
        if lock is None:
            lock = self._purchase_locks[service_name] = asyncio.Lock()
        return lock
