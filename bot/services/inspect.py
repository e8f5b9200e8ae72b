"""Read-only inspection of a running engine, for tests and benchmarks (never the
UI): what it tracks, its stored rows, events, ledger and stray orders.

``engine.inspect.repos`` is the engine's own storage, for tests that inject
faults into it (``db`` too), and ``poll_rounds`` its round runner (tests shorten its
patience); everything else only reads.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from bot.daisysim.client import DaisySimClient
from bot.services.rounds import Rounds
from storage.db import Database
from storage.repositories import Repositories
from storage.rows import ActivationRow, EventRow, LedgerRow, StrayRow

if TYPE_CHECKING:
    from bot.services.engine import Engine

__all__ = ["Inspector"]


class Inspector:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def repos(self) -> Repositories:
        return self._engine.services.rt.repos

    @property
    def db(self) -> Database:
        """The engine's database (tests inject faults, e.g. ``PRAGMA query_only``)."""
        return self._engine.services.rt.db

    @property
    def db_path(self) -> str:
        return self._engine.services.rt.db.path

    @property
    def poll_rounds(self) -> Rounds:
        """The poll rounds' runner (tests shorten its ``patience``)."""
        return self._engine.services.polling.rounds

    def tracked(self) -> dict[int, str]:
        """Open activations the engine is working on (id -> state)."""
        if self._engine._s is None:
            return {}
        return {t.id: t.state.value for t in self._engine.services.rt.tracks.values()}

    async def activation_row(self, activation_id: int) -> ActivationRow | None:
        return await self.repos.activations.get(activation_id)

    async def activations(self) -> list[ActivationRow]:
        return await self.repos.activations.list_all()

    async def open_activations(self) -> list[ActivationRow]:
        return await self.repos.activations.list_open()

    async def events(self) -> list[EventRow]:
        return await self.repos.events.all()

    async def ledger(self, activation_id: int) -> list[LedgerRow]:
        return await self.repos.ledger.for_activation(activation_id)

    async def entries(self, user_id: int) -> list[LedgerRow]:
        return await self.repos.ledger.entries(user_id)

    async def strays(self) -> list[StrayRow]:
        return await self.repos.strays.all()

    async def balance(self, user_id: int) -> Decimal:
        """The user's internal wallet balance (the operator ledger's sum)."""
        return await self.repos.ledger.balance(user_id)

    def clients(self) -> list[DaisySimClient]:
        """The DaisySim clients of the accounts the engine has opened."""
        accounts = self._engine.services.rt.accounts.values()
        return [acc.client for acc in accounts if acc.client is not None]
